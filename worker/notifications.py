"""Webhook notifications: when a submission ends, and when a re-evaluation moves a rank.

Delivery runs as its own task on the light queue (a worker of its own: ``evalboard up`` and a
plain ``evalboard worker`` start one beside the evaluations'), within a total deadline and
with retries, so a slow, trickling or dead endpoint never holds an evaluation. It connects to
the addresses it checked (``worker/webhook_delivery.py``). Credentials in a webhook URL never
reach a log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from db import submissions as queries
from db.leaderboard import model_rank
from db.models import Submission
from db.session import session_scope
from evalboard.errors import BadInputError
from evalboard.settings import Settings, get_settings
from evalboard.webhooks import notify_finished, parse_webhook, redact, webhook_addresses
from worker.webhook_delivery import DeliveryError as DeliveryError
from worker.webhook_delivery import post_pinned

log = logging.getLogger(__name__)
MAX_CHAIN = 100  # re-evaluations of re-evaluations: how far back to look for the webhook


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
        columns=dict(submission.column_mapping or {}),  # its own board, of its label column
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
    """POST the payload to the submission's webhook; False when there is none or it may not
    be called. Raises DeliveryError (to be retried) as ``deliver_to`` does."""
    with session_scope() as session:
        submission = queries.get_submission(session, submission_id)
        if submission is None:
            return False
        url = webhook_of(session, submission)
        if url is None:
            return False
        body = payload(session, submission)
    return deliver_to(url, body, get_settings(), what=f"submission {submission_id}")


def deliver_to(url: str, body: dict[str, Any], settings: Settings, *, what: str) -> bool:
    """POST ``body`` to ``url`` if it may be called now; True once it answered 2xx.

    Raises DeliveryError (to be retried) when the endpoint fails, answers otherwise or misses
    the deadline (``EVALBOARD_WEBHOOK_TIMEOUT_S``, for the whole exchange); its message never
    holds the URL's credentials.
    """
    shown = f"webhook {redact(url)} of {what}"
    try:
        target = parse_webhook(url)
        # Resolved here, at delivery, and connected to as resolved: a name that pointed
        # elsewhere at submit (DNS rebinding) is checked on what it points to now.
        addresses = webhook_addresses(target, settings)
    except BadInputError as refused:
        log.warning("%s is not called: %s", shown, refused)
        return False
    except OSError as error:
        raise DeliveryError(f"{shown} does not resolve: {type(error).__name__}") from None
    status = post_pinned(
        target,
        addresses,
        json.dumps(body).encode(),
        headers={"User-Agent": "evalboard-webhook", "X-Evalboard-Event": "submission"},
        deadline_s=settings.webhook_timeout_s,
        what=shown,
    )
    if not 200 <= status < 300:
        raise DeliveryError(f"{shown} answered {status}")
    log.info("%s delivered", shown)
    return True
