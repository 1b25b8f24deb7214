"""Leaderboard queries: the latest result per model, ranked in the metric's own direction.

Only results of the spec's current version, on the dataset's current fingerprint and the
model's current revision, are ranked; a model whose latest result is older is shown as stale
(with why) until it is re-evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import DatasetRef, ModelRef, Result, Submission
from db.schemas import LeaderboardRow
from evalboard import catalog


@dataclass(frozen=True)
class BoardView:
    """Which leaderboard: task (through its spec), dataset, config, split and metric."""

    spec: catalog.Spec
    metric: catalog.Metric
    dataset: str
    config: str
    split: str


def board_view(
    *,
    dataset: str,
    split: str,
    metric: str | None = None,
    config: str = "default",
    task: str = catalog.IMAGE_CLASSIFICATION,
    spec_name: str | None = None,
) -> BoardView:
    """Check the names of a view against the catalog; an unknown metric lists the valid ones."""
    spec = catalog.spec(spec_name) if spec_name else catalog.default_spec(task)
    chosen = catalog.check_metric(spec, metric or spec.primary_metric)
    return BoardView(spec, chosen, dataset, config or "default", split)


def current_fingerprint(session: Session, dataset: str, config: str) -> str | None:
    """The newest fingerprint seen for a dataset (by a submission or a re-evaluation check)."""
    return session.scalar(
        select(DatasetRef.fingerprint)
        .where(DatasetRef.name == dataset, DatasetRef.config == config)
        .order_by(
            func.coalesce(DatasetRef.last_seen_at, DatasetRef.created_at).desc(),
            DatasetRef.id.desc(),
        )
        .limit(1)
    )


def current_revisions(session: Session, names: Sequence[str]) -> dict[str, str]:
    """Model name → the revision seen most recently."""
    seen = func.coalesce(ModelRef.last_seen_at, ModelRef.created_at)
    newest = (
        select(
            ModelRef.name,
            ModelRef.resolved_revision,
            func.row_number()
            .over(partition_by=ModelRef.name, order_by=(seen.desc(), ModelRef.id.desc()))
            .label("recency"),
        )
        .where(ModelRef.name.in_(list(names)))
        .subquery()
    )
    return {
        name: revision
        for name, revision in session.execute(
            select(newest.c.name, newest.c.resolved_revision).where(newest.c.recency == 1)
        )
    }


def latest_results(session: Session, view: BoardView) -> list[Any]:
    """The newest result of each model in the view, as plain rows (no ORM objects)."""
    dataset_ids = select(DatasetRef.id).where(
        DatasetRef.name == view.dataset, DatasetRef.config == view.config
    )
    ranked = (
        select(
            Result.id.label("result_id"),
            func.row_number()
            .over(
                partition_by=ModelRef.name,
                order_by=(Result.created_at.desc(), Result.id.desc()),
            )
            .label("recency"),
        )
        .join(ModelRef, Result.model_id == ModelRef.id)
        .where(
            Result.dataset_id.in_(dataset_ids),
            Result.split == view.split,
            Result.metric == view.metric.name,
            Result.task == view.spec.task,
            Result.spec_name == view.spec.name,
        )
        .subquery()
    )
    query = (
        select(
            Result.id,
            Result.submission_id,
            Result.value,
            Result.n_samples,
            Result.spec_name,
            Result.spec_version,
            Result.model_revision,
            Result.dataset_fingerprint,
            Result.created_at,
            ModelRef.name.label("model"),
            ModelRef.source.label("model_source"),
            ModelRef.lineage_submission_id,
        )
        .join(ranked, Result.id == ranked.c.result_id)
        .join(ModelRef, Result.model_id == ModelRef.id)
        .where(ranked.c.recency == 1)
    )
    return list(session.execute(query).all())


def stale_reasons(
    result: Any, *, spec_version: str, fingerprint: str | None, revision: str | None
) -> list[str]:
    """Why a result no longer measures the model as it is: empty when it is current."""
    reasons = []
    if result.spec_version != spec_version:
        reasons.append(f"spec version {result.spec_version} (current {spec_version})")
    if fingerprint is not None and result.dataset_fingerprint != fingerprint:
        reasons.append("dataset changed since")
    if revision is not None and result.model_revision != revision:
        reasons.append("model changed since")
    return reasons


def leaderboard_rows(
    session: Session,
    *,
    dataset: str,
    split: str,
    metric: str | None = None,
    config: str = "default",
    task: str = catalog.IMAGE_CLASSIFICATION,
    spec_name: str | None = None,
) -> list[LeaderboardRow]:
    """Ranked rows for the view, then its stale rows; ties share a rank (1, 2, 2, 4)."""
    view = board_view(
        dataset=dataset, split=split, metric=metric, config=config, task=task,
        spec_name=spec_name,
    )  # fmt: skip
    results = latest_results(session, view)
    if not results:
        return []
    fingerprint = current_fingerprint(session, view.dataset, view.config)
    revisions = current_revisions(session, [r.model for r in results])
    current: list[tuple[Any, list[str]]] = []
    stale: list[tuple[Any, list[str]]] = []
    for result in results:
        reasons = stale_reasons(
            result,
            spec_version=view.spec.version,
            fingerprint=fingerprint,
            revision=revisions.get(result.model),
        )
        (stale if reasons else current).append((result, reasons))
    rows = rank(current, view) + rank(stale, view)
    return _with_lineage(session, rows)


def rank(entries: Sequence[tuple[Any, list[str]]], view: BoardView) -> list[LeaderboardRow]:
    """Sort by value in the metric's direction; equal values share a rank. Entries with stale
    reasons get no rank."""
    higher = view.metric.higher_is_better
    ordered = sorted(
        entries, key=lambda e: (-e[0].value if higher else e[0].value, e[0].created_at, e[0].id)
    )
    rows: list[LeaderboardRow] = []
    previous_value: float | None = None
    position_rank = 0
    for position, (result, reasons) in enumerate(ordered, start=1):
        if previous_value is None or result.value != previous_value:
            position_rank = position
        previous_value = result.value
        rows.append(
            LeaderboardRow(
                rank=None if reasons else position_rank,
                status="stale" if reasons else "ranked",
                stale_reasons=reasons,
                model=result.model,
                model_source=result.model_source,
                revision=result.model_revision,
                value=result.value,
                metric=view.metric.name,
                higher_is_better=view.metric.higher_is_better,
                n_samples=result.n_samples,
                submission_id=result.submission_id,
                dataset=view.dataset,
                config=view.config,
                split=view.split,
                dataset_fingerprint=result.dataset_fingerprint,
                spec_name=result.spec_name,
                spec_version=result.spec_version,
                lineage_submission_id=result.lineage_submission_id,
                evaluated_at=result.created_at,
            )
        )
    return rows


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


def model_rank(
    session: Session, *, model: str, dataset: str, config: str, split: str, spec_name: str
) -> int | None:
    """Where ``model`` ranks on its spec's primary metric; None when not ranked there."""
    spec = catalog.spec(spec_name)
    for row in leaderboard_rows(
        session, dataset=dataset, config=config, split=split, task=spec.task, spec_name=spec_name
    ):
        if row.model == model:
            return row.rank
    return None


def leaderboard_choices(session: Session) -> list[tuple[str, str, str, str, str]]:
    """Every (spec, dataset, config, split, metric) with at least one result, where the spec
    is in the catalog and the metric is one of its metrics; in the spec's metric order."""
    query = (
        select(Result.spec_name, DatasetRef.name, DatasetRef.config, Result.split, Result.metric)
        .join(DatasetRef, Result.dataset_id == DatasetRef.id)
        .distinct()
        .order_by(Result.spec_name, DatasetRef.name, DatasetRef.config, Result.split)
    )
    specs = {spec.name: spec for spec in catalog.SPECS}
    choices = [
        (spec, dataset, config, split, metric)
        for spec, dataset, config, split, metric in session.execute(query).all()
        if spec in specs and metric in specs[spec].metrics
    ]
    return sorted(choices, key=lambda c: (c[:4], specs[c[0]].metrics.index(c[4])))
