"""Leaderboard queries: the latest result per model, ranked in the metric's own direction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import DatasetRef, ModelRef, Result, Submission
from db.schemas import LeaderboardRow


def leaderboard_rows(
    session: Session,
    *,
    dataset: str,
    split: str,
    metric: str = "accuracy",
    config: str = "default",
    task: str = "image-classification",
) -> list[LeaderboardRow]:
    """Ranked rows for (task, dataset, config, split, metric); ties share a rank (1, 2, 2, 4)."""
    latest = (
        select(
            Result.id.label("result_id"),
            func.row_number()
            .over(
                partition_by=(ModelRef.source, ModelRef.name),
                order_by=(Result.created_at.desc(), Result.id.desc()),
            )
            .label("recency"),
        )
        .join(ModelRef, Result.model_id == ModelRef.id)
        .join(DatasetRef, Result.dataset_id == DatasetRef.id)
        .where(
            Result.task == task,
            Result.split == split,
            Result.metric == metric,
            DatasetRef.name == dataset,
            DatasetRef.config == config,
        )
        .subquery()
    )
    results = (
        session.scalars(
            select(Result)
            .join(latest, Result.id == latest.c.result_id)
            .where(latest.c.recency == 1)
        )
        .unique()
        .all()
    )
    return _with_lineage(session, rank_results(results))


def _with_lineage(session: Session, rows: list[LeaderboardRow]) -> list[LeaderboardRow]:
    """Add the base model and hyperparameters of fine-tuned models to their rows."""
    training_ids = {row.lineage_submission_id for row in rows if row.lineage_submission_id}
    if not training_ids:
        return rows
    trainings = {
        submission.id: submission
        for submission in session.scalars(
            select(Submission).where(Submission.id.in_(training_ids))
        ).unique()
    }
    for row in rows:
        training = trainings.get(row.lineage_submission_id or -1)
        if training is not None:
            row.base_model = training.model.name
            row.training_parameters = dict(training.parameters or {}).get("training")
    return rows


def rank_results(results: Sequence[Result]) -> list[LeaderboardRow]:
    """Sort by value in the metric's direction and give equal values the same rank."""
    if not results:
        return []
    higher_is_better = results[0].higher_is_better
    ordered = sorted(
        results, key=lambda r: (-r.value if higher_is_better else r.value, r.created_at, r.id)
    )
    rows: list[LeaderboardRow] = []
    previous_value: float | None = None
    rank = 0
    for position, result in enumerate(ordered, start=1):
        if previous_value is None or result.value != previous_value:
            rank = position
        previous_value = result.value
        rows.append(
            LeaderboardRow(
                rank=rank,
                model=result.model.name,
                model_source=result.model.source,
                revision=result.model_revision,
                value=result.value,
                metric=result.metric,
                higher_is_better=result.higher_is_better,
                n_samples=result.n_samples,
                submission_id=result.submission_id,
                dataset=result.dataset.name,
                config=result.dataset.config,
                split=result.split,
                dataset_fingerprint=result.dataset_fingerprint,
                spec_name=result.spec_name,
                spec_version=result.spec_version,
                lineage_submission_id=result.model.lineage_submission_id,
                evaluated_at=result.created_at,
            )
        )
    return rows


def leaderboard_choices(session: Session) -> list[tuple[str, str, str, str]]:
    """Every (dataset, config, split, metric) that has at least one result."""
    query = (
        select(DatasetRef.name, DatasetRef.config, Result.split, Result.metric)
        .join(DatasetRef, Result.dataset_id == DatasetRef.id)
        .distinct()
        .order_by(DatasetRef.name, DatasetRef.config, Result.split, Result.metric)
    )
    return [tuple(row) for row in session.execute(query).all()]  # type: ignore[misc]
