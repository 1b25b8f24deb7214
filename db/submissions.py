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

from db.models import (
    DatasetRef,
    ModelRef,
    Result,
    Submission,
    SubmissionState,
    utcnow,
)
from db.schemas import DatasetRefCreate, MetricResult, ModelRefCreate, SubmissionCreate


def get_or_create_model_ref(session: Session, ref: ModelRefCreate) -> ModelRef:
    """The stored reference for this exact model revision, created on first use."""
    existing = session.scalars(
        select(ModelRef).where(
            ModelRef.source == ref.source,
            ModelRef.name == ref.name,
            ModelRef.resolved_revision == ref.resolved_revision,
        )
    ).first()
    if existing is not None:
        return existing
    model_ref = ModelRef(**ref.model_dump())
    session.add(model_ref)
    session.flush()
    return model_ref


def get_or_create_dataset_ref(session: Session, ref: DatasetRefCreate) -> DatasetRef:
    """The stored reference for this exact dataset content, created on first use."""
    existing = session.scalars(
        select(DatasetRef).where(
            DatasetRef.source == ref.source,
            DatasetRef.name == ref.name,
            DatasetRef.config == ref.config,
            DatasetRef.fingerprint == ref.fingerprint,
        )
    ).first()
    if existing is not None:
        return existing
    dataset_ref = DatasetRef(**ref.model_dump())
    session.add(dataset_ref)
    session.flush()
    return dataset_ref


def create_submission(session: Session, request: SubmissionCreate) -> Submission:
    """Insert a ``queued`` submission with its model and dataset references."""
    submission = Submission(
        kind=request.kind,
        submitter=request.submitter,
        model=get_or_create_model_ref(session, request.model),
        dataset=get_or_create_dataset_ref(session, request.dataset),
        split=request.split,
        column_mapping=request.column_mapping,
        parameters=request.parameters,
        spec_name=request.spec_name,
        spec_version=request.spec_version,
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
OUR_FAILURES = ("internal", "worker_lost", "timeout", "out_of_memory")


def find_duplicate(session: Session, request: SubmissionCreate) -> Submission | None:
    """A queued, running or finished submission identical to ``request``: same resolved model
    revision, dataset fingerprint, config, split, column mapping, spec and parameters."""
    candidates = session.scalars(
        select(Submission)
        .join(ModelRef, Submission.model_id == ModelRef.id)
        .join(DatasetRef, Submission.dataset_id == DatasetRef.id)
        .where(
            Submission.kind == request.kind,
            Submission.submitter == request.submitter,  # never reveal another's submission
            Submission.state.in_(ACTIVE_OR_DONE),
            ModelRef.source == request.model.source,
            ModelRef.name == request.model.name,
            ModelRef.resolved_revision == request.model.resolved_revision,
            DatasetRef.source == request.dataset.source,
            DatasetRef.name == request.dataset.name,
            DatasetRef.config == request.dataset.config,
            DatasetRef.fingerprint == request.dataset.fingerprint,
            Submission.spec_name == request.spec_name,
            Submission.spec_version == request.spec_version,
        )
        .order_by(Submission.id)
    ).unique()
    for candidate in candidates:
        if (
            candidate.split == request.split
            and (candidate.column_mapping or {}) == request.column_mapping
            and (candidate.parameters or {}) == request.parameters
        ):
            return candidate
    return None


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
) -> bool:
    """Move ``queued → running`` atomically; False if another worker (or a cancel) won.

    With ``stale_before``, a ``running`` submission whose heartbeat is older is taken over too:
    its worker died and the broker delivered the task again.
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
    result = session.execute(
        update(Submission)
        .execution_options(synchronize_session=False)
        .where(Submission.id == submission_id, claimable)
        .values(
            state=SubmissionState.RUNNING.value,
            started_at=now,
            heartbeat_at=now,
            attempts=Submission.attempts + 1,
            progress=0.0,
        )
    )
    return _rowcount(result) == 1


def record_progress(session: Session, submission_id: int, progress: float) -> bool:
    """Write progress and a heartbeat; False when the submission is no longer running."""
    result = session.execute(
        update(Submission)
        .execution_options(synchronize_session=False)
        .where(Submission.id == submission_id, Submission.state == SubmissionState.RUNNING.value)
        .values(progress=max(0.0, min(1.0, progress)), heartbeat_at=utcnow())
    )
    return _rowcount(result) == 1


def touch_heartbeat(session: Session, submission_id: int) -> bool:
    """Refresh the heartbeat of a running submission."""
    result = session.execute(
        update(Submission)
        .execution_options(synchronize_session=False)
        .where(Submission.id == submission_id, Submission.state == SubmissionState.RUNNING.value)
        .values(heartbeat_at=utcnow())
    )
    return _rowcount(result) == 1


def complete_submission(
    session: Session,
    submission_id: int,
    *,
    metrics: Sequence[MetricResult],
    n_samples: int,
    provenance: dict[str, Any],
) -> bool:
    """Store every metric with its provenance and mark ``succeeded``, in the caller's transaction.

    Returns False (and writes nothing) if the submission is no longer ``running``.
    """
    now = utcnow()
    result = session.execute(
        update(Submission)
        .execution_options(synchronize_session=False)
        .where(Submission.id == submission_id, Submission.state == SubmissionState.RUNNING.value)
        .values(state=SubmissionState.SUCCEEDED.value, progress=1.0, finished_at=now)
    )
    if _rowcount(result) != 1:
        return False
    submission = session.get(Submission, submission_id)
    assert submission is not None
    for metric in metrics:
        session.add(
            Result(
                submission_id=submission.id,
                model_id=submission.model_id,
                dataset_id=submission.dataset_id,
                task=submission.model.task,
                split=str(provenance.get("split") or submission.split),
                metric=metric.metric,
                value=metric.value,
                higher_is_better=metric.higher_is_better,
                ci_low=metric.ci_low,
                ci_high=metric.ci_high,
                n_samples=n_samples,
                spec_name=submission.spec_name,
                spec_version=submission.spec_version,
                model_revision=submission.model.resolved_revision,
                dataset_fingerprint=submission.dataset.fingerprint,
                provenance=provenance,
                created_at=now,
            )
        )
    session.flush()
    return True


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
) -> bool:
    """Mark ``failed`` with a category and message, unless it already ended."""
    result = session.execute(
        update(Submission)
        .execution_options(synchronize_session=False)
        .where(Submission.id == submission_id, Submission.state.in_(list(from_states)))
        .values(
            state=SubmissionState.FAILED.value,
            failure_category=category,
            failure_message=message[:4000],
            finished_at=utcnow(),
        )
    )
    return _rowcount(result) == 1


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
    return _rowcount(result) == 1


def requeue_submission(session: Session, submission_id: int, *, stale_before: datetime) -> bool:
    """Put a running submission whose worker stopped beating back to ``queued``."""
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
    return _rowcount(result) == 1


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


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
