"""Leaderboard queries: the latest visible result per model, ranked in the metric's direction.

A board is a task (through its spec), dataset, config, split and column mapping, as a result's
identity is: the same split read with two label columns is two boards. Only results of the
spec's current version, on the dataset's current fingerprint and the model's current revision,
are ranked; a model whose latest result is older is shown as stale (with why) until it is
re-evaluated. Baselines are always shown and never ranked; hidden results are left out. One
indexed range scan finds a view's rows; ``db.board_rows`` builds full rows (every metric,
lineage) only for the rows asked for, so a page of 50 never pays for 2,000.
``db.board_choices`` lists the boards that exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import exists, func, select, union_all
from sqlalchemy.orm import Session

from db.identity import board_columns, columns_key, describe_columns
from db.models import DatasetRef, ModelRef, Moderation, Result, Submission
from evalboard import catalog

IN_CHUNK = 900  # ids per IN (...) list: under every backend's parameter limit


@dataclass(frozen=True)
class BoardView:
    """Which leaderboard: task (through its spec), dataset, config, split, column mapping and
    metric."""

    spec: catalog.Spec
    metric: catalog.Metric
    dataset: str
    config: str
    split: str
    # Role → column, every role (sorted pairs, so a view stays hashable); empty: the defaults.
    columns: tuple[tuple[str, str], ...] = ()

    @property
    def column_mapping(self) -> dict[str, str]:
        return board_columns(self.spec.task, dict(self.columns))

    @property
    def columns_key(self) -> str:
        return columns_key(self.spec.task, dict(self.columns))

    @property
    def label(self) -> str:
        """The board's columns as a person names them (``fine_label``)."""
        return describe_columns(self.spec.task, self.column_mapping)


