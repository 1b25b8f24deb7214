"""Submitting work: the one function the CLI, the dashboard and the scheduler all call.

Validate every field, resolve revisions, then record ``queued`` and enqueue by task name, with
the duplicate and quota checks atomic under the submitter's lock. Light: no torch, no worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from db import submissions as queries
from db.models import utcnow
from db.schemas import DatasetRefCreate, ModelRefCreate, SubmissionCreate
from db.session import locked_scope, session_scope
from evalboard import catalog, dataset_classes, model_files
from evalboard.access import authenticate
from evalboard.contents import printable
from evalboard.dataset_files import check_dataset_files
from evalboard.errors import BadInputError, RefusedError
from evalboard.references import (
    ResolvedDataset,
    ResolvedModel,
    check_reference_text,
    resolve_dataset,
    resolve_model,
)
from evalboard.settings import Settings, get_settings
from evalboard.training_params import TrainingParams
from evalboard.webhooks import validate_webhook_url

log = logging.getLogger(__name__)

# Re-evaluations are recorded under this name; nobody else may submit as it.
SYSTEM_SUBMITTER = "system"
MAX_NAME_LENGTH = 255
MAX_WEBHOOK_LENGTH = 2048


@dataclass
class EvaluationInput:
    """What a person (or the scheduler) asks for, before validation."""

    model: str
    dataset: str
    revision: str | None = None
    config: str | None = None
    split: str | None = None
    dataset_revision: str | None = None
    task: str = catalog.IMAGE_CLASSIFICATION
    spec: str | None = None  # None: the task's default spec
    # Role → column; roles left out take the task's defaults (image, label).
    columns: dict[str, str] = field(default_factory=dict)
    submitter: str = "anonymous"
    parameters: dict[str, Any] = field(default_factory=dict)
    webhook: str | None = None


@dataclass(frozen=True)
class Submitted:
    submission_id: int
    duplicate: bool  # an identical submission already existed; nothing new was queued


@dataclass(frozen=True)
class Resolved:
    """Revisions resolved beforehand (by a re-evaluation check), so they are not hashed twice."""

    model: ResolvedModel
    dataset: ResolvedDataset


def _text(value: str | None, what: str, *, limit: int = MAX_NAME_LENGTH) -> str | None:
    """Strip a free-text field; refuse what the database would refuse (see
    ``check_reference_text``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadInputError(f"{what} must be text, not {type(value).__name__}")
    return check_reference_text(value, what=what, limit=limit)


def prepare(
    evaluation: EvaluationInput,
    training: dict[str, Any] | None = None,
    settings: Settings | None = None,
    *,
    resolved: Resolved | None = None,
) -> SubmissionCreate:
    """Validate every field and resolve revisions; raises an EvalboardError with a reason."""
    settings = settings or get_settings()
    task = catalog.task(_text(evaluation.task, "task") or catalog.IMAGE_CLASSIFICATION)
    spec_name = _text(evaluation.spec, "spec")
    spec = catalog.spec(spec_name) if spec_name else catalog.default_spec(task.name)
    if spec.task != task.name:
        raise BadInputError(f"spec {spec.label} is for task {spec.task!r}, not {task.name!r}")
    columns = task.column_mapping(
        {
            role: _text(name, f"{printable(role)} column")
            for role, name in evaluation.columns.items()
        }
    )
    submitter = _text(evaluation.submitter, "submitter name") or "anonymous"
    webhook_text = _text(evaluation.webhook, "webhook", limit=MAX_WEBHOOK_LENGTH)
    webhook = (
        validate_webhook_url(webhook_text, settings)
        if webhook_text is not None and evaluation.webhook
        else None
    )
    params: TrainingParams | None = None
    if training is not None:
        for name, value in training.items():
            if isinstance(value, str):
                _text(value, printable(name).replace("_", " "))
        try:
            params = TrainingParams.model_validate(training)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
            )
            raise BadInputError(f"invalid training parameters: {printable(problems)}") from None
    parameters = check_evaluation_parameters(evaluation.parameters)
    split = _text(evaluation.split, "split") or None
    resolved = resolved or resolve(evaluation, settings)
    model, dataset = resolved.model, resolved.dataset
    if dataset.source == "local" and dataset.local_format and "image" in columns:
        # A text column taken as images names files: each must lie inside the dataset.
        check_dataset_files(
            Path(dataset.name),
            dataset.local_format,
            image_columns=[columns["image"]],
            structs=False,
        )
    if "label" in columns and params is None:
        check_label_names(model, dataset, columns["label"])
    if params is not None:
        parameters["training"] = params.model_dump()
    return SubmissionCreate(
        kind="evaluate" if params is None else "train",
        task=task.name,
        submitter=submitter,
        model=ModelRefCreate(
            source=model.source,
            name=model.name,
            requested_revision=model.requested_revision,
            resolved_revision=model.resolved_revision,
        ),
        dataset=DatasetRefCreate(
            source=dataset.source,
            name=dataset.name,
            config=dataset.config,
            requested_revision=dataset.requested_revision,
            fingerprint=dataset.fingerprint,
        ),
        split=params.train_split if params is not None else split,
        column_mapping=columns,
        parameters=parameters,
        spec_name=spec.name,
        spec_version=spec.version,
        webhook_url=webhook,
    )


