"""The training job: claim, fine-tune with progress, then evaluate the result like any model.

The trained model's folder is written completely (weights, processor, model card,
``training_params.json``) before its content hash is taken, and never changes afterwards: its
revision is the hash of exactly the folder users download. The heartbeat covers the whole job,
its final evaluation included.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from db import submissions as queries
from db import training as training_queries
from db.models import Submission
from db.results import complete_submission
from db.schemas import DatasetRefCreate, ModelRefCreate, SubmissionCreate
from db.session import session_scope
from evalboard.errors import FailureCategory
from evalboard.references import ResolvedModel, model_hash
from evalboard.settings import get_settings
from evalboard.training_params import TrainingParams
from worker.jobs import (
    Deadline,
    Heartbeat,
    check_spec_version,
    claim,
    fail,
    record_failure,
    resolved_dataset_of,
    state_of,
)

PARAMS_FILE = "training_params.json"


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
    last checkpoint in the run's folder (or, once the model is final, goes straight to its
    evaluation).
    """
    from worker.notifications import after_finish

    settings = get_settings()
    attempt = claim(submission_id)
    if attempt is None:
        return state_of(submission_id)
    output_dir = settings.artifacts_dir / f"run-{submission_id}"
    with session_scope() as session:
        training_queries.ensure_training_run(session, submission_id, output_dir=str(output_dir))
    try:
        with Heartbeat(submission_id, settings.heartbeat_seconds, attempt):
            _train_and_evaluate(submission_id, output_dir, worker, attempt)
    except Exception as error:  # noqa: BLE001 - every failure ends with a category
        record_failure(
            submission_id, error, what="training", limit=settings.train_time_limit, attempt=attempt
        )
    state = state_of(submission_id)
    if state in ("succeeded", "failed", "cancelled"):
        after_finish(submission_id)
    return state


def _final_model(submission_id: int, model_dir: Path) -> bool:
    """Whether an earlier attempt already finished the model (its evaluation exists and the
    folder still hashes to the revision it was recorded with)."""
    with session_scope() as session:
        run = training_queries.get_training_run(session, submission_id)
        if run is None or run.evaluation_submission_id is None:
            return False
        evaluation = queries.get_submission(session, run.evaluation_submission_id)
        if evaluation is None or evaluation.state not in ("queued", "running", "succeeded"):
            return False
        revision = evaluation.model.resolved_revision
    return model_dir.is_dir() and model_hash(model_dir) == revision


def _train_and_evaluate(
    submission_id: int, output_dir: Path, worker: str | None, attempt: int
) -> None:
    from worker.jobs import run_evaluation_job
    from worker.preload import check_before_loading

    # What was validated is what runs: the base model and the dataset, checked again.
    check_before_loading(submission_id, training=True)
    with session_scope() as session:
        submission = queries.get_submission(session, submission_id)
        assert submission is not None
        check_spec_version(submission)
        request = training_request_for(submission, output_dir)
    model_dir = output_dir / "model"
    if not _final_model(submission_id, model_dir):
        if not _train(submission_id, request, model_dir, attempt):
            return  # cancelled, or taken over by another attempt
    evaluation_id = _evaluation_submission(submission_id, model_dir, request.params.test_split)
    evaluation_state = run_evaluation_job(evaluation_id, worker=worker)
    with session_scope() as session:
        evaluation = queries.get_submission(session, evaluation_id)
        assert evaluation is not None
        metrics = {result.metric: result.value for result in evaluation.results}
        split = evaluation.results[0].split if evaluation.results else evaluation.split
        failure = (evaluation.failure_category, evaluation.failure_message)
    # The run's own record, beside (never inside) the model folder.
    params = json.loads((model_dir / PARAMS_FILE).read_text())
    params.update(
        training_submission_id=submission_id, evaluation_submission_id=evaluation_id,
        test_split=split, test_metrics=metrics, worker=worker,
    )  # fmt: skip
    (output_dir / PARAMS_FILE).write_text(json.dumps(params, indent=2, default=str))
    if evaluation_state != "succeeded":
        category, message = failure
        fail(
            submission_id,
            category or FailureCategory.INTERNAL.value,
            f"the trained model's evaluation failed: {message}",
            attempt=attempt,
        )
        return
    with session_scope() as session:
        complete_submission(
            session,
            submission_id,
            metrics=[],
            n_samples=0,
            provenance={"split": split},
            attempt=attempt,
        )


def _train(submission_id: int, request: Any, model_dir: Path, attempt: int) -> bool:
    """Fine-tune and write the final model folder; False when the run was stopped."""
    from worker.training.artifacts import write_model_card
    from worker.training.callbacks import DatabaseProgress
    from worker.training.trainer import run_training, write_training_params

    progress = DatabaseProgress(
        submission_id, Deadline("training", get_settings().train_time_limit), attempt=attempt
    )
    staging = model_dir.with_name("model.partial")
    shutil.rmtree(staging, ignore_errors=True)
    outcome = run_training(request, callbacks=[progress], model_dir=staging)
    if progress.timed_out is not None:
        raise progress.timed_out
    if outcome.cancelled:
        return False
    epochs = [entry for entry in outcome.history if "eval_loss" in entry]
    write_training_params(staging / PARAMS_FILE, request, outcome)
    write_model_card(
        staging,
        run_name=f"evalboard-run-{submission_id}",
        base_model=request.base_model.name,
        dataset=request.dataset.name,
        dataset_config=request.dataset.config,
        split=request.params.validation_split or "validation",
        metrics=outcome.best_validation_metrics(),
        hyperparameters=request.params.model_dump(),
        epochs=epochs,
    )
    # Complete before it is named "model": a folder of that name is never half-written.
    shutil.rmtree(model_dir, ignore_errors=True)
    staging.rename(model_dir)
    with session_scope() as session:
        training_queries.update_training_run(
            session,
            submission_id,
            best_checkpoint=outcome.best_checkpoint,
            resumed_from=outcome.resumed_from,
        )
    return True


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
            task=training.task,
            submitter=training.submitter,
            model=ModelRefCreate(
                source="trained",
                name=str(model_dir),
                requested_revision=None,
                resolved_revision=model_hash(model_dir),
                lineage_submission_id=submission_id,
            ),
            dataset=DatasetRefCreate(
                source=dataset.source,
                name=dataset.name,
                config=dataset.config,
                requested_revision=dataset.requested_revision,
                fingerprint=dataset.fingerprint,
            ),
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
