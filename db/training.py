"""Training queries: the run record and its logged steps. The caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import TrainingLog, TrainingRun, utcnow


def ensure_training_run(session: Session, submission_id: int, *, output_dir: str) -> TrainingRun:
    """The run record of a training submission, created on its first attempt."""
    run = session.get(TrainingRun, submission_id)
    if run is None:
        run = TrainingRun(submission_id=submission_id, output_dir=output_dir)
        session.add(run)
        session.flush()
    return run


def get_training_run(session: Session, submission_id: int) -> TrainingRun | None:
    return session.get(TrainingRun, submission_id)


def update_training_run(session: Session, submission_id: int, **values: Any) -> None:
    run = session.get(TrainingRun, submission_id)
    if run is None:
        raise LookupError(f"no training run for submission {submission_id}")
    for key, value in values.items():
        setattr(run, key, value)
    run.updated_at = utcnow()


def record_training_log(
    session: Session,
    submission_id: int,
    *,
    step: int,
    epoch: float | None,
    loss: float | None = None,
    learning_rate: float | None = None,
    metrics: dict[str, float] | None = None,
) -> None:
    session.add(
        TrainingLog(
            submission_id=submission_id,
            step=step,
            epoch=epoch,
            loss=loss,
            learning_rate=learning_rate,
            metrics=metrics or {},
            created_at=utcnow(),
        )
    )


def training_logs(session: Session, submission_id: int) -> Sequence[TrainingLog]:
    """Every logged event of a training, in the order they happened."""
    return session.scalars(
        select(TrainingLog)
        .where(TrainingLog.submission_id == submission_id)
        .order_by(TrainingLog.id)
    ).all()
