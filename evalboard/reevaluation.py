"""Scheduled re-evaluation: which results no longer measure the model as it is, and why.

A result is due when the model's Hub revision moved or its folder's content changed, when the
dataset's revision or content changed, when its spec has a newer version, or when it is older
than ``EVALBOARD_REEVALUATE_MAX_AGE_DAYS``. Checking downloads no weights: Hub revisions come
from the Hub's API, local ones from content hashes. Light (no torch): beat's task on the
``light`` queue, ``evalboard reevaluate`` and the dashboard's admin button all run it.

Results are tracked per board, as result identity has it: (model, dataset, config, split,
spec, column mapping); two label columns of one split are tracked apart. Due results are queued
through the one submit function as the system submitter (exempt from quotas), with the
submission's own columns, spec, config, split and evaluation parameters, each linked to the
submission it supersedes; the submitter's lock makes two concurrent checks queue each
re-evaluation once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import false, func, or_, select
from sqlalchemy.orm import Session

from db.identity import board_columns
from db.models import DatasetRef, ModelRef, Moderation, Result, Submission, utcnow
from db.session import session_scope
from evalboard import catalog
from evalboard.errors import EvalboardError
from evalboard.references import ResolvedDataset, ResolvedModel, resolve_dataset, resolve_model
from evalboard.settings import Settings, get_settings

Mode = Literal["due", "all"]


@dataclass
class Tracked:
    """The newest result set of one (model, dataset, config, split, spec, columns)."""

    submission_id: int
    task: str
    spec_name: str
    spec_version: str
    model: str
    model_source: str
    model_requested_revision: str | None
    model_revision: str
    dataset: str
    dataset_source: str
    config: str
    dataset_requested_revision: str | None
    dataset_fingerprint: str
    split: str
    columns: dict[str, str]  # every role, the task's defaults filled in
    created_at: datetime
    # The submission's evaluation parameters (the batch size): a re-run keeps them.
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class DueEntry:
    model: str
    dataset: str
    config: str
    split: str
    spec: str
    last_submission_id: int
    reasons: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # the board's role → column
    unavailable: str | None = None  # could not be checked (folder gone, Hub unreachable, …)
    submission_id: int | None = None  # the re-evaluation queued (None in a dry run)
    duplicate: bool = False  # it was already queued, by another check or a person

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def tracked_results(
    session: Session,
    *,
    dataset: str | None = None,
    model: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> list[Tracked]:
    """The newest visible result set of each model on each board: dataset, config, split,
    spec and column mapping. ``columns`` keeps the boards that agree with every role named."""
    newest = (
        select(
            Result.id.label("result_id"),
            func.row_number()
            .over(
                partition_by=(
                    ModelRef.name,
                    DatasetRef.name,
                    DatasetRef.config,
                    Result.split,
                    Result.spec_name,
                    Result.columns_key,
                ),
                order_by=(Result.created_at.desc(), Result.id.desc()),
            )
            .label("recency"),
        )  # fmt: skip
        .join(ModelRef, Result.model_id == ModelRef.id)
        .join(DatasetRef, Result.dataset_id == DatasetRef.id)
        .outerjoin(Moderation, Moderation.submission_id == Result.submission_id)
        .where(or_(Moderation.hidden.is_(None), Moderation.hidden == false()))
    )
    if dataset is not None:
        newest = newest.where(DatasetRef.name == dataset)
    if model is not None:
        newest = newest.where(ModelRef.name == model)
    latest = newest.subquery()
    rows = session.execute(
        select(Result, ModelRef, DatasetRef, Submission)
        .join(latest, Result.id == latest.c.result_id)
        .join(ModelRef, Result.model_id == ModelRef.id)
        .join(DatasetRef, Result.dataset_id == DatasetRef.id)
        .join(Submission, Result.submission_id == Submission.id)
        .where(latest.c.recency == 1)
        .order_by(Result.submission_id)
    ).all()
    wanted = dict(columns or {})
    tracked = [
        Tracked(
            submission_id=result.submission_id,
            task=result.task,
            spec_name=result.spec_name,
            spec_version=result.spec_version,
            model=model_ref.name,
            model_source=model_ref.source,
            model_requested_revision=model_ref.requested_revision,
            model_revision=result.model_revision,
            dataset=dataset_ref.name,
            dataset_source=dataset_ref.source,
            config=dataset_ref.config,
            dataset_requested_revision=dataset_ref.requested_revision,
            dataset_fingerprint=result.dataset_fingerprint,
            split=result.split,
            columns=board_columns(result.task, submission.column_mapping),
            created_at=result.created_at,
            parameters={
                name: value
                for name, value in dict(submission.parameters or {}).items()
                if name != "training"  # a training's own; its evaluation has none
            },
        )
        for result, model_ref, dataset_ref, submission in rows
    ]
    return [
        entry
        for entry in tracked
        if all(entry.columns.get(role) == column for role, column in wanted.items())
    ]


class _Resolver:
    """Resolves each model and dataset once per check; remembers why one could not be."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.models: dict[tuple[str, str | None], ResolvedModel | str] = {}
        self.datasets: dict[tuple[str, str, str | None], ResolvedDataset | str] = {}

    def model(self, entry: Tracked) -> ResolvedModel | str:
        key = (entry.model, entry.model_requested_revision)
        if key not in self.models:
            source = entry.model_source if entry.model_source != "hub" else None
            try:
                self.models[key] = resolve_model(
                    entry.model, entry.model_requested_revision, self.settings, source=source
                )
            except EvalboardError as error:
                self.models[key] = f"model: {error.message}"
        return self.models[key]

    def dataset(self, entry: Tracked) -> ResolvedDataset | str:
        key = (entry.dataset, entry.config, entry.dataset_requested_revision)
        if key not in self.datasets:
            try:
                self.datasets[key] = resolve_dataset(
                    entry.dataset,
                    None if entry.config == "default" else entry.config,
                    entry.dataset_requested_revision,
                    self.settings,
                )
            except EvalboardError as error:
                self.datasets[key] = f"dataset: {error.message}"
        return self.datasets[key]


