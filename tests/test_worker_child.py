"""A killed idle pool child never wedges ``evalboard worker`` (issue 14, point 8).

billiard's blocking pool (the embedded broker's) shares one semaphore among its children, and an
idle child holds it while it waits for a job: SIGKILLed there, it left every replacement blocked
for ever, and the worker's shutdown blocked on it too. With Redis, a replacement child that
imports torch on a busy machine missed Celery's 4 s start deadline and was replaced for ever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from db.models import Submission
from db.session import session_scope
from evalboard.settings import get_settings, subprocess_env
from tests.conftest import DigitsData, TinyModels
from tests.servers import Backend, wait_for
from tests.test_end_to_end import run_json

ROUNDS = 3
# Generous: a replacement child imports torch, on a machine shared with other test runs.
ROUND_TIMEOUT_S = 240


class CliWorker:
    """``evalboard worker --concurrency 1`` through the real command line."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "evalboard.cli", "worker", "--concurrency", "1"],
                stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(get_settings()),
                start_new_session=True,
            )  # fmt: skip
        wait_for(lambda: " ready." in self.log(), 120, f"worker never ready:\n{self.log()}")
        self.wait_settled()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pool_children(self) -> list[psutil.Process]:
        """Every prefork child under the command (a forked child runs its parent's command)."""
        found = []
        for process in psutil.Process(self.process.pid).children(recursive=True):
            try:
                parent = process.parent()
                if parent is not None and process.cmdline() == parent.cmdline():
                    found.append(process)
            except psutil.Error:
                continue
        return found

    def wait_settled(self, quiet_s: float = 3.0, timeout: float = 120) -> list[psutil.Process]:
        """The pool children, once the same ones have been there for ``quiet_s``."""
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        since = time.monotonic()
        while time.monotonic() < deadline:
            children = self.pool_children()
            pids = {child.pid for child in children}
            if pids != seen:
                seen, since = pids, time.monotonic()
            elif pids and time.monotonic() - since >= quiet_s:
                return children
            time.sleep(0.3)
        raise TimeoutError(f"the pool never settled:\n{self.log()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:  # whatever the command left behind in its own session
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@pytest.fixture()
def cli_worker(backend: Backend, tmp_path: Path) -> Iterator[CliWorker]:
    worker = CliWorker(tmp_path / "worker.log")
    yield worker
    worker.stop()


def _kill_idle_children(worker: CliWorker) -> list[int]:
    children = worker.wait_settled()
    for child in children:
        child.kill()  # as the kernel's OOM killer would, while it waits for work
    psutil.wait_procs(children, timeout=10)
    return [child.pid for child in children]


def test_a_worker_whose_idle_child_is_killed_takes_the_next_submission_every_round(
    cli_worker: CliWorker, digits: DigitsData, tiny_models: TinyModels
) -> None:
    for round_ in range(1, ROUNDS + 1):
        killed = _kill_idle_children(cli_worker)
        assert killed, "no prefork child found"
        started = time.monotonic()
        report = run_json(
            "submit", "--model", str(tiny_models.resnet), "--dataset", str(digits.parquet),
            "--submitter", f"round-{round_}", "--wait", "--timeout", str(ROUND_TIMEOUT_S),
        )  # fmt: skip
        assert report["state"] == "succeeded", (round_, report, cli_worker.log()[-4000:])
        assert time.monotonic() - started < ROUND_TIMEOUT_S
        assert not set(killed) & {child.pid for child in cli_worker.pool_children()}
        with session_scope() as session:
            submission = session.get(Submission, report["submission_id"])
            assert submission is not None and submission.attempts == 1


def test_a_worker_whose_idle_child_was_killed_stops_on_sigterm_within_the_grace_time(
    cli_worker: CliWorker,
) -> None:
    _kill_idle_children(cli_worker)
    time.sleep(2)  # the pool has noticed the death and is starting the replacement
    started = time.monotonic()
    cli_worker.process.terminate()
    grace = get_settings().stop_grace_seconds
    try:
        cli_worker.process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {grace} s after SIGTERM:\n{cli_worker.log()[-4000:]}")
    assert time.monotonic() - started < grace


def _hold(lock: object, held: object) -> None:
    lock.acquire()  # type: ignore[attr-defined]
    held.set()  # type: ignore[attr-defined]
    time.sleep(600)


def test_the_pool_lock_is_exclusive_while_its_holder_lives_and_free_once_it_is_killed() -> None:
    """The mechanism under the two tests above, on its own: billiard's semaphore stays taken
    by a SIGKILLed holder; this lock does not."""
    import multiprocessing

    from worker.prefork import ProcessLock

    context = multiprocessing.get_context("fork")
    lock, held = ProcessLock(), context.Event()
    holder = context.Process(target=_hold, args=(lock, held), daemon=True)
    holder.start()
    try:
        assert held.wait(60)
        assert lock.acquire(timeout=0.5) is False
        assert lock.acquire(block=False) is False
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        holder.join(30)
        assert lock.acquire(timeout=10) is True
        lock.release()
    finally:
        if holder.is_alive():
            holder.kill()
