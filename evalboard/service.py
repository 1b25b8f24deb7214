"""Submitting work: validate, record ``queued``, enqueue by task name; and report on it.

Shared by the CLI and the dashboard, so both refuse the same inputs with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from db import submissions as queries
from db.models import Submission, utcnow
from db.schemas import DatasetRefCreate, ModelRefCreate, SubmissionCreate
from db.session import session_scope
from evalboard.access import authenticate
from evalboard.errors import BadInputError, EvalboardError, FailureCategory, RefusedError
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


def prepare_training(
    evaluation: EvaluationInput, training: dict[str, Any], settings: Settings | None = None
) -> PreparedEvaluation:
    """Validate a fine-tuning request: the same checks, plus its hyperparameters."""
    from pydantic import ValidationError

    from worker.training.params import TrainingParams

    try:
        params = TrainingParams.model_validate(training)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise BadInputError(f"invalid training parameters: {problems}") from None
    prepared = prepare_evaluation(evaluation, settings)
    request = prepared.request.model_copy(
        update={
            "kind": "train",
            "split": params.train_split,
            "parameters": {**prepared.request.parameters, "training": params.model_dump()},
        }
    )
    return PreparedEvaluation(prepared.model, prepared.dataset, request)


@dataclass(frozen=True)
class Submitted:
    submission_id: int
    duplicate: bool  # an identical submission already existed; nothing new was queued


def submit_training(
    evaluation: EvaluationInput,
    training: dict[str, Any],
    settings: Settings | None = None,
    *,
    token: str | None = None,
) -> int:
    """Validate, record a ``queued`` training submission and enqueue it; returns its id."""
    settings = settings or get_settings()
    authenticate(token, settings)  # before validation: no probing of paths without a token
    request = prepare_training(evaluation, training, settings).request
    return record_and_enqueue(request, settings, token=token).submission_id


def submit_evaluation(
    evaluation: EvaluationInput, settings: Settings | None = None, *, token: str | None = None
) -> int:
    """Validate, record a ``queued`` submission and enqueue it; returns the submission id."""
    settings = settings or get_settings()
    authenticate(token, settings)  # before validation: no probing of paths without a token
    request = prepare_evaluation(evaluation, settings).request
    return record_and_enqueue(request, settings, token=token).submission_id


def record_and_enqueue(
    request: SubmissionCreate, settings: Settings, *, token: str | None = None
) -> Submitted:
    """Authenticate, return an identical existing submission, check quotas, then queue."""
    submitter = authenticate(token, settings)
    if submitter is not None:
        request = request.model_copy(update={"submitter": submitter})
    with session_scope() as session:
        duplicate = queries.find_duplicate(session, request)
        if duplicate is not None:
            return Submitted(duplicate.id, duplicate=True)
        check_quota(session, request.submitter, settings)
        submission_id = queries.create_submission(session, request).id
    try:
        enqueue(submission_id, request.kind)
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
    from worker.celery_app import EVALUATE_TASK, TRAIN_TASK, app

    task_name = {"evaluate": EVALUATE_TASK, "train": TRAIN_TASK}[kind]
    async_result = app.send_task(task_name, args=[submission_id])
    with session_scope() as session:
        queries.set_task_id(session, submission_id, async_result.id)
    return str(async_result.id)


def submission_report(session: Session, submission: Submission) -> dict[str, Any]:
    """The JSON contract of a submission: state, metrics, n_samples, error, provenance.

    A training reports the test metrics of its trained model and a ``training`` section.
    """
    results = submission.results
    training = None
    if submission.kind == "train":
        training = training_report(session, submission.id)
        evaluation_id = training.get("evaluation_submission_id")
        evaluation = queries.get_submission(session, evaluation_id) if evaluation_id else None
        if evaluation is not None:
            results = evaluation.results
    error = None
    if submission.failure_category and submission.state != "succeeded":
        error = {"category": submission.failure_category, "message": submission.failure_message}
    report = {
        "submission_id": submission.id,
        "kind": submission.kind,
        "state": submission.state,
        "progress": submission.progress,
        "queue_position": queries.queue_position(session, submission),
        "model": submission.model.name,
        "revision": submission.model.resolved_revision,
        "dataset": submission.dataset.name,
        "config": submission.dataset.config,
        # The split that ran (the requested one may be empty: test, validation, train).
        "split": results[0].split if results else submission.split,
        "submitter": submission.submitter,
        "metrics": {result.metric: result.value for result in results},
        "n_samples": results[0].n_samples if results else None,
        "error": error,
        "provenance": dict(results[0].provenance) if results else {},
        "created_at": submission.created_at.isoformat() if submission.created_at else None,
        "finished_at": submission.finished_at.isoformat() if submission.finished_at else None,
        "lineage": lineage_report(session, submission.model.lineage_submission_id),
    }
    if training is not None:
        report["training"] = training
    return report


def training_report(session: Session, submission_id: int) -> dict[str, Any]:
    """Where a training stands: last step, epoch, loss, learning rate, curves, artifacts."""
    from db import training as training_queries

    run = training_queries.get_training_run(session, submission_id)
    logs = training_queries.training_logs(session, submission_id)
    last_loss = next((log for log in reversed(logs) if log.loss is not None), None)
    last_eval = next((log for log in reversed(logs) if log.metrics), None)
    return {
        "step": logs[-1].step if logs else 0,
        "epoch": logs[-1].epoch if logs else None,
        "loss": last_loss.loss if last_loss else None,
        "learning_rate": last_loss.learning_rate if last_loss else None,
        "validation_metrics": dict(last_eval.metrics) if last_eval else {},
        "logs": [
            {
                "step": log.step,
                "epoch": log.epoch,
                "loss": log.loss,
                "learning_rate": log.learning_rate,
                **{f"eval_{k}": v for k, v in log.metrics.items()},
            }
            for log in logs
        ],  # fmt: skip
        "output_dir": run.output_dir if run else None,
        "model_dir": f"{run.output_dir}/model" if run else None,
        "resumed_from": run.resumed_from if run else None,
        "best_checkpoint": run.best_checkpoint if run else None,
        "evaluation_submission_id": run.evaluation_submission_id if run else None,
        "parameters": dict(
            (queries.get_submission(session, submission_id) or Submission()).parameters or {}
        ).get("training", {}),
    }


def lineage_report(session: Session, training_id: int | None) -> dict[str, Any] | None:
    """For a trained model: its base model, training submission and hyperparameters."""
    if training_id is None:
        return None
    training = queries.get_submission(session, training_id)
    if training is None:
        return {"training_submission_id": training_id}
    return {
        "training_submission_id": training_id,
        "base_model": training.model.name,
        "base_model_revision": training.model.resolved_revision,
        "parameters": dict(training.parameters or {}).get("training", {}),
    }
