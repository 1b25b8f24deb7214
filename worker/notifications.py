"""Webhook notifications: when a submission ends, and when a re-evaluation moves a rank.

Delivery runs as its own task on the light queue, with a timeout and retries, so a slow or
dead endpoint never holds an evaluation worker. Credentials in a webhook URL never reach a log.
"""

from __future__ import annotations

import logging
from typing import Any

from db import submissions as queries
from db.leaderboard import model_rank
from db.models import Submission
from db.session import session_scope
from evalboard.settings import get_settings
from evalboard.webhooks import is_private_host, notify_finished, redact

log = logging.getLogger(__name__)
MAX_CHAIN = 100  # re-evaluations of re-evaluations: how far back to look for the webhook


class DeliveryError(Exception):
    """A webhook endpoint could not be reached or did not answer 2xx; retried with backoff."""


def webhook_of(session: Any, submission: Submission) -> str | None:
    """The submission's own webhook, or for a re-evaluation the one its original carried."""
    current: Submission | None = submission
    for _ in range(MAX_CHAIN):
        if current is None:
            return None
        if current.webhook_url:
            return current.webhook_url
        if current.supersedes_submission_id is None:
            return None
        current = queries.get_submission(session, current.supersedes_submission_id)
    return None


def measured(session: Any, submission: Submission) -> Submission:
    """The submission whose results say how it went: a training's is its final evaluation."""
    if submission.kind == "train":
        from db.training import get_training_run

        run = get_training_run(session, submission.id)
        if run is not None and run.evaluation_submission_id is not None:
            evaluation = queries.get_submission(session, run.evaluation_submission_id)
            if evaluation is not None:
                return evaluation
    return submission


def _rank(session: Any, submission: Submission) -> int | None:
    submission = measured(session, submission)
    if submission.state != "succeeded":
        return None
    split = submission.results[0].split if submission.results else submission.split
    if split is None:
        return None
    return model_rank(
        session,
        model=submission.model.name,
        dataset=submission.dataset.name,
        config=submission.dataset.config,
        split=split,
        spec_name=submission.spec_name,
    )


def after_finish(submission_id: int) -> None:
    """Queue the notification a finished submission owes: always to its own webhook; for a
    re-evaluation, to the original's webhook when the model's rank moved since the run it
    supersedes finished."""
    with session_scope() as session:
        submission = queries.get_submission(session, submission_id)
        if submission is None or webhook_of(session, submission) is None:
            return
        if submission.state == "succeeded":
            submission.rank_at_finish = _rank(session, submission)
        if submission.webhook_url:
            notify = True
        else:  # a re-evaluation of a submission that carried a webhook
            notify = submission.rank_at_finish != previous_rank_of(session, submission)
    if notify:
        try:
            notify_finished(submission_id)
        except Exception:  # noqa: BLE001 - a notification never fails the job
            log.warning("could not queue the notification of submission %s", submission_id)


def previous_rank_of(session: Any, submission: Submission) -> int | None:
    """For a re-evaluation: the rank the model had when the run it supersedes finished."""
    if submission.supersedes_submission_id is None:
        return None
    superseded = queries.get_submission(session, submission.supersedes_submission_id)
    return superseded.rank_at_finish if superseded is not None else None


def payload(session: Any, submission: Submission) -> dict[str, Any]:
    """What a webhook gets; a training reports its trained model and that model's results."""
    evaluated = measured(session, submission)
    results = list(evaluated.results)
    return {
        "submission_id": submission.id,
        "state": submission.state,
        "model": evaluated.model.name,
        "dataset": submission.dataset.name,
        "split": results[0].split if results else evaluated.split,
        "metrics": {result.metric: result.value for result in results},
        "rank": submission.rank_at_finish,
        "previous_rank": previous_rank_of(session, submission),
    }


def deliver(submission_id: int) -> bool:
    """POST the payload to the webhook; False when there is none. Raises DeliveryError (to be
    retried) when the endpoint fails; its message never holds the URL's credentials."""
    import requests

    settings = get_settings()
    with session_scope() as session:
        submission = queries.get_submission(session, submission_id)
        if submission is None:
            return False
        url = webhook_of(session, submission)
        if url is None:
            return False
        body = payload(session, submission)
    shown = redact(url)
    hostname = requests.utils.urlparse(url).hostname or ""
    if not settings.webhook_allow_private and is_private_host(hostname):
        log.warning(
            "webhook %s of submission %s resolves to a private address", shown, submission_id
        )
        return False
    try:
        response = requests.post(
            url,
            json=body,
            timeout=settings.webhook_timeout_s,
            allow_redirects=False,
            headers={"User-Agent": "evalboard-webhook", "X-Evalboard-Event": "submission"},
        )
    except requests.RequestException as error:
        raise DeliveryError(
            f"webhook {shown} of submission {submission_id}: {type(error).__name__}"
        ) from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(
            f"webhook {shown} of submission {submission_id} answered {response.status_code}"
        )
    log.info("webhook %s of submission %s delivered", shown, submission_id)
    return True
