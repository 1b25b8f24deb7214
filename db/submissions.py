"""Submission lifecycle queries. The caller owns the transaction; nothing here commits.

State changes are conditional UPDATEs (``... WHERE state = :expected``), so two workers that
receive the same submission cannot both run it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from db.identity import submission_key
from db.models import (
    DatasetRef,
    ModelRef,
    Submission,
    SubmissionState,
    utcnow,
)
from db.schemas import DatasetRefCreate, ModelRefCreate, SubmissionCreate


def get_or_create_model_ref(session: Session, ref: ModelRefCreate) -> ModelRef:
    """The stored reference for this model revision, created on first use; marks it seen now.

    A folder that is a trained model keeps its ``trained`` reference (and lineage) when it is
    submitted again as a local path: the same name and content are the same model.
    """
    existing = session.scalars(
        select(ModelRef)
        .where(ModelRef.name == ref.name, ModelRef.resolved_revision == ref.resolved_revision)
        .order_by((ModelRef.source == ref.source).desc(), ModelRef.id)
    ).first()
    if existing is None:
        existing = ModelRef(**ref.model_dump())
        session.add(existing)
    existing.last_seen_at = utcnow()
    session.flush()
    return existing


def get_or_create_dataset_ref(session: Session, ref: DatasetRefCreate) -> DatasetRef:
    """The stored reference for this exact dataset content, created on first use; marks it
    seen now (the newest seen fingerprint of a dataset is its current one)."""
    existing = session.scalars(
        select(DatasetRef).where(
            DatasetRef.source == ref.source,
            DatasetRef.name == ref.name,
            DatasetRef.config == ref.config,
            DatasetRef.fingerprint == ref.fingerprint,
        )
    ).first()
    if existing is None:
        existing = DatasetRef(**ref.model_dump())
        session.add(existing)
    existing.last_seen_at = utcnow()
    session.flush()
    return existing


def create_submission(session: Session, request: SubmissionCreate) -> Submission:
    """Insert a ``queued`` submission with its model and dataset references."""
    submission = Submission(
        kind=request.kind,
        task=request.task,
        submitter=request.submitter,
        model=get_or_create_model_ref(session, request.model),
        dataset=get_or_create_dataset_ref(session, request.dataset),
        split=request.split,
        column_mapping=request.column_mapping,
        parameters=request.parameters,
        spec_name=request.spec_name,
        spec_version=request.spec_version,
        identity_key=submission_key(request),
        trigger=request.trigger,
        supersedes_submission_id=request.supersedes_submission_id,
        due_reasons=request.due_reasons,
        webhook_url=request.webhook_url,
        state=SubmissionState.QUEUED.value,
        progress=0.0,
        attempts=0,
        created_at=utcnow(),
    )
    session.add(submission)
    session.flush()
    return submission


ACTIVE_OR_DONE = (
    SubmissionState.QUEUED.value,
    SubmissionState.RUNNING.value,
    SubmissionState.SUCCEEDED.value,
)
# Failures that are ours, not the submitter's: they do not count against a quota.
OUR_FAILURES = ("internal", "worker_lost", "timeout", "out_of_memory", "resources")


def find_duplicate(
    session: Session, request: SubmissionCreate, *, include_succeeded: bool = True
) -> Submission | None:
    """A queued, running (or, unless a re-run is forced, succeeded) submission of the same
    submitter that measures the same thing (``db.identity.submission_key``).

    Call it inside ``locked_scope`` so that the check and the insert that follows are atomic.
    """
    states = list(ACTIVE_OR_DONE if include_succeeded else ACTIVE_OR_DONE[:2])
    return session.scalars(
        select(Submission)
        .where(
            Submission.submitter == request.submitter,  # never reveal another's submission
            Submission.identity_key == submission_key(request),
            Submission.state.in_(states),
        )
        .order_by(Submission.id)
        .limit(1)
    ).first()


def usage_of(session: Session, submitter: str, *, since: datetime) -> dict[str, int]:
    """A submitter's counted submissions and attempts since ``since``, and how many are active.

    Cancelled runs and our own failures do not count as submissions; every attempt counts.
    """
    rows = session.execute(
        select(Submission.state, Submission.failure_category, Submission.attempts).where(
            Submission.submitter == submitter, Submission.created_at >= since
        )
    ).all()
    counted = sum(
        1
        for state, category, _ in rows
        if state != SubmissionState.CANCELLED.value
        and not (state == SubmissionState.FAILED.value and category in OUR_FAILURES)
    )
    active = sum(
        1 for state, _, _ in rows
        if state in (SubmissionState.QUEUED.value, SubmissionState.RUNNING.value)
    )  # fmt: skip
    return {"submissions": counted, "active": active, "attempts": sum(a for _, _, a in rows)}


def get_submission(session: Session, submission_id: int) -> Submission | None:
    return session.get(Submission, submission_id)


def list_submissions(
    session: Session, *, limit: int = 100, submitter: str | None = None
) -> Sequence[Submission]:
    """The newest submissions first."""
    query = select(Submission).order_by(Submission.id.desc()).limit(limit)
    if submitter is not None:
        query = query.where(Submission.submitter == submitter)
    return session.scalars(query).unique().all()


def queue_position(session: Session, submission: Submission) -> int | None:
    """1 for the next queued submission of its kind; None when it is not queued."""
    if submission.state != SubmissionState.QUEUED.value:
        return None
    ahead = session.scalar(
        select(func.count())
        .select_from(Submission)
        .where(
            Submission.state == SubmissionState.QUEUED.value,
            Submission.kind == submission.kind,
            Submission.id < submission.id,
        )
    )
    return int(ahead or 0) + 1


def set_task_id(session: Session, submission_id: int, task_id: str) -> None:
    session.execute(
        update(Submission)
        .execution_options(synchronize_session=False)
        .where(Submission.id == submission_id)
        .values(celery_task_id=task_id)
    )


def claim_submission(
    session: Session, submission_id: int, *, stale_before: datetime | None = None
) -> int | None:
    """Move ``queued → running`` atomically; returns the new attempt number, or None if another
    worker (or a cancel) won.

    With ``stale_before``, a ``running`` submission whose heartbeat is older is taken over too:
    its worker died and the broker delivered the task again. The attempt number is the claim:
    every later write of this run names it, so a run that lost its submission writes nothing.
    """
    now = utcnow()
    claimable = Submission.state == SubmissionState.QUEUED.value
    if stale_before is not None:
        claimable = or_(
            claimable,
            and_(
                Submission.state == SubmissionState.RUNNING.value,
                Submission.heartbeat_at < stale_before,
            ),
        )
    found = session.execute(
        select(Submission.attempts, Submission.state).where(
            Submission.id == submission_id, claimable
        )
    ).first()
    if found is None:
        return None
    attempt, state = found
    result = session.execute(
        update(Submission)
        .execution_options(synchronize_session=False)
        .where(Submission.id == submission_id, claimable, Submission.attempts == attempt)
        .values(
            state=SubmissionState.RUNNING.value,
            started_at=now,
            heartbeat_at=now,
            attempts=attempt + 1,
            progress=0.0,
        )
    )
    if rowcount(result) != 1:
        return None
    if state == SubmissionState.RUNNING.value:  # its last process stopped without a word
        note_loss(session, submission_id, f"attempt {attempt} stopped (killed or crashed)")
    return int(attempt) + 1


def note_loss(session: Session, submission_id: int, how: str) -> None:
    """Count one loss of the process that ran a submission (a kill, a crash, a lost host)."""
    submission = session.get(Submission, submission_id)
    if submission is not None:
        submission.losses = [*(submission.losses or []), how]
        session.flush()


def running_condition(submission_id: int, attempt: int | None) -> Any:
    """This submission, running, and (when ``attempt`` is given) still held by that attempt."""
    condition = and_(
        Submission.id == submission_id, Submission.state == SubmissionState.RUNNING.value
    )
    if attempt is not None:
        condition = and_(condition, Submission.attempts == attempt)
    return condition


def record_progress(
    session: Session,
    submission_id: int,
    progress: float,
    *,
    attempt: int | None = None,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Write progress (and what it counts) and a heartbeat; False when the submission is no
    longer running (or no longer held by ``attempt``)."""
    values: dict[str, Any] = {"progress": max(0.0, min(1.0, progress)), "heartbeat_at": utcnow()}
    if detail is not None:
        values["progress_detail"] = detail
    result = session.execute(
        update(Submission)
        .execution_options(synchronize_session=False)
        .where(running_condition(submission_id, attempt))
        .values(**values)
    )
    return rowcount(result) == 1


