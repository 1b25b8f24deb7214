"""A model's history: every result set it ever got, oldest first, never overwritten.

Each result set belongs to one board (dataset, config, split, column mapping): what changed is
told against the previous result on the same board, never across two label columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import false, or_, select
from sqlalchemy.orm import Session

from db.identity import board_columns
from db.models import DatasetRef, ModelRef, Moderation, Result, Submission
from db.results import flags_of
from db.schemas import HistoryEntry


def model_history(
    session: Session,
    *,
    model: str,
    dataset: str | None = None,
    split: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> list[HistoryEntry]:
    """Every visible result set of ``model`` (by name, any revision), oldest first, each with
    what changed since the previous one on the same board (dataset, config, split, columns).
    ``columns`` keeps only the boards whose columns agree with every role it names."""
    query = (
        select(
            Result.submission_id,
            Result.metric,
            Result.value,
            Result.n_samples,
            Result.split,
            Result.spec_name,
            Result.spec_version,
            Result.model_revision,
            Result.dataset_fingerprint,
            Result.columns_key,
            Result.created_at,
            ModelRef.name.label("model"),
            DatasetRef.name.label("dataset"),
            DatasetRef.config,
            Submission.trigger,
            Submission.supersedes_submission_id,
            Submission.task,
            Submission.column_mapping,
        )  # fmt: skip
        .join(ModelRef, Result.model_id == ModelRef.id)
        .join(DatasetRef, Result.dataset_id == DatasetRef.id)
        .join(Submission, Result.submission_id == Submission.id)
        .outerjoin(Moderation, Moderation.submission_id == Result.submission_id)
        .where(
            ModelRef.name == model, or_(Moderation.hidden.is_(None), Moderation.hidden == false())
        )
        .order_by(Result.created_at, Result.submission_id, Result.id)
    )
    if dataset is not None:
        query = query.where(DatasetRef.name == dataset)
    if split is not None:
        query = query.where(Result.split == split)
    entries: dict[int, HistoryEntry] = {}
    boards: dict[int, str] = {}
    for row in session.execute(query):
        entry = entries.get(row.submission_id)
        if entry is None:
            entry = entries[row.submission_id] = _entry(row)
            boards[row.submission_id] = row.columns_key
        entry.metrics[row.metric] = row.value
    flags = flags_of(session, list(entries))
    previous: dict[tuple[str, str, str, str], HistoryEntry] = {}
    for entry in entries.values():
        entry.flags = flags.get(entry.submission_id, [])
        key = (entry.dataset, entry.config, entry.split, boards[entry.submission_id])
        before = previous.get(key)
        entry.changed = None if before is None else changes(before, entry)
        previous[key] = entry
    wanted = dict(columns or {})
    return [
        entry
        for entry in entries.values()
        if all(entry.columns.get(role) == column for role, column in wanted.items())
    ]


def _entry(row: Any) -> HistoryEntry:
    return HistoryEntry(
        submission_id=row.submission_id,
        model=row.model,
        revision=row.model_revision,
        dataset=row.dataset,
        config=row.config,
        split=row.split,
        dataset_fingerprint=row.dataset_fingerprint,
        spec_name=row.spec_name,
        spec_version=row.spec_version,
        metrics={},
        n_samples=row.n_samples,
        created_at=row.created_at,
        trigger=row.trigger,
        supersedes_submission_id=row.supersedes_submission_id,
        columns=board_columns(row.task, row.column_mapping),
    )


def changes(before: HistoryEntry, after: HistoryEntry) -> list[str]:
    """The parts of a result's identity that differ between two results."""
    changed = []
    if before.revision != after.revision:
        changed.append("model revision")
    if before.dataset_fingerprint != after.dataset_fingerprint:
        changed.append("dataset fingerprint")
    if (before.spec_name, before.spec_version) != (after.spec_name, after.spec_version):
        changed.append("spec version")
    return changed
