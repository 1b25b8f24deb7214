"""Which boards exist: one per column mapping of a dataset, config, split and spec.

The same split read with two label columns is two boards. These list them (for the
dashboard's selectors, the CLI's messages) and decide which one a reader means when told only
some roles' columns, or none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.identity import board_columns, columns_text, describe_columns
from db.leaderboard import BoardView, chunks
from db.models import DatasetRef, Result, Submission
from evalboard import catalog


def matching_columns(
    available: Sequence[Mapping[str, str]], given: Mapping[str, str]
) -> list[dict[str, str]]:
    """The distinct boards' column mappings that agree with every role in ``given``."""
    found: list[dict[str, str]] = []
    for mapping in available:
        agrees = all(mapping.get(role) == column for role, column in given.items())
        if agrees and dict(mapping) not in found:
            found.append(dict(mapping))
    return found


def default_columns(
    task: str, available: Sequence[Mapping[str, str]], given: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    """Which board a reader means by ``given`` (some roles' columns, maybe none).

    The only board that matches; else the one whose other roles take the task's defaults, as
    a submission with the same options would; with no board that matches, that default (an
    empty board). None when several match and none of them is the default: ambiguous.
    """
    given = dict(given or {})
    wanted = catalog.task(task).column_mapping(given)
    candidates = matching_columns(available, given)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates or wanted in candidates:
        return wanted
    return None


def mappings_of(session: Session, keys: Iterable[str]) -> dict[str, dict[str, str]]:
    """Columns key → the full column mapping it stands for (read from one of its submissions)."""
    wanted = sorted(set(keys))
    firsts: dict[int, str] = {}
    for chunk in chunks(wanted):
        for key, submission_id in session.execute(
            select(Result.columns_key, func.min(Result.submission_id))
            .where(Result.columns_key.in_(chunk))
            .group_by(Result.columns_key)
        ):
            firsts[submission_id] = key
    found: dict[str, dict[str, str]] = {}
    for chunk in chunks(list(firsts)):
        for submission_id, task, mapping in session.execute(
            select(Submission.id, Submission.task, Submission.column_mapping).where(
                Submission.id.in_(chunk)
            )
        ):
            found[firsts[submission_id]] = board_columns(task, mapping)
    return found


def view_columns(session: Session, view: BoardView) -> list[dict[str, str]]:
    """The column mappings that have a board on the view's dataset, config, split, spec and
    metric (whatever the view's own columns): the task's defaults first, then by label."""
    keys = session.scalars(
        select(Result.columns_key)
        .join(DatasetRef, Result.dataset_id == DatasetRef.id)
        .where(
            DatasetRef.name == view.dataset,
            DatasetRef.config == view.config,
            Result.split == view.split,
            Result.metric == view.metric.name,
            Result.spec_name == view.spec.name,
            Result.task == view.spec.task,
        )
        .distinct()
    ).all()
    mappings = mappings_of(session, keys)
    default = board_columns(view.spec.task, {})
    return sorted(
        mappings.values(),
        key=lambda m: (m != default, describe_columns(view.spec.task, m), columns_text(m)),
    )


def board_choices(session: Session) -> list[tuple[str, str, str, str, str, str]]:
    """Every (spec, dataset, config, split, columns, metric) with at least one result, where
    the spec is in the catalog and the metric is one of its metrics; ``columns`` is the full
    column mapping as canonical JSON (``columns_text``). In the spec's metric order."""
    query = (
        select(
            Result.spec_name,
            DatasetRef.name,
            DatasetRef.config,
            Result.split,
            Result.columns_key,
            Result.metric,
        )  # fmt: skip
        .join(DatasetRef, Result.dataset_id == DatasetRef.id)
        .distinct()
    )
    specs = {spec.name: spec for spec in catalog.SPECS}
    rows = [
        row
        for row in session.execute(query).all()
        if row[0] in specs and row[5] in specs[row[0]].metrics
    ]
    mappings = mappings_of(session, [row[4] for row in rows])
    choices = [
        (spec, dataset, config, split, columns_text(mappings.get(key, {})), metric)
        for spec, dataset, config, split, key, metric in rows
    ]
    return sorted(choices, key=lambda c: (c[:5], specs[c[0]].metrics.index(c[5])))


def leaderboard_choices(session: Session) -> list[tuple[str, str, str, str, str]]:
    """Every (spec, dataset, config, split, metric) with at least one result, where the spec
    is in the catalog and the metric is one of its metrics; in the spec's metric order. Each
    may have several boards, one per column mapping (``board_choices``)."""
    choices = [(*c[:4], c[5]) for c in board_choices(session)]
    return list(dict.fromkeys(choices))
