"""Leaderboard rows as people read them: every metric of the spec, display names, lineage.

``db.leaderboard`` finds and ranks a view's entries; this dresses the ones shown (a page, or
every row for an export) as ``LeaderboardRow``s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.leaderboard import Board, Entry, board_view, build_board, chunks, readable_name, with_dates
from db.models import ModelRef, Result, Submission
from db.schemas import LeaderboardRow
from evalboard import catalog


def metrics_of(
    session: Session, submission_ids: Sequence[int]
) -> dict[int, dict[str, tuple[float, float | None, float | None]]]:
    """Submission id → metric → (value, interval low, interval high)."""
    found: dict[int, dict[str, tuple[float, float | None, float | None]]] = {}
    for chunk in chunks(list(submission_ids)):
        for submission_id, metric, value, low, high in session.execute(
            select(
                Result.submission_id, Result.metric, Result.value, Result.ci_low, Result.ci_high
            ).where(Result.submission_id.in_(chunk))
        ):
            found.setdefault(submission_id, {})[metric] = (value, low, high)
    return found


def display_name(entry: Entry, training: Submission | None) -> str:
    """The Hub id, the folder's name, or "<base> fine-tuned (run N)" for a trained model."""
    if entry.lineage_submission_id is None:
        return entry.folder_name
    base = _short(training.model.name) if training is not None else "a model"
    return f"{base} fine-tuned (run {entry.lineage_submission_id})"


def model_display_name(session: Session, model: str) -> str:
    """The display name of a model, as its leaderboard rows show it."""
    ref = session.scalars(
        select(ModelRef).where(ModelRef.name == model).order_by(ModelRef.id.desc()).limit(1)
    ).first()
    if ref is None:
        return model
    if ref.lineage_submission_id is None:
        return readable_name(ref.name, ref.source)
    training = session.get(Submission, ref.lineage_submission_id)
    base = _short(training.model.name) if training is not None else "a model"
    return f"{base} fine-tuned (run {ref.lineage_submission_id})"


def rows_of(session: Session, board: Board, entries: Sequence[Entry]) -> list[LeaderboardRow]:
    """Full rows (every metric of the spec, lineage, display names) for ``entries``."""
    with_dates(session, entries)
    metrics = metrics_of(session, [entry.submission_id for entry in entries])
    trainings = trainings_of(session, [e.lineage_submission_id for e in entries])
    view = board.view
    columns = view.column_mapping
    rows = []
    for entry in entries:
        training = trainings.get(entry.lineage_submission_id or -1)
        base_model = training.model.name if training is not None else None
        display = display_name(entry, training)
        own = metrics.get(entry.submission_id, {})
        rows.append(
            LeaderboardRow(
                rank=entry.rank,
                model=entry.model,
                display_name=display,
                revision=entry.model_revision,
                source=entry.source,
                value=entry.value,
                ci_low=entry.ci_low,
                ci_high=entry.ci_high,
                metric=view.metric.name,
                metrics={name: own[name][0] for name in view.spec.metrics if name in own},
                intervals={
                    name: [own[name][1], own[name][2]]
                    for name in view.spec.metrics
                    if name in own and own[name][1] is not None
                },
                n_samples=entry.n_samples,
                submission_id=entry.submission_id,
                model_source=entry.model_source,
                higher_is_better=view.metric.higher_is_better,
                dataset=view.dataset,
                config=view.config,
                split=view.split,
                dataset_fingerprint=entry.dataset_fingerprint,
                spec_name=entry.spec_name,
                spec_version=entry.spec_version,
                status=entry.status,
                stale_reasons=entry.stale_reasons,
                overlaps_previous=entry.overlaps_previous,
                architecture=entry.architecture,
                parameter_count=entry.parameter_count,
                submitter=entry.submitter,
                lineage_submission_id=entry.lineage_submission_id,
                base_model=base_model,
                training_parameters=(
                    dict(training.parameters or {}).get("training") if training else None
                ),
                evaluated_at=entry.created_at or datetime.now(UTC),
                columns=dict(columns),
            )
        )
    return rows


def _short(name: str) -> str:
    path = PurePosixPath(name)
    return name if not name.startswith("/") else path.name


def trainings_of(session: Session, ids: Iterable[int | None]) -> dict[int, Submission]:
    wanted = sorted({i for i in ids if i is not None})
    found: dict[int, Submission] = {}
    for chunk in chunks(wanted):
        for submission in session.scalars(select(Submission).where(Submission.id.in_(chunk))):
            found[submission.id] = submission
    return found


def leaderboard_rows(
    session: Session,
    *,
    dataset: str,
    split: str,
    metric: str | None = None,
    config: str = "default",
    task: str = catalog.IMAGE_CLASSIFICATION,
    spec_name: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> list[LeaderboardRow]:
    """Every row of the view: ranked and baseline rows by value, then stale ones. ``columns``
    names the board (role → column); roles left out take the task's default columns."""
    view = board_view(
        dataset=dataset, split=split, metric=metric, config=config, task=task,
        spec_name=spec_name, columns=columns,
    )  # fmt: skip
    board = build_board(session, view)
    return rows_of(session, board, board.entries)
