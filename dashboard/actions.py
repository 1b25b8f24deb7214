"""The writes the dashboard makes: submit an evaluation or a training, cancel a submission."""

from __future__ import annotations

from typing import Any, Literal

from dashboard import data
from db.session import session_scope
from db.submissions import get_submission
from evalboard import submit as submitting
from evalboard.access import may_manage
from evalboard.settings import get_settings
from evalboard.submit import EvaluationInput, Submitted

CancelOutcome = Literal["cancelled", "not_active", "refused"]


def submit(evaluation: EvaluationInput, *, token: str | None) -> Submitted:
    """Validate, record and enqueue ``evaluation``; an identical one is returned, not queued.

    Raises EvalboardError: ``refused`` without a valid token where one is needed.
    """
    submitted = submitting.submit(evaluation, token=token)
    data.clear_submission_reads()
    return submitted


def train(evaluation: EvaluationInput, training: dict[str, Any], *, token: str | None) -> Submitted:
    """Validate, record and enqueue a fine-tuning of ``evaluation.model``; raises EvalboardError."""
    submitted = submitting.submit(evaluation, training, token=token)
    data.clear_submission_reads()
    return submitted


def cancel(submission_id: int, *, token: str | None, secret: str | None) -> CancelOutcome:
    """Cancel a queued or running submission the caller may manage.

    ``not_active`` when it had already ended or is unknown; ``refused`` when it is not theirs.
    """
    settings = get_settings()
    with session_scope() as session:
        submission = get_submission(session, submission_id)
    if submission is None:
        return "not_active"
    # Checked outside the write transaction: may_manage opens its own session.
    if not may_manage(submission, token=token, secret=secret, settings=settings):
        return "refused"
    cancelled = submitting.cancel(submission_id)
    data.clear_submission_reads()
    return "cancelled" if cancelled else "not_active"


def reevaluation_preview() -> list[Any]:
    """What is due now and why, without queueing anything (no weights are downloaded)."""
    from evalboard.reevaluation import run_check

    return run_check(mode="due", dry_run=True)


def reevaluate_due() -> str:
    """Queue the re-evaluation check on the light queue, as beat does; returns its task id."""
    from evalboard.queue import REEVALUATE_TASK, send

    return send(REEVALUATE_TASK, trigger="manual")


def moderate(submission_id: int | None, action: str, reason: str, *, secret: str | None) -> str:
    """Apply a moderation action; returns what happened, or the refusal in words."""
    from evalboard.errors import EvalboardError
    from evalboard.moderation import moderate as apply

    if submission_id is None:
        return "Enter a submission id."
    try:
        apply(int(submission_id), action, secret=secret, reason=reason or None)
    except EvalboardError as error:
        return f"{error.category.value}: {error.message}"
    data.clear_leaderboard_reads()
    return f"submission {int(submission_id)}: {action} applied"


def moderated() -> list[dict[str, Any]]:
    """Every baseline and hidden result, for the admin."""
    from db.moderation import moderated as marked

    with session_scope() as session:
        return [
            {"submission": m.submission_id, "model": s.model.name, "dataset": s.dataset.name,
             "baseline": m.baseline, "hidden": m.hidden, "reason": m.reason,
             "changed": m.updated_at}
            for m, s in marked(session)
        ]  # fmt: skip
