"""Submitting work: validate, record ``queued``, enqueue by task name; and report on it.

Shared by the CLI and the dashboard, so both refuse the same inputs with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from db import submissions as queries
from db.models import Submission
from db.schemas import DatasetRefCreate, ModelRefCreate, SubmissionCreate
from db.session import session_scope
from evalboard.errors import BadInputError, EvalboardError, FailureCategory
from evalboard.references import ResolvedDataset, ResolvedModel, resolve_dataset, resolve_model
from evalboard.settings import Settings, get_settings

DEFAULT_SPEC_NAME = "image-classification"
DEFAULT_SPEC_VERSION = "1.0"


@dataclass
class EvaluationInput:
    """What a person asks for, before validation."""

    model: str
    dataset: str
    revision: str | None = None
    config: str | None = None
    split: str | None = None
    dataset_revision: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    submitter: str = "anonymous"
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedEvaluation:
    model: ResolvedModel
    dataset: ResolvedDataset
    request: SubmissionCreate


def prepare_evaluation(
    evaluation: EvaluationInput, settings: Settings | None = None
) -> PreparedEvaluation:
    """Validate every field and resolve revisions; raises an EvalboardError with a reason."""
    settings = settings or get_settings()
    for role, column in (("image", evaluation.image_column), ("label", evaluation.label_column)):
        if not column or not column.strip():
            raise BadInputError(f"{role} column is empty")
    if evaluation.image_column == evaluation.label_column:
        raise BadInputError("image and label columns must be different columns")
    submitter = (evaluation.submitter or "anonymous").strip()
    if len(submitter) > 255:
        raise BadInputError("submitter name is longer than 255 characters")
    model = resolve_model(evaluation.model, evaluation.revision, settings)
    dataset = resolve_dataset(
        evaluation.dataset, evaluation.config, evaluation.dataset_revision, settings
    )
    request = SubmissionCreate(
        kind="evaluate",
        submitter=submitter or "anonymous",
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
        split=(evaluation.split or "").strip() or None,
        column_mapping={"image": evaluation.image_column, "label": evaluation.label_column},
        parameters=dict(evaluation.parameters),
        spec_name=DEFAULT_SPEC_NAME,
        spec_version=DEFAULT_SPEC_VERSION,
    )
    return PreparedEvaluation(model, dataset, request)


def submit_evaluation(evaluation: EvaluationInput, settings: Settings | None = None) -> int:
    """Validate, record a ``queued`` submission and enqueue it; returns the submission id."""
    prepared = prepare_evaluation(evaluation, settings)
    with session_scope() as session:
        submission_id = queries.create_submission(session, prepared.request).id
    try:
        enqueue(submission_id, "evaluate")
    except Exception as error:
        # Recorded but never sent: end it with a reason rather than leave it queued forever.
        with session_scope() as session:
            queries.fail_submission(
                session,
                submission_id,
                category=FailureCategory.INTERNAL.value,
                message=f"could not enqueue on the broker: {type(error).__name__}: {error}",
            )
        raise EvalboardError(f"could not enqueue submission {submission_id}: {error}") from error
    return submission_id


def enqueue(submission_id: int, kind: str) -> str:
    """Send the task for a recorded submission by name; returns the Celery task id."""
    from worker.celery_app import EVALUATE_TASK, TRAIN_TASK, app

    task_name = {"evaluate": EVALUATE_TASK, "train": TRAIN_TASK}[kind]
    async_result = app.send_task(task_name, args=[submission_id])
    with session_scope() as session:
        queries.set_task_id(session, submission_id, async_result.id)
    return str(async_result.id)


def submission_report(session: Session, submission: Submission) -> dict[str, Any]:
    """The JSON contract of a submission: state, metrics, n_samples, error, provenance."""
    results = submission.results
    error = None
    if submission.failure_category and submission.state != "succeeded":
        error = {"category": submission.failure_category, "message": submission.failure_message}
    return {
        "submission_id": submission.id,
        "kind": submission.kind,
        "state": submission.state,
        "progress": submission.progress,
        "queue_position": queries.queue_position(session, submission),
        "model": submission.model.name,
        "revision": submission.model.resolved_revision,
        "dataset": submission.dataset.name,
        "config": submission.dataset.config,
        "split": submission.split,
        "submitter": submission.submitter,
        "metrics": {result.metric: result.value for result in results},
        "n_samples": results[0].n_samples if results else None,
        "error": error,
        "provenance": dict(results[0].provenance) if results else {},
        "created_at": submission.created_at.isoformat() if submission.created_at else None,
        "finished_at": submission.finished_at.isoformat() if submission.finished_at else None,
    }
