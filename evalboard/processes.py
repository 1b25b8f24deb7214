"""``evalboard up``: migrate, then run a worker (with beat) and the dashboard until stopped.

A supervisor watches the worker: one that stopped taking work (queued submissions wait while
nothing runs, as when a killed idle prefork child leaves its replacement deadlocked on
billiard's queue lock) or that exited is restarted. On Ctrl-C or SIGTERM it says which
submissions were interrupted; the next ``evalboard up`` puts them back in the queue, and a
training resumes from its last checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import FrameType

from evalboard.settings import Settings, subprocess_env

STOP_GRACE_S = 20.0
CHECK_EVERY_S = 5.0


def worker_command(settings: Settings, *, beat: bool, queues: str | None = None) -> list[str]:
    from evalboard.queue import ALL_QUEUES

    command = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--loglevel", "INFO", "--concurrency", "1",
        "-Q", queues or ",".join(ALL_QUEUES),
    ]  # fmt: skip
    if beat:
        command += ["-B", "--schedule", str(settings.home / "celerybeat-schedule")]
    return command


def dashboard_command(port: int, address: str) -> list[str]:
    import dashboard

    app_path = Path(next(iter(dashboard.__path__))) / "app.py"
    return [
        sys.executable, "-m", "streamlit", "run", str(app_path),
        "--server.port", str(port), "--server.address", address,
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        # No "Deploy" button or developer menu, and no stack trace, for the people who read
        # the leaderboard (errors are in the server's log).
        "--client.toolbarMode", "minimal", "--client.showErrorDetails", "none",
    ]  # fmt: skip


def running_submissions() -> list[tuple[int, str]]:
    """(id, kind) of every submission marked running."""
    from sqlalchemy import select

    from db.models import Submission, SubmissionState
    from db.session import session_scope

    with session_scope() as session:
        return [
            (int(i), str(k))
            for i, k in session.execute(
                select(Submission.id, Submission.kind)
                .where(Submission.state == SubmissionState.RUNNING.value)
                .order_by(Submission.id)
            )
        ]


def queued_submissions() -> set[int]:
    from sqlalchemy import select

    from db.models import Submission, SubmissionState
    from db.session import session_scope

    with session_scope() as session:
        return set(
            session.scalars(
                select(Submission.id).where(Submission.state == SubmissionState.QUEUED.value)
            )
        )


def resume_interrupted(settings: Settings) -> list[int]:
    """Put back in the queue what a previous ``evalboard up`` left running (its heartbeat
    stopped): the embedded deployment has no other worker that could hold it."""
    from db import submissions as queries
    from db.models import utcnow
    from db.session import session_scope
    from evalboard.submit import enqueue

    cutoff = utcnow() - timedelta(seconds=max(3.0, settings.heartbeat_seconds * 3))
    resumed: list[tuple[int, str]] = []
    with session_scope() as session:
        for submission in queries.stale_running(session, older_than=cutoff):
            if queries.requeue_submission(session, submission.id, stale_before=cutoff, loss=False):
                resumed.append((submission.id, submission.kind))
    for submission_id, kind in resumed:
        enqueue(submission_id, kind)
    return [submission_id for submission_id, _ in resumed]


class Stall:
    """Queued submissions waiting while nothing runs, for longer than ``limit_s``: the worker
    stopped taking work."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.first_seen: dict[int, float] = {}

    def check(self) -> bool:
        now = time.monotonic()
        queued = queued_submissions()
        self.first_seen = {i: self.first_seen.get(i, now) for i in queued}
        if not queued or running_submissions():
            self.first_seen = {i: now for i in queued}  # waiting behind work is not a stall
            return False
        return now - min(self.first_seen.values()) > self.limit_s


def run_up(settings: Settings, *, port: int, address: str = "localhost") -> int:
    """Start worker+beat and dashboard; restart a worker that exits or stops taking work;
    stop everything on Ctrl-C or SIGTERM (or if the dashboard exits)."""
    env = subprocess_env(settings)
    resumed = resume_interrupted(settings)
    if resumed:
        print(f"resuming interrupted submissions {resumed}", flush=True)
    # Each child leads its own process group, so that stopping one stops what it started too
    # (a prefork child left running would go on heartbeating a job nobody will finish).
    dashboard = subprocess.Popen(dashboard_command(port, address), env=env, start_new_session=True)
    worker = subprocess.Popen(worker_command(settings, beat=True), env=env, start_new_session=True)
    stopping = False

    def _stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"evalboard is up: dashboard at http://{address}:{port}", flush=True)
    print(f"data in {settings.home}; stop with Ctrl-C", flush=True)
    exit_code = 0
    stall = Stall(settings.worker_stall_seconds)
    checked = time.monotonic()
    try:
        while not stopping:
            if dashboard.poll() is not None:
                print(f"dashboard exited with code {dashboard.returncode}; stopping", flush=True)
                exit_code = dashboard.returncode or 1
                break
            restart = None
            if worker.poll() is not None:
                restart = f"the worker exited with code {worker.returncode}"
            elif time.monotonic() - checked > CHECK_EVERY_S:
                checked = time.monotonic()
                if stall.check():
                    restart = "the worker took no queued work for a while"
            if restart:
                print(f"{restart}: restarting it", flush=True)
                terminate([worker])
                worker = subprocess.Popen(
                    worker_command(settings, beat=True), env=env, start_new_session=True
                )
                stall = Stall(settings.worker_stall_seconds)
            time.sleep(0.2)
    finally:
        terminate([worker, dashboard], grace_s=settings.stop_grace_seconds)
        # What the worker did not finish within the grace time (a finished job is not news).
        interrupted = running_submissions()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if interrupted:
        shown = ", ".join(f"{i} ({kind})" for i, kind in interrupted)
        print(
            f"interrupted submissions: {shown}. They resume when evalboard up starts again "
            "(a training from its last checkpoint).",
            flush=True,
        )
    print("evalboard stopped", flush=True)
    return exit_code


def terminate(children: list[subprocess.Popen[bytes]], grace_s: float = STOP_GRACE_S) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        try:  # whatever it started and left behind
            os.killpg(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
