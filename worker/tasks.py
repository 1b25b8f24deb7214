"""Thin Celery tasks: take ids, call plain functions in ``worker.jobs``."""

from __future__ import annotations

from celery import Task

from worker import jobs
from worker.celery_app import EVALUATE_TASK, REAP_TASK, TRAIN_TASK, app


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
    """Fail running submissions whose worker stopped sending heartbeats."""
    return jobs.reap_stale()