def touch_heartbeat(session: Session, submission_id: int, *, attempt: int | None = None) -> bool:
    """Refresh the heartbeat of a running submission held by ``attempt``."""
    result = session.execute(
        update(Submission)
        .execution_options(synchronize_session=False)
        .where(running_condition(submission_id, attempt))
        .values(heartbeat_at=utcnow())
    )
    return rowcount(result) == 1


def fail_submission(
    session: Session,
    submission_id: int,
    *,
    category: str,
    message: str,
    from_states: Sequence[str] = (
        SubmissionState.QUEUED.value,
        SubmissionState.RUNNING.value,
    ),
    attempt: int | None = None,
) -> bool:
    """Mark ``failed`` with a category and message, unless it already ended (or, with
    ``attempt``, another attempt holds it now)."""
    condition = and_(Submission.id == submission_id, Submission.state.in_(list(from_states)))
    if attempt is not None:
        condition = and_(condition, Submission.attempts == attempt)
    result = session.execute(
        update(Submission)
        .execution_options(synchronize_session=False)
        .where(condition)
        .values(
            state=SubmissionState.FAILED.value,
            failure_category=category,
            failure_message=message[:4000],
            finished_at=utcnow(),
        )
    )
    return rowcount(result) == 1


def cancel_submission(session: Session, submission_id: int) -> bool:
    """Cancel a queued or running submission; a running worker stops at its next check."""
    result = session.execute(
        update(Submission)
        .execution_options(synchronize_session=False)
        .where(
            Submission.id == submission_id,
            Submission.state.in_([SubmissionState.QUEUED.value, SubmissionState.RUNNING.value]),
        )
        .values(
            state=SubmissionState.CANCELLED.value,
            failure_category="cancelled",
            failure_message="cancelled by request",
            finished_at=utcnow(),
        )
    )
    return rowcount(result) == 1


