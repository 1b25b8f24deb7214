"""Thin Celery tasks: take ids, call plain functions below them, record nothing themselves."""

from __future__ import annotations

from typing import Any, Literal

from celery import Task

from evalboard.queue import (
    EVALUATE_TASK,
    NOTIFY_TASK,
    REAP_TASK,
    REEVALUATE_TASK,
    REQUEUE_TASK,
    TRAIN_TASK,
    app,
)
from worker import jobs
from worker.notifications import DeliveryError


@app.task(name=EVALUATE_TASK, bind=True, acks_late=True)
def evaluate_submission(self: Task, submission_id: int) -> str:
    """Run the standardized evaluation of one submission; returns its final state."""
    return jobs.run_evaluation_job(submission_id, worker=self.request.hostname)


@app.task(name=TRAIN_TASK, bind=True, acks_late=True)
def train_submission(self: Task, submission_id: int) -> str:
    """Fine-tune, then evaluate the trained model; resumes from a checkpoint if redelivered."""
    from worker.training.job import run_training_job

    return run_training_job(submission_id, worker=self.request.hostname)


@app.task(name=REAP_TASK)
def reap_stale_submissions() -> int:
    """Re-queue (or fail) running submissions whose worker stopped sending heartbeats."""
    from worker.scheduling.reaper import reap_stale

    return reap_stale()


@app.task(name=REQUEUE_TASK)
def requeue_lost_submissions() -> list[int]:
    """Send again queued submissions whose message the broker lost (a Redis restarted empty)."""
    from worker.scheduling.reconcile import requeue_lost

    return requeue_lost()


@app.task(name=REEVALUATE_TASK)
def reevaluate(
    trigger: str = "scheduled",
    mode: Literal["due", "all"] = "due",
    dataset: str | None = None,
    model: str | None = None,
) -> list[dict[str, Any]]:
    """Find what is due for re-evaluation (no weights are downloaded) and queue it."""
    from evalboard.reevaluation import run_check

    return [entry.as_json() for entry in run_check(mode=mode, trigger=trigger, dataset=dataset,
                                                   model=model)]  # fmt: skip


@app.task(
    name=NOTIFY_TASK,
    autoretry_for=(DeliveryError,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=6,
    acks_late=True,
)
def notify(submission_id: int) -> bool:
    """POST a submission's outcome to its webhook (timeout per attempt, retried with backoff)."""
    from worker.notifications import deliver

    return deliver(submission_id)