def check_label_names(model: ResolvedModel, dataset: ResolvedDataset, label_column: str) -> None:
    """Before queueing, where the model's labels and a local dataset's class names are cheap
    to read: refuse a match by name that would be ambiguous (the worker checks it again)."""
    if dataset.source != "local":
        return
    labels = model_files.submitted_model_labels(model.source, model.name, model.resolved_revision)
    if not labels or not model_files.label_collisions(labels):
        return  # dataset names alone are checked by the worker: no read at submit for them
    names = dataset_classes.class_names(Path(dataset.name), dataset.local_format, label_column)
    if names:
        model_files.label_columns(labels, names)


def resolve(evaluation: EvaluationInput, settings: Settings) -> Resolved:
    """Validate the model and dataset references and pin them to revisions (or hashes)."""
    model = resolve_model(evaluation.model, _text(evaluation.revision, "revision"), settings)
    config = _text(evaluation.config, "config")
    dataset = resolve_dataset(
        evaluation.dataset, config, _text(evaluation.dataset_revision, "dataset revision"), settings
    )
    if dataset.source == "local" and dataset.config != "default":
        # A local folder or file has no named configurations: a free-text one would only
        # make a second leaderboard of the same data.
        raise BadInputError(
            f"dataset {dataset.name!r} is local and has no configuration {dataset.config!r}: "
            "leave the config empty"
        )
    return Resolved(model, dataset)


MAX_BATCH_SIZE = 4096