def requeue_submission(
    session: Session, submission_id: int, *, stale_before: datetime, loss: bool = True
) -> bool:
    """Put a running submission whose worker stopped beating back to ``queued``; a loss,
    unless the service was stopped under it on purpose (``loss=False``)."""
    result = session.execute(
        update(Submission)
        .execution_options(synchronize_session=False)
        .where(
            Submission.id == submission_id,
            Submission.state == SubmissionState.RUNNING.value,
            Submission.heartbeat_at < stale_before,
        )
        .values(state=SubmissionState.QUEUED.value, progress=0.0)
    )
    if rowcount(result) != 1:
        return False
    if loss:
        note_loss(session, submission_id, "no heartbeat: the worker running it was lost")
    return True


def stale_running(session: Session, *, older_than: datetime) -> Sequence[Submission]:
    """Running submissions whose heartbeat is older than ``older_than``."""
    return (
        session.scalars(
            select(Submission).where(
                Submission.state == SubmissionState.RUNNING.value,
                Submission.heartbeat_at < older_than,
            )
        )
        .unique()
        .all()
    )


def long_queued(session: Session, *, older_than: datetime) -> Sequence[Submission]:
    """Queued submissions with no sign of life since ``older_than``: created (or, put back by
    the reaper, last heartbeat) before it. Oldest first."""
    last_seen = func.coalesce(Submission.heartbeat_at, Submission.created_at)
    return (
        session.scalars(
            select(Submission)
            .where(Submission.state == SubmissionState.QUEUED.value, last_seen < older_than)
            .order_by(Submission.id)
        )
        .unique()
        .all()
    )


def rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
