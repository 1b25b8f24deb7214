"""Moderation: baselines and hidden results, and the audit trail of every change.

The caller owns the transaction; the caller also checks that the actor is the admin.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Moderation, ModerationEvent, Submission, utcnow

ACTIONS = ("baseline", "unbaseline", "hide", "unhide")


def moderate(
    session: Session, submission_id: int, action: str, *, actor: str, reason: str | None = None
) -> Moderation:
    """Apply ``action`` to a submission's results and record who did it and why."""
    if action not in ACTIONS:
        raise ValueError(f"unknown moderation action {action!r}")
    marks = session.get(Moderation, submission_id)
    if marks is None:
        marks = Moderation(submission_id=submission_id, baseline=False, hidden=False)
        session.add(marks)
    if action in ("baseline", "unbaseline"):
        marks.baseline = action == "baseline"
    else:
        marks.hidden = action == "hide"
        marks.reason = reason if action == "hide" else None
    marks.updated_at = utcnow()
    session.add(
        ModerationEvent(
            submission_id=submission_id, action=action, reason=reason, actor=actor,
            created_at=utcnow(),
        )
    )  # fmt: skip
    session.flush()
    return marks


def moderated(session: Session) -> Sequence[tuple[Moderation, Submission]]:
    """Every submission with a mark (baseline or hidden), newest change first."""
    return session.execute(
        select(Moderation, Submission)
        .join(Submission, Moderation.submission_id == Submission.id)
        .where((Moderation.baseline.is_(True)) | (Moderation.hidden.is_(True)))
        .order_by(Moderation.updated_at.desc())
    ).all()


def events_of(session: Session, submission_id: int) -> Sequence[ModerationEvent]:
    return session.scalars(
        select(ModerationEvent)
        .where(ModerationEvent.submission_id == submission_id)
        .order_by(ModerationEvent.id)
    ).all()
