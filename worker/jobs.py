"""Submission jobs: claim atomically, run the engine with progress and heartbeat, record.

A claim returns the attempt number; every write of the run (heartbeat, progress, result,
failure) names it, so a run whose submission was taken over by another attempt writes nothing.
"""

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
from db.results import complete_submission
from db.session import session_scope
from evalboard import catalog
from evalboard.errors import (
    EvalboardError,
    FailureCategory,
    RefusedError,
    as_failure,
    is_no_space_at,
    no_space_error,
)
from evalboard.references import ResolvedDataset, ResolvedModel, detect_local_dataset_format
from evalboard.settings import get_settings

log = logging.getLogger(__name__)


class Cancelled(EvalboardError):
    category = FailureCategory.CANCELLED


class Heartbeat:
    """Writes the submission's heartbeat from a background thread while the job runs."""

    def __init__(self, submission_id: int, interval: float, attempt: int | None = None) -> None:
        self.submission_id = submission_id
        self.interval = interval
        self.attempt = attempt
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
                    queries.touch_heartbeat(session, self.submission_id, attempt=self.attempt)
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
    """Writes progress at most every ``interval`` seconds; stops the job when it was cancelled,
    taken over, or ran past its deadline."""

    def __init__(
        self,
        submission_id: int,
        deadline: Deadline,
        interval: float = 1.0,
        *,
        attempt: int | None = None,
    ) -> None:
        self.submission_id = submission_id
        self.deadline = deadline
        self.interval = interval
        self.attempt = attempt
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
                session, self.submission_id, 0.95 * done / max(total, 1), attempt=self.attempt,
                detail={"done": done, "total": total, "unit": "images"},
            )  # fmt: skip
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


# A submission whose process was lost this many times is failed, not run again: a job that
# kills its process (the kernel's OOM killer, a crash) would otherwise be retried forever.
MAX_LOSSES = 2


def claim(submission_id: int) -> int | None:
    """Claim a submission for this process; None when another holds it, it ended, or it was
    just failed for having lost its process twice."""
    with session_scope() as session:
        attempt = queries.claim_submission(session, submission_id, stale_before=stale_cutoff())
        if attempt is None:
            return None
        submission = queries.get_submission(session, submission_id)
        losses = list(submission.losses or []) if submission is not None else []
    if len(losses) >= MAX_LOSSES:
        fail(
            submission_id,
            FailureCategory.WORKER_LOST.value,
            f"the process running it died {len(losses)} times ({losses[-1]}): killed by a "
            "signal or crashed, as the kernel's out-of-memory killer does; it is not run again",
            attempt=attempt,
        )
        return None
    return attempt


def check_spec_version(submission: Submission) -> catalog.Spec:
    """The spec the submission asked for, as this worker has it; refused if the versions differ
    (a worker must never store a result under a version it did not run)."""
    spec = catalog.spec(submission.spec_name)
    if spec.version != submission.spec_version:
        raise RefusedError(
            f"the submission asked for spec {submission.spec_name} v{submission.spec_version}, "
            f"but this worker runs {spec.label}; submit it again"
        )
    return spec


def evaluation_request_for(submission: Submission) -> Any:
    """The engine's request, rebuilt from what the submission row recorded."""
    from worker.evaluation.engine import EvaluationRequest

    model = submission.model
    params = submission.parameters or {}
    settings = get_settings()
    return EvaluationRequest(
        model=ResolvedModel(
            model.source, model.name, model.requested_revision, model.resolved_revision
        ),
        dataset=resolved_dataset_of(submission),
        split=submission.split,
        task=submission.task,
        spec_name=check_spec_version(submission).name,
        columns=dict(submission.column_mapping or {}),
        batch_size=params.get("batch_size") or settings.eval_batch_size,
        num_workers=settings.eval_num_workers,
        device=settings.device,
    )