def board_view(
    *,
    dataset: str,
    split: str,
    metric: str | None = None,
    config: str = "default",
    task: str = catalog.IMAGE_CLASSIFICATION,
    spec_name: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> BoardView:
    """Check the names of a view against the catalog; an unknown metric lists the valid ones,
    an unknown column role the task's roles. Roles left out of ``columns`` take the task's
    default columns, as a submission's do."""
    spec = catalog.spec(spec_name) if spec_name else catalog.default_spec(task)
    chosen = catalog.check_metric(spec, metric or spec.primary_metric)
    mapping = catalog.task(spec.task).column_mapping(dict(columns or {}))
    return BoardView(
        spec, chosen, dataset, config or "default", split, tuple(sorted(mapping.items()))
    )


@dataclass(slots=True)
class Entry:
    """One row of a board before it is dressed as a LeaderboardRow: light, for ranking and
    filtering thousands of models in a few milliseconds."""

    result_id: int
    submission_id: int
    value: float
    ci_low: float | None
    ci_high: float | None
    n_samples: int
    spec_name: str
    spec_version: str
    model_revision: str
    dataset_fingerprint: str
    model: str
    model_source: str
    lineage_submission_id: int | None
    architecture: str | None
    parameter_count: int | None
    submitter: str
    current_revision: str | None  # the model's revision seen most recently
    baseline: bool
    # When it was measured: read only for the rows shown or a date filter (``with_dates``).
    created_at: datetime | None = None
    rank: int | None = None
    status: str = "ranked"  # ranked | stale | baseline
    stale_reasons: Sequence[str] = ()
    overlaps_previous: bool = False  # its interval overlaps the ranked row above it

    @property
    def source(self) -> str:
        if self.baseline:
            return "baseline"
        return "trained" if self.lineage_submission_id is not None else "submitted"

    @property
    def folder_name(self) -> str:
        """A readable name without the path: the Hub id, or the folder's own name."""
        return readable_name(self.model, self.model_source)


@dataclass
class Board:
    view: BoardView
    entries: list[Entry]  # ranked and baseline rows by value, then stale rows

    @property
    def ranked(self) -> int:
        return sum(1 for entry in self.entries if entry.rank is not None)


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


def chunks(values: Sequence[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), IN_CHUNK):
        yield list(values[start : start + IN_CHUNK])


def view_entries(session: Session, view: BoardView, *, include_hidden: bool = False) -> list[Entry]:
    """The newest visible result of each model in the view, and every baseline result.

    One query: the view's range of the covering index ``ix_results_board`` numbered newest
    first per model (a window function, on SQLite and PostgreSQL alike), joined to the few
    columns a row needs. Only the rows of the board come back, as Core rows, not ORM objects.
    """
    connection = session.connection()
    dataset_ids = list(
        connection.execute(
            select(DatasetRef.id).where(
                DatasetRef.name == view.dataset, DatasetRef.config == view.config
            )
        ).scalars()
    )
    if not dataset_ids:
        return []
    in_view = [
        Result.dataset_id.in_(dataset_ids),
        Result.split == view.split,
        Result.metric == view.metric.name,
        Result.spec_name == view.spec.name,
        Result.task == view.spec.task,
        Result.columns_key == view.columns_key,
    ]

    def marked(flag: Any) -> Any:
        return exists().where(Moderation.submission_id == Result.submission_id, flag.is_(True))

    if not include_hidden:
        in_view.append(~marked(Moderation.hidden))
    newest = (
        select(
            Result.id.label("id"),
            func.row_number()
            .over(
                partition_by=Result.model_name,
                order_by=(Result.created_at.desc(), Result.id.desc()),
            )
            .label("newest"),
        )
        .where(*in_view, ~marked(Moderation.baseline))
        .subquery()
    )
    chosen = union_all(
        select(newest.c.id).where(newest.c.newest == 1),
        select(Result.id).where(*in_view, marked(Moderation.baseline)),
    ).subquery()
    newest_revision = (
        select(ModelRef.resolved_revision)
        .where(ModelRef.name == Result.model_name)
        .order_by(ModelRef.last_seen_at.desc(), ModelRef.id.desc())
        .limit(1)
        .correlate(Result)
        .scalar_subquery()
    )
    details = (
        select(
            Result.id,
            Result.submission_id,
            Result.value,
            Result.ci_low,
            Result.ci_high,
            Result.n_samples,
            Result.spec_name,
            Result.spec_version,
            Result.model_revision,
            Result.dataset_fingerprint,
            ModelRef.name,
            ModelRef.source,
            ModelRef.lineage_submission_id,
            ModelRef.architecture,
            ModelRef.parameter_count,
            Submission.submitter,
            newest_revision,
            marked(Moderation.baseline),
        )  # fmt: skip
        .join(ModelRef, Result.model_id == ModelRef.id)
        .join(Submission, Result.submission_id == Submission.id)
        .where(Result.id.in_(select(chosen.c.id)))
    )
    return [Entry(*row) for row in connection.execute(details)]  # type: ignore[call-arg]


def with_dates(session: Session, entries: Sequence[Entry]) -> None:
    """Read when each entry was measured (the rows shown, or all of them for a date filter)."""
    missing = {entry.result_id: entry for entry in entries if entry.created_at is None}
    for chunk in chunks(list(missing)):
        for result_id, created_at in session.connection().execute(
            select(Result.id, Result.created_at).where(Result.id.in_(chunk))
        ):
            when = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
            missing[result_id].created_at = when


def stale_reasons(
    entry: Entry, *, spec_version: str, fingerprint: str | None, revision: str | None
) -> tuple[str, ...]:
    """Why a result no longer measures the model as it is: empty when it is current."""
    reasons: list[str] = []
    if entry.spec_version != spec_version:
        reasons.append(f"spec version {entry.spec_version} (current {spec_version})")
    if fingerprint is not None and entry.dataset_fingerprint != fingerprint:
        reasons.append("dataset changed since")
    if revision is not None and entry.model_revision != revision:
        reasons.append("model changed since")
    return tuple(reasons)


def build_board(session: Session, view: BoardView, *, include_hidden: bool = False) -> Board:
    """Every row of a view, ranked: equal values share a rank (1, 2, 2, 4)."""
    entries = view_entries(session, view, include_hidden=include_hidden)
    if not entries:
        return Board(view, [])
    fingerprint = current_fingerprint(session, view.dataset, view.config)
    current, stale = [], []
    for entry in entries:
        entry.stale_reasons = stale_reasons(
            entry,
            spec_version=view.spec.version,
            fingerprint=fingerprint,
            revision=entry.current_revision,
        )
        if entry.baseline:
            entry.status = "baseline"
            current.append(entry)
        elif entry.stale_reasons:
            entry.status = "stale"
            stale.append(entry)
        else:
            current.append(entry)
    higher = view.metric.higher_is_better

    def order(entry: Entry) -> tuple[Any, ...]:
        # Result ids grow with time: equal values keep the earlier result first.
        return (-entry.value if higher else entry.value, entry.result_id)

    current.sort(key=order)
    stale.sort(key=order)
    previous: Entry | None = None
    position = 0
    for entry in current:
        if entry.baseline:
            continue
        position += 1
        same = previous is not None and entry.value == previous.value
        entry.rank = previous.rank if same and previous is not None else position
        entry.overlaps_previous = previous is not None and _overlap(previous, entry)
        previous = entry
    return Board(view, current + stale)


def _overlap(above: Entry, below: Entry) -> bool:
    """Whether two rows' 95% intervals overlap: not significantly different."""
    if (
        above.ci_low is None
        or above.ci_high is None
        or below.ci_low is None
        or below.ci_high is None
    ):
        return False
    return max(above.ci_low, below.ci_low) <= min(above.ci_high, below.ci_high)


def readable_name(name: str, source: str) -> str:
    """A name without the path: the Hub id, or the folder's own name (``run-N`` for a trained
    model's ``artifacts/run-N/model`` folder)."""
    if source == "hub":
        return name
    path = PurePosixPath(name)
    if path.name == "model" and path.parent.name.startswith("run-"):
        return path.parent.name
    return path.name or name


def model_rank(
    session: Session,
    *,
    model: str,
    dataset: str,
    config: str,
    split: str,
    spec_name: str,
    columns: Mapping[str, str] | None = None,
) -> int | None:
    """Where ``model`` ranks on its spec's primary metric, on the board of ``columns`` (the
    task's default columns when None); None when not ranked there."""
    spec = catalog.spec(spec_name)
    view = board_view(
        dataset=dataset, config=config, split=split, spec_name=spec.name,
        columns=board_columns(spec.task, columns),
    )  # fmt: skip
    for entry in build_board(session, view).entries:
        if entry.model == model and entry.status == "ranked":
            return entry.rank
    return None