def due_reasons(
    entry: Tracked,
    model: ResolvedModel,
    dataset: ResolvedDataset,
    *,
    max_age_days: float | None,
    now: datetime,
) -> list[str]:
    """Why ``entry`` no longer measures the model as it is; empty when it still does."""
    reasons = []
    if model.resolved_revision != entry.model_revision:
        moved = "Hub revision moved" if entry.model_source == "hub" else "folder content changed"
        reasons.append(
            f"model {moved} ({entry.model_revision[:12]} → {model.resolved_revision[:12]})"
        )
    if dataset.fingerprint != entry.dataset_fingerprint:
        changed = "revision moved" if entry.dataset_source == "hub" else "content changed"
        reasons.append(
            f"dataset {changed} ({entry.dataset_fingerprint[:12]} → {dataset.fingerprint[:12]})"
        )
    current = catalog.spec(entry.spec_name).version
    if current != entry.spec_version:
        reasons.append(f"spec {entry.spec_name} version {entry.spec_version} → {current}")
    if max_age_days is not None:
        created = (
            entry.created_at
            if entry.created_at.tzinfo
            else entry.created_at.replace(tzinfo=now.tzinfo)
        )
        age = now - created
        if age > timedelta(days=max_age_days):
            reasons.append(f"older than {max_age_days:g} days ({age.days} days)")
    return reasons


def check(
    *,
    mode: Mode = "due",
    dataset: str | None = None,
    model: str | None = None,
    columns: Mapping[str, str] | None = None,
    settings: Settings | None = None,
) -> list[tuple[DueEntry, Any]]:
    """Every tracked result that is due (``mode="all"``: every one), with the references to
    re-evaluate it against; entries that could not be checked come back with ``unavailable``."""
    settings = settings or get_settings()
    with session_scope() as session:
        entries = tracked_results(session, dataset=dataset, model=model, columns=columns)
    resolver = _Resolver(settings)
    now = utcnow()
    found: list[tuple[DueEntry, Any]] = []
    for entry in entries:
        due = DueEntry(
            model=entry.model,
            dataset=entry.dataset,
            config=entry.config,
            split=entry.split,
            spec=entry.spec_name,
            last_submission_id=entry.submission_id,
            columns=dict(entry.columns),
        )
        if entry.spec_name not in catalog.current_versions():
            due.unavailable = f"spec {entry.spec_name!r} is no longer in the catalog"
            found.append((due, None))
            continue
        resolved_model, resolved_dataset = resolver.model(entry), resolver.dataset(entry)
        if isinstance(resolved_model, str) or isinstance(resolved_dataset, str):
            due.unavailable = (
                resolved_model if isinstance(resolved_model, str) else str(resolved_dataset)
            )
            found.append((due, None))
            continue
        due.reasons = due_reasons(
            entry, resolved_model, resolved_dataset,
            max_age_days=settings.reevaluate_max_age_days, now=now,
        )  # fmt: skip
        if mode == "all":
            due.reasons = due.reasons or ["re-run requested"]
        if due.reasons:
            found.append((due, (entry, resolved_model, resolved_dataset)))
    return found


def run_check(
    *,
    mode: Mode = "due",
    trigger: str = "manual",
    dataset: str | None = None,
    model: str | None = None,
    columns: Mapping[str, str] | None = None,
    dry_run: bool = False,
    settings: Settings | None = None,
) -> list[DueEntry]:
    """Check, then (unless ``dry_run``) queue each due re-evaluation once, with the columns,
    spec, config, split and evaluation parameters of the submission it supersedes."""
    from evalboard.submit import EvaluationInput, Resolved, submit

    settings = settings or get_settings()
    entries = []
    found = check(mode=mode, dataset=dataset, model=model, columns=columns, settings=settings)
    for due, references in found:
        entries.append(due)
        if dry_run or references is None:
            continue
        entry, resolved_model, resolved_dataset = references
        try:
            submitted = submit(
                EvaluationInput(
                    model=entry.model,
                    dataset=entry.dataset,
                    revision=entry.model_requested_revision,
                    config=None if entry.config == "default" else entry.config,
                    dataset_revision=entry.dataset_requested_revision,
                    split=entry.split,
                    task=entry.task,
                    spec=entry.spec_name,
                    columns=dict(entry.columns),
                    parameters=dict(entry.parameters),
                ),
                settings=settings,
                system=True,
                trigger=trigger,
                supersedes=entry.submission_id,
                due_reasons=due.reasons,
                resolved=Resolved(resolved_model, resolved_dataset),
                force=mode == "all",
            )
        except EvalboardError as error:
            due.unavailable = error.message
            continue
        due.submission_id, due.duplicate = submitted.submission_id, submitted.duplicate
    return entries