def run_evaluation_job(submission_id: int, *, worker: str | None = None) -> str:
    """Run one evaluation submission to a final state, whatever happens; returns that state."""
    from worker.evaluation.engine import run_evaluation
    from worker.notifications import after_finish
    from worker.preload import check_before_loading

    attempt = claim(submission_id)
    if attempt is None:
        state = state_of(submission_id)
        if state == "failed":
            after_finish(submission_id)
        return state
    try:
        with session_scope() as session:
            submission = queries.get_submission(session, submission_id)
            assert submission is not None
            request = evaluation_request_for(submission)
        with Heartbeat(submission_id, get_settings().heartbeat_seconds, attempt):
            # What was validated is what runs: checked again before anything is loaded.
            check_before_loading(submission_id)
            deadline = Deadline("evaluation", get_settings().eval_time_limit)
            progress = ProgressWriter(submission_id, deadline, attempt=attempt)
            outcome = run_evaluation(request, progress=progress)
        outcome.provenance["worker"] = worker
        with session_scope() as session:
            stored = complete_submission(
                session,
                submission_id,
                metrics=outcome.metrics,
                n_samples=outcome.n_samples,
                provenance=outcome.provenance,
                attempt=attempt,
            )
            if stored:
                from db.predictions import store_predictions

                store_predictions(
                    session,
                    submission_id,
                    references=outcome.references,
                    top_k=outcome.top_k,
                    class_names=outcome.class_names,
                )
    except Cancelled:
        pass
    except Exception as error:  # noqa: BLE001 - every failure ends with a category
        record_failure(
            submission_id,
            error,
            what="evaluation",
            limit=get_settings().eval_time_limit,
            attempt=attempt,
        )
    state = state_of(submission_id)
    if state in ("succeeded", "failed", "cancelled"):
        after_finish(submission_id)
    return state


def record_failure(
    submission_id: int,
    error: BaseException,
    *,
    what: str,
    limit: float,
    attempt: int | None = None,
) -> None:
    """End a submission with the one category its exception maps to, and a message."""
    if isinstance(error, SoftTimeLimitExceeded):
        category, message = (
            FailureCategory.TIMEOUT.value,
            f"{what} ran past its {limit:.0f} s limit",
        )
    elif isinstance(error, EvalboardError):
        named = as_failure(error, get_settings().home)
        category, message = named.category.value, named.message
    elif is_no_space_at(error, get_settings().home):
        # A full disk (the cache, the artifacts, SQLite's "database or disk is full"): the
        # operator's to fix, so never `internal`.
        category = FailureCategory.RESOURCES.value
        message = no_space_error(error, get_settings().home).message
    elif isinstance(error, MemoryError) or "can't allocate memory" in str(error):
        category = FailureCategory.OUT_OF_MEMORY.value
        message = (
            f"{what} ran out of memory (the job's limit is EVALBOARD_JOB_MEMORY_GB): "
            f"{type(error).__name__}"
        )
    else:
        log.error("%s of submission %s failed", what, submission_id, exc_info=error)
        category, message = FailureCategory.INTERNAL.value, f"{type(error).__name__}: {error}"
    fail(submission_id, category, message, attempt=attempt)


# How long ``fail`` keeps trying to record a failure on a database whose disk is full (SQLite
# beside the cache in EVALBOARD_HOME): the submission then ends `failed`, not stuck `running`.
RECORD_RETRY_S = 15 * 60
RECORD_RETRY_MAX_WAIT_S = 5.0


def fail(submission_id: int, category: str, message: str, *, attempt: int | None = None) -> None:
    """Record the failure; while the database's disk is full, try again until it has room
    (for up to RECORD_RETRY_S, then the reaper's heartbeat check takes over)."""
    gives_up = time.monotonic() + RECORD_RETRY_S
    wait = 0.5
    while True:
        try:
            with session_scope() as session:
                queries.fail_submission(
                    session, submission_id, category=category, message=message, attempt=attempt
                )
            return
        except Exception as error:
            full = is_no_space_at(error, get_settings().home)
            if not full or time.monotonic() + wait > gives_up:
                raise
            log.warning(
                "cannot record the failure of submission %s (no space left): retrying in %.1f s",
                submission_id, wait,
            )  # fmt: skip
            time.sleep(wait)
            wait = min(wait * 2, RECORD_RETRY_MAX_WAIT_S)


def state_of(submission_id: int) -> str:
    with session_scope() as session:
        submission = queries.get_submission(session, submission_id)
        return submission.state if submission is not None else "missing"
