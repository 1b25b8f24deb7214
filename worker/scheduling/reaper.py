"""The reaper: re-queue running submissions whose worker stopped beating, or fail them."""

from __future__ import annotations

from datetime import timedelta

from db import submissions as queries
from db.models import utcnow
from db.session import session_scope
from evalboard.errors import FailureCategory
from evalboard.settings import get_settings
from evalboard.submit import enqueue

MAX_ATTEMPTS = 3


def reap_stale(limit_seconds: float | None = None) -> int:
    """Re-queue running submissions whose worker stopped beating (a training resumes from its
    last checkpoint), or fail them with ``worker_lost`` after ``MAX_ATTEMPTS``."""
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