def check_evaluation_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The evaluation knobs a submission may carry (the batch size), checked."""
    unknown = sorted(set(parameters) - {"batch_size"})
    if unknown:
        raise BadInputError(f"unknown evaluation parameters: {', '.join(unknown)}")
    checked = dict(parameters)
    batch_size = checked.get("batch_size")
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not 1 <= batch_size <= MAX_BATCH_SIZE
    ):
        raise BadInputError(
            f"batch size must be a whole number from 1 to {MAX_BATCH_SIZE}, not {batch_size!r}"
        )
    return checked


def submit(
    evaluation: EvaluationInput,
    training: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    settings: Settings | None = None,
    system: bool = False,
    trigger: str = "submitted",
    supersedes: int | None = None,
    due_reasons: list[str] | None = None,
    resolved: Resolved | None = None,
    force: bool = False,
) -> Submitted:
    """Validate, record ``queued`` and enqueue an evaluation (or, with ``training``, a
    fine-tuning); an identical submission of the same submitter is returned instead.

    ``system`` submissions (re-evaluations) belong to the system submitter and are exempt from
    quotas; ``force`` re-runs an identity that already succeeded (never one that is active).
    """
    settings = settings or get_settings()
    submitter = None
    if not system:
        # Before validation: an unknown caller learns nothing about paths on this machine.
        submitter = authenticate(token, settings)
        if (submitter or evaluation.submitter or "").strip() == SYSTEM_SUBMITTER:
            raise RefusedError(f"the submitter name {SYSTEM_SUBMITTER!r} is reserved")
        if submitter is None:
            refuse_token_holder_names(_text(evaluation.submitter, "submitter name"))
    request = prepare(evaluation, training, settings, resolved=resolved)
    updates: dict[str, Any] = {"trigger": trigger, "supersedes_submission_id": supersedes}
    if due_reasons is not None:
        updates["due_reasons"] = due_reasons
    if system:
        updates["submitter"] = SYSTEM_SUBMITTER
    elif submitter is not None:
        updates["submitter"] = submitter
    request = request.model_copy(update=updates)
    return record_and_enqueue(request, settings, check_quotas=not system, force=force)


def refuse_token_holder_names(name: str | None) -> None:
    """Without a token, nobody submits under the name of a submitter who has tokens."""
    from db.tokens import has_tokens

    name = (name or "").strip()
    if not name or name == "anonymous":
        return
    with session_scope() as session:
        if has_tokens(session, name):
            raise RefusedError(
                f"the submitter name {name!r} belongs to a token holder: submit with their "
                "token (--token or EVALBOARD_TOKEN)"
            )


def record_and_enqueue(
    request: SubmissionCreate,
    settings: Settings,
    *,
    check_quotas: bool = True,
    force: bool = False,
) -> Submitted:
    """Return an identical existing submission, check quotas, then record and queue; the checks
    and the insert hold the submitter's lock, so concurrent identical submits queue one."""
    with locked_scope(f"submitter:{request.submitter}") as session:
        duplicate = queries.find_duplicate(session, request, include_succeeded=not force)
        if duplicate is not None:
            return Submitted(duplicate.id, duplicate=True)
        if check_quotas:
            check_quota(session, request.submitter, settings)
        submission_id = queries.create_submission(session, request).id
    try:
        enqueue(submission_id, request.kind)
    except Exception as error:  # noqa: BLE001 - whatever the broker raised, the row is kept
        # Recorded but not sent: it stays queued, and beat's reconciler
        # (worker.scheduling.reconcile) sends it once the broker answers again.
        log.warning(
            "submission %s is recorded as queued, but the broker could not take it (%s: %s); "
            "it is sent once the broker answers again, after %.0f s queued",
            submission_id, type(error).__name__, error, settings.requeue_after_seconds,
        )  # fmt: skip
    return Submitted(submission_id, duplicate=False)


def check_quota(session: Session, submitter: str, settings: Settings) -> None:
    """Refuse a submission over the submitter's daily, concurrent or attempts quota."""
    limits = {
        "submissions": settings.quota_per_day,
        "active": settings.quota_concurrent,
        "attempts": settings.quota_attempts_per_day,
    }
    if all(limit is None for limit in limits.values()):
        return
    usage = queries.usage_of(session, submitter, since=utcnow() - timedelta(days=1))
    words = {
        "submissions": "submissions in the last 24 hours",
        "active": "queued or running submissions",
        "attempts": "attempts in the last 24 hours",
    }
    for key, limit in limits.items():
        if limit is not None and usage[key] >= limit:
            raise RefusedError(
                f"quota reached for {submitter!r}: {usage[key]} {words[key]} (limit {limit})"
            )


def enqueue(submission_id: int, kind: str) -> str:
    """Send the task for a recorded submission by name; returns the Celery task id."""
    from evalboard.queue import KIND_TASKS, send

    task_id = send(KIND_TASKS[kind], submission_id)
    with session_scope() as session:
        queries.set_task_id(session, submission_id, task_id)
    return task_id


def cancel(submission_id: int) -> bool:
    """Cancel a queued or running submission (a running worker stops at its next check), and
    notify its webhook; False when it had already ended. Access is the caller's to check."""
    from evalboard.webhooks import notify_finished

    with session_scope() as session:
        cancelled = queries.cancel_submission(session, submission_id)
        submission = queries.get_submission(session, submission_id)
        webhook = submission.webhook_url if submission is not None else None
    if cancelled and webhook:
        try:
            notify_finished(submission_id)
        except Exception:  # noqa: BLE001 - the cancel stands even if the broker is away
            pass
    return cancelled
