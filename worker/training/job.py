"""The training job: claim, fine-tune with progress, then evaluate the result like any model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from db import submissions as queries
from db import training as training_queries
from db.models import Submission
from db.schemas import ModelRefCreate, SubmissionCreate
from db.session import session_scope
from evalboard.errors import FailureCategory
from evalboard.references import ResolvedModel, model_hash
from evalboard.settings import get_settings
from worker.jobs import (
    Deadline,
    Heartbeat,
    fail,
    record_failure,
    resolved_dataset_of,
    stale_cutoff,
    state_of,
)
from worker.training.params import TrainingParams


def training_request_for(submission: Submission, output_dir: Path) -> Any:
    from worker.training.trainer import TrainingRequest

    mapping = submission.column_mapping or {}
    model = submission.model
    return TrainingRequest(
        base_model=ResolvedModel(
            model.source, model.name, model.requested_revision, model.resolved_revision
        ),
        dataset=resolved_dataset_of(submission),
        params=TrainingParams.model_validate(submission.parameters.get("training", {})),
        output_dir=output_dir,
        image_column=mapping.get("image", "image"),
        label_column=mapping.get("label", "label"),
        device=get_settings().device,
    )


def run_training_job(submission_id: int, *, worker: str | None = None) -> str:
    """Train, evaluate the trained model on the test split, and record both; returns the state.

    A redelivered task whose first worker died takes the submission over and resumes from the
    last checkpoint in the run's folder.
    """
    settings = get_settings()
    with session_scope() as session:
        if not queries.claim_submission(session, submission_id, stale_before=stale_cutoff()):
            current = queries.get_submission(session, submission_id)
            return current.state if current is not None else "missing"
        output_dir = settings.artifacts_dir / f"run-{submission_id}"
        training_queries.ensure_training_run(session, submission_id, output_dir=str(output_dir))
    try:
        return _train_and_evaluate(submission_id, output_dir, worker)
    except Exception as error:  # noqa: BLE001 - every failure ends with a category
        record_failure(submission_id, error, what="training", limit=settings.train_time_limit)
    return state_of(submission_id)


def _train_and_evaluate(submission_id: int, output_dir: Path, worker: str | None) -> str:
    from worker.jobs import run_evaluation_job
    from worker.training.artifacts import write_model_card
    from worker.training.callbacks import DatabaseProgress
    from worker.training.trainer import run_training, write_training_params

    with session_scope() as session:
        submission = queries.get_submission(session, submission_id)
        assert submission is not None
        request = training_request_for(submission, output_dir)
        test_split = request.params.test_split
    progress = DatabaseProgress(
        submission_id, Deadline("training", get_settings().train_time_limit)
    )
    with Heartbeat(submission_id, get_settings().heartbeat_seconds):
        outcome = run_training(request, callbacks=[progress])
    if progress.timed_out is not None:
        raise progress.timed_out
    if outcome.cancelled:
        return state_of(submission_id)

    evaluation_id = _evaluation_submission(submission_id, outcome.model_dir, test_split)
    evaluation_state = run_evaluation_job(evaluation_id, worker=worker)
    with session_scope() as session:
        evaluation = queries.get_submission(session, evaluation_id)
        assert evaluation is not None
        metrics = {result.metric: result.value for result in evaluation.results}
        split = evaluation.split or "test"
        failure = (evaluation.failure_category, evaluation.failure_message)
    epochs = [entry for entry in outcome.history if "eval_loss" in entry]
    write_training_params(
        outcome.model_dir / "training_params.json",
        request,
        outcome,
        {"training_submission_id": submission_id, "evaluation_submission_id": evaluation_id,
         "test_split": split, "test_metrics": metrics, "worker": worker},
    )  # fmt: skip
    (output_dir / "training_params.json").write_text(
        (outcome.model_dir / "training_params.json").read_text()
    )
    if evaluation_state != "succeeded":
        category, message = failure
        fail(
            submission_id,
            category or FailureCategory.INTERNAL.value,
            f"the trained model's evaluation failed: {message}",
        )
        return state_of(submission_id)
    write_model_card(
        outcome.model_dir,
        run_name=f"evalboard-run-{submission_id}",
        base_model=request.base_model.name,
        dataset=request.dataset.name,
        dataset_config=request.dataset.config,
        split=split,
        metrics=metrics,
        hyperparameters=request.params.model_dump(),
        epochs=epochs,
    )
    with session_scope() as session:
        training_queries.update_training_run(
            session,
            submission_id,
            best_checkpoint=outcome.best_checkpoint,
            resumed_from=outcome.resumed_from,
        )
        stored = queries.complete_submission(
            session, submission_id, metrics=[], n_samples=0, provenance={"split": split}
        )
    return "succeeded" if stored else state_of(submission_id)


def _evaluation_submission(submission_id: int, model_dir: Path, test_split: str | None) -> int:
    """The evaluation of the trained model, created once even if the job runs again."""
    with session_scope() as session:
        run = training_queries.get_training_run(session, submission_id)
        assert run is not None
        if run.evaluation_submission_id is not None:
            existing = queries.get_submission(session, run.evaluation_submission_id)
            # Queued, left running by a dead worker (claimed again once stale) or already
            # succeeded before the worker died: the same evaluation, never a second one.
            if existing is not None and existing.state in ("queued", "running", "succeeded"):
                return existing.id
        training = queries.get_submission(session, submission_id)
        assert training is not None
        dataset = training.dataset
        request = SubmissionCreate(
            kind="evaluate",
            submitter=training.submitter,
            model=ModelRefCreate(
                source="trained",
                name=str(model_dir),
                requested_revision=None,
                resolved_revision=model_hash(model_dir),
                lineage_submission_id=submission_id,
            ),
            dataset=dataset_create(dataset),
            split=test_split,
            column_mapping=dict(training.column_mapping),
            parameters={},
            spec_name=training.spec_name,
            spec_version=training.spec_version,
        )
        evaluation = queries.create_submission(session, request)
        training_queries.update_training_run(
            session,
            submission_id,
            trained_model_id=evaluation.model_id,
            evaluation_submission_id=evaluation.id,
        )
        return evaluation.id


def dataset_create(dataset: Any) -> Any:
    from db.schemas import DatasetRefCreate

    return DatasetRefCreate(
        source=dataset.source,
        name=dataset.name,
        config=dataset.config,
        requested_revision=dataset.requested_revision,
        fingerprint=dataset.fingerprint,
    )
