"""What the CLI prints and the dashboard shows about a submission: one typed schema, built here.

The JSON of a report is a public contract: ``submission_id``, ``state``, ``metrics``,
``n_samples``, ``error`` and ``provenance``, with more keys around them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from db import submissions as queries
from db import training as training_queries
from db.models import Submission
from evalboard.errors import EvalboardError
from evalboard.webhooks import redact


class ErrorReport(BaseModel):
    category: str
    message: str | None


class Interval(BaseModel):
    """A 95% interval of one metric (Wilson for proportions, seeded bootstrap otherwise)."""

    low: float
    high: float


class TrainingLogEntry(BaseModel):
    model_config = {"extra": "allow"}  # eval_<metric> keys, one per validation metric

    step: int
    epoch: float | None
    loss: float | None
    learning_rate: float | None


class TrainingReport(BaseModel):
    step: int
    epoch: float | None
    loss: float | None
    learning_rate: float | None
    validation_metrics: dict[str, float]
    logs: list[TrainingLogEntry]
    output_dir: str | None
    model_dir: str | None
    resumed_from: str | None
    best_checkpoint: str | None
    evaluation_submission_id: int | None
    parameters: dict[str, Any]


class LineageReport(BaseModel):
    training_submission_id: int
    base_model: str | None = None
    base_model_revision: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class SubmissionReport(BaseModel):
    """A submission (or an in-process evaluation, or a refusal) as every front-end shows it."""

    submission_id: int | None
    kind: str | None = None
    task: str | None = None
    state: str
    progress: float | None = None
    progress_detail: dict[str, Any] | None = None  # {"done", "total", "unit", …}
    queue_position: int | None = None
    model: str | None = None
    revision: str | None = None
    dataset: str | None = None
    config: str | None = None
    # The split that ran (the requested one may be empty: test, validation, train).
    split: str | None = None
    submitter: str | None = None
    spec_name: str | None = None
    spec_version: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    intervals: dict[str, Interval] = Field(default_factory=dict)
    n_samples: int | None = None
    error: ErrorReport | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    finished_at: str | None = None
    trigger: str | None = None
    supersedes_submission_id: int | None = None
    due_reasons: list[str] | None = None
    flags: list[str] = Field(default_factory=list)
    webhook: str | None = None  # redacted: no credentials, no query string
    lineage: LineageReport | None = None
    training: TrainingReport | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON contract: every field, but ``training`` only for a training."""
        exclude = {"training"} if self.training is None else set()
        return self.model_dump(mode="json", exclude=exclude)


def error_report(error: EvalboardError) -> SubmissionReport:
    """A refusal before anything was recorded: the same shape, ``submission_id`` null."""
    return SubmissionReport(
        submission_id=None, state="failed", error=ErrorReport(**error.as_dict())
    )


def submission_report(session: Session, submission: Submission) -> SubmissionReport:
    """The report of a submission. A training reports the test metrics of its trained model and
    a ``training`` section."""
    results = list(submission.results)
    training = None
    if submission.kind == "train":
        training = training_report(session, submission)
        evaluation_id = training.evaluation_submission_id
        evaluation = queries.get_submission(session, evaluation_id) if evaluation_id else None
        if evaluation is not None:
            results = list(evaluation.results)
    error = None
    if submission.failure_category and submission.state != "succeeded":
        error = ErrorReport(
            category=submission.failure_category, message=submission.failure_message
        )
    from db.results import flags_of

    return SubmissionReport(
        submission_id=submission.id,
        kind=submission.kind,
        task=submission.task,
        state=submission.state,
        progress=submission.progress,
        progress_detail=submission.progress_detail,
        queue_position=queries.queue_position(session, submission),
        model=submission.model.name,
        revision=submission.model.resolved_revision,
        dataset=submission.dataset.name,
        config=submission.dataset.config,
        split=results[0].split if results else submission.split,
        submitter=submission.submitter,
        spec_name=submission.spec_name,
        spec_version=submission.spec_version,
        metrics={result.metric: result.value for result in results},
        intervals={
            result.metric: Interval(low=result.ci_low, high=result.ci_high)
            for result in results
            if result.ci_low is not None and result.ci_high is not None
        },
        n_samples=results[0].n_samples if results else None,
        error=error,
        provenance=dict(results[0].provenance) if results else {},
        created_at=submission.created_at.isoformat() if submission.created_at else None,
        finished_at=submission.finished_at.isoformat() if submission.finished_at else None,
        trigger=submission.trigger,
        supersedes_submission_id=submission.supersedes_submission_id,
        due_reasons=submission.due_reasons,
        flags=flags_of(session, [submission.id]).get(submission.id, []),
        webhook=redact(submission.webhook_url),
        lineage=lineage_report(session, submission.model.lineage_submission_id),
        training=training,
    )


def training_report(session: Session, submission: Submission) -> TrainingReport:
    """Where a training stands: last step, epoch, loss, learning rate, curves, artifacts."""
    run = training_queries.get_training_run(session, submission.id)
    logs = training_queries.training_logs(session, submission.id)
    last_loss = next((log for log in reversed(logs) if log.loss is not None), None)
    last_eval = next((log for log in reversed(logs) if log.metrics), None)
    return TrainingReport(
        step=logs[-1].step if logs else 0,
        epoch=logs[-1].epoch if logs else None,
        loss=last_loss.loss if last_loss else None,
        learning_rate=last_loss.learning_rate if last_loss else None,
        validation_metrics=dict(last_eval.metrics) if last_eval else {},
        logs=[
            TrainingLogEntry(
                step=log.step,
                epoch=log.epoch,
                loss=log.loss,
                learning_rate=log.learning_rate,
                **{f"eval_{k}": v for k, v in log.metrics.items()},
            )
            for log in logs
        ],
        output_dir=run.output_dir if run else None,
        model_dir=f"{run.output_dir}/model" if run else None,
        resumed_from=run.resumed_from if run else None,
        best_checkpoint=run.best_checkpoint if run else None,
        evaluation_submission_id=run.evaluation_submission_id if run else None,
        parameters=dict(submission.parameters or {}).get("training", {}),
    )


def lineage_report(session: Session, training_id: int | None) -> LineageReport | None:
    """For a trained model: its base model, training submission and hyperparameters."""
    if training_id is None:
        return None
    training = queries.get_submission(session, training_id)
    if training is None:
        return LineageReport(training_submission_id=training_id)
    return LineageReport(
        training_submission_id=training_id,
        base_model=training.model.name,
        base_model_revision=training.model.resolved_revision,
        parameters=dict(training.parameters or {}).get("training", {}),
    )
