"""Submission jobs: claim atomically, run the engine with progress and heartbeat, record."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from db import submissions as queries
from db.models import Submission, utcnow
from db.session import session_scope
from evalboard.errors import EvalboardError, FailureCategory
from evalboard.references import ResolvedDataset, ResolvedModel, detect_local_dataset_format
from evalboard.settings import get_settings

log = logging.getLogger(__name__)


class Cancelled(EvalboardError):
    category = FailureCategory.CANCELLED


class Heartbeat:
    """Writes the submission's heartbeat from a background thread while the job runs."""

    def __init__(self, submission_id: int, interval: float) -> None:
        self.submission_id = submission_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with session_scope() as session:
                    queries.touch_heartbeat(session, self.submission_id)
            except Exception:  # noqa: BLE001 - a missed beat must not kill the job
                log.exception("heartbeat for submission %s failed", self.submission_id)


class JobTimeout(EvalboardError):
    category = FailureCategory.TIMEOUT


class Deadline:
    """A job's time limit, checked at safe points (between batches, between steps)."""

    def __init__(self, what: str, limit_s: float) -> None:
        self.what = what
        self.limit_s = limit_s
        self.ends = time.monotonic() + limit_s

    def check(self) -> None:
        if time.monotonic() > self.ends:
            raise JobTimeout(f"{self.what} ran past its {self.limit_s:.0f} s limit")


class ProgressWriter:
    """Writes progress at most every ``interval`` seconds; stops the job when it was cancelled
    or ran past its deadline."""

    def __init__(self, submission_id: int, deadline: Deadline, interval: float = 1.0) -> None:
        self.submission_id = submission_id
        self.deadline = deadline
        self.interval = interval
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        self.deadline.check()
        now = time.monotonic()
        if done < total and now - self._last < self.interval:
            return
        self._last = now
        with session_scope() as session:
            # Inference is ~95% of the job; the rest is metrics and the final write.
            still_running = queries.record_progress(
                session, self.submission_id, 0.95 * done / max(total, 1)
            )
        if not still_running:
            raise Cancelled("submission was cancelled while running")


def resolved_dataset_of(submission: Submission) -> ResolvedDataset:
    """The dataset reference the submission recorded, ready for the loaders."""
    dataset = submission.dataset
    local_format = None
    if dataset.source == "local":
        local_format = detect_local_dataset_format(Path(dataset.name))
    return ResolvedDataset(
        dataset.source,
        dataset.name,
        dataset.config,
        dataset.requested_revision,
        dataset.fingerprint,
        local_format,
    )


def stale_cutoff() -> datetime:
    """Heartbeats older than this mean the worker that held the submission is gone."""
    return utcnow() - timedelta(seconds=max(3.0, get_settings().heartbeat_seconds * 3))


def evaluation_request_for(submission: Submission) -> Any:
    """The engine's request, rebuilt from what the submission row recorded."""
    from worker.evaluation.engine import EvaluationRequest

    model = submission.model
    mapping = submission.column_mapping or {}
    params = submission.parameters or {}
    return EvaluationRequest(
        model=ResolvedModel(
            model.source, model.name, model.requested_revision, model.resolved_revision
        ),
        dataset=resolved_dataset_of(submission),
        split=submission.split,
        image_column=mapping.get("image", "image"),
        label_column=mapping.get("label", "label"),
        spec_name=submission.spec_name,
        batch_size=params.get("batch_size") or get_settings().eval_batch_size,
        num_workers=get_settings().eval_num_workers,
        device=get_settings().device,
    )


def run_evaluation_job(submission_id: int, *, worker: str | None = None) -> str:
    """Run one evaluation submission to a final state, whatever happens; returns that state."""
    from worker.evaluation.engine import run_evaluation

    with session_scope() as session:
        if not queries.claim_submission(session, submission_id, stale_before=stale_cutoff()):
            current = queries.get_submission(session, submission_id)
            return current.state if current is not None else "missing"
    try:
        with session_scope() as session:
            submission = queries.get_submission(session, submission_id)
            assert submission is not None
            request = evaluation_request_for(submission)
        with Heartbeat(submission_id, get_settings().heartbeat_seconds):
            deadline = Deadline("evaluation", get_settings().eval_time_limit)
            outcome = run_evaluation(request, progress=ProgressWriter(submission_id, deadline))
        outcome.provenance["worker"] = worker
        with session_scope() as session:
            stored = queries.complete_submission(
                session,
                submission_id,
                metrics=outcome.metrics,
                n_samples=outcome.n_samples,
                provenance=outcome.provenance,
            )
        return "succeeded" if stored else state_of(submission_id)
    except Cancelled:
        return state_of(submission_id)
    except Exception as error:  # noqa: BLE001 - every failure ends with a category
        record_failure(
            submission_id, error, what="evaluation", limit=get_settings().eval_time_limit
        )
    return state_of(submission_id)


def record_failure(submission_id: int, error: Exception, *, what: str, limit: float) -> None:
    """End a submission with the one category its exception maps to, and a message."""
    if isinstance(error, SoftTimeLimitExceeded):
        fail(
            submission_id, FailureCategory.TIMEOUT.value, f"{what} ran past its {limit:.0f} s limit"
        )
    elif isinstance(error, EvalboardError):
        fail(submission_id, error.category.value, error.message)
    else:
        log.error("%s of submission %s failed", what, submission_id, exc_info=error)
        fail(submission_id, FailureCategory.INTERNAL.value, f"{type(error).__name__}: {error}")


MAX_ATTEMPTS = 3


def reap_stale(limit_seconds: float | None = None) -> int:
    """Re-queue running submissions whose worker stopped beating (a training resumes from its
    last checkpoint), or fail them with ``worker_lost`` after ``MAX_ATTEMPTS``."""
    from evalboard.service import enqueue

    settings = get_settings()
    limit = (
        limit_seconds if limit_seconds is not None else max(120.0, settings.heartbeat_seconds * 6)
    )
    cutoff = utcnow() - timedelta(seconds=limit)
    requeued: list[tuple[int, str]] = []
    failed = 0
    with session_scope() as session:
        for submission in queries.stale_running(session, older_than=cutoff):
            if submission.attempts < MAX_ATTEMPTS and queries.requeue_submission(
                session, submission.id, stale_before=cutoff
            ):
                requeued.append((submission.id, submission.kind))
                continue
            failed += queries.fail_submission(
                session,
                submission.id,
                category=FailureCategory.WORKER_LOST.value,
                message=(
                    f"no heartbeat for over {int(limit)} s after {submission.attempts} "
                    "attempt(s): the worker running it was lost"
                ),
                from_states=("running",),
            )
    for submission_id, kind in requeued:
        enqueue(submission_id, kind)
    return failed + len(requeued)


def fail(submission_id: int, category: str, message: str) -> None:
    with session_scope() as session:
        queries.fail_submission(session, submission_id, category=category, message=message)


def state_of(submission_id: int) -> str:
    with session_scope() as session:
        submission = queries.get_submission(session, submission_id)
        return submission.state if submission is not None else "missing"
