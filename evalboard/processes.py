"""``evalboard up`` and ``evalboard worker``: the worker processes, and the dashboard.

Evaluations and trainings run in one worker, one job at a time; the light queue (webhooks,
the reaper, beat) in a second one with a small pool of its own, so that a notification never
takes the slot a job needs. ``evalboard up`` migrates, then runs both and the dashboard until
stopped. A supervisor restarts a worker that exits, and the jobs worker when it stops taking
work (queued submissions wait while nothing runs, as when a killed idle prefork child leaves
its replacement deadlocked on billiard's queue lock). On Ctrl-C or SIGTERM it says which
submissions were interrupted; the next ``evalboard up`` puts them back in the queue, and a
training resumes from its last checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from types import FrameType

from evalboard.settings import Settings, subprocess_env

STOP_GRACE_S = 20.0
CHECK_EVERY_S = 5.0


LIGHT_CONCURRENCY = 2  # notifications, the reaper, re-evaluation checks: small and short
CELERY_WORKER = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker"]


def worker_command(
    settings: Settings,
    *,
    beat: bool,
    queues: str | None = None,
    name: str | None = None,
    concurrency: int = 1,
) -> list[str]:
    from evalboard.queue import ALL_QUEUES

    command = [
        *CELERY_WORKER, "--loglevel", "INFO", "--concurrency", str(concurrency),
        "-Q", queues or ",".join(ALL_QUEUES),
    ]  # fmt: skip
    if name:
        command += ["--hostname", name]
    if beat:
        command += ["-B", "--schedule", str(settings.home / "celerybeat-schedule")]
    return command


def worker_layout(
    settings: Settings, *, beat: bool, job_args: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """The worker processes: one for evaluations and trainings (one at a time, or as
    ``job_args``, a user's celery options, say), and one for the light queue in a small pool
    of its own (with beat when asked), so that a slow webhook or a re-evaluation check never
    takes the slot an evaluation needs."""
    from evalboard.queue import EVAL_QUEUE, LIGHT_QUEUE, TRAIN_QUEUE

    job_queues = f"{EVAL_QUEUE},{TRAIN_QUEUE}"
    if job_args is None:
        jobs = worker_command(settings, beat=False, queues=job_queues, name="jobs@%h")
        light_name = "light@%h"
    else:
        jobs = [*CELERY_WORKER, "-Q", job_queues, *job_args]
        given = _hostname_of(job_args)
        light_name = f"light-{given}" if given else "light@%h"
    light = worker_command(
        settings, beat=beat, queues=LIGHT_QUEUE, name=light_name, concurrency=LIGHT_CONCURRENCY
    )
    return {"jobs": jobs, "light": light}


def _hostname_of(celery_args: Sequence[str]) -> str | None:
    """The ``-n``/``--hostname`` a user gave, so that the light worker's name follows it."""
    for index, arg in enumerate(celery_args):
        if arg in ("-n", "--hostname") and index + 1 < len(celery_args):
            return celery_args[index + 1]
        if arg.startswith(("--hostname=", "-n=")):
            return arg.partition("=")[2]
    return None


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


class Workers:
    """The worker processes of a layout, each leading its own process group (so that stopping
    one stops what it started too: a prefork child left running would go on heartbeating a job
    nobody will finish)."""

    def __init__(self, commands: dict[str, list[str]], env: dict[str, str]) -> None:
        self.commands = commands
        self.env = env
        self.processes = {name: self._start(name) for name in commands}

    def _start(self, name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.commands[name], env=self.env, start_new_session=True)

    def exited(self) -> dict[str, int]:
        """Name and exit code of each worker that has exited."""
        return {
            name: process.returncode
            for name, process in self.processes.items()
            if process.poll() is not None
        }

    def restart(self, name: str) -> None:
        terminate([self.processes[name]])
        self.processes[name] = self._start(name)

    def all(self) -> list[subprocess.Popen[bytes]]:
        return list(self.processes.values())


def run_up(settings: Settings, *, port: int, address: str = "localhost") -> int:
    """Start the workers (beat with the light one) and the dashboard; restart a worker that
    exits or stops taking work; stop everything on Ctrl-C or SIGTERM (or if the dashboard
    exits)."""
    env = subprocess_env(settings)
    resumed = resume_interrupted(settings)
    if resumed:
        print(f"resuming interrupted submissions {resumed}", flush=True)
    dashboard = subprocess.Popen(dashboard_command(port, address), env=env, start_new_session=True)
    workers = Workers(worker_layout(settings, beat=True), env)
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
            restart = {
                name: f"the {name} worker exited with code {code}"
                for name, code in workers.exited().items()
            }
            if "jobs" not in restart and time.monotonic() - checked > CHECK_EVERY_S:
                checked = time.monotonic()
                if stall.check():
                    restart["jobs"] = "the jobs worker took no queued work for a while"
            for name, reason in restart.items():
                print(f"{reason}: restarting it", flush=True)
                workers.restart(name)
                if name == "jobs":
                    stall = Stall(settings.worker_stall_seconds)
            time.sleep(0.2)
    finally:
        terminate([*workers.all(), dashboard], grace_s=settings.stop_grace_seconds)
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


def run_workers(settings: Settings, job_args: Sequence[str]) -> int:
    """``evalboard worker`` without ``-Q``: the jobs worker (with ``job_args``) and a light one.

    Signals are passed on to both, so the jobs worker keeps Celery's own shutdown (a warm one
    finishes the running job); the light one gets the stop grace time, then is killed (its
    tasks are acknowledged late and run again). A light worker that exits on its own is
    started again; when the jobs worker exits, so does the light one.
    """
    env = subprocess_env(settings)
    workers = Workers(worker_layout(settings, beat=False, job_args=job_args), env)
    received: list[int] = []

    def _forward(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        for process in workers.all():
            if process.poll() is None:
                process.send_signal(signum)

    previous = {
        sig: signal.signal(sig, _forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
    }
    restarted = time.monotonic()
    try:
        while "jobs" not in (exited := workers.exited()):
            if "light" in exited and not received and time.monotonic() - restarted > CHECK_EVERY_S:
                print(f"the light worker exited with code {exited['light']}: restarting it",
                      flush=True)  # fmt: skip
                workers.restart("light")
                restarted = time.monotonic()
            if received and "light" in exited:
                break
            time.sleep(0.2)
    finally:
        terminate([workers.processes["light"]], grace_s=settings.stop_grace_seconds)
        jobs = workers.processes["jobs"]
        jobs.wait()  # a warm shutdown: Celery finishes the running job first
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    code = jobs.returncode
    return code if code >= 0 else 128 - code  # killed by a signal: the shell's convention


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
