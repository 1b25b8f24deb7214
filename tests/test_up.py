"""``evalboard up`` brings up the dashboard and a worker, and stops them all on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from db.models import Submission
from db.session import session_scope
from tests.conftest import DigitsData, TinyModels
from tests.servers import wait_for
from tests.test_end_to_end import run_json


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
            return reply.read() == b"ok"
    except OSError:
        return False


def test_up_serves_the_dashboard_runs_submissions_and_stops_cleanly(
    evalboard_home: Path, digits: DigitsData, tiny_models: TinyModels, tmp_path: Path
) -> None:
    port = _free_port()
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evalboard.cli",
                "up",
                "--port",
                str(port),
                "--address",
                "127.0.0.1",
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
        try:
            wait_for(lambda: _healthy(port), 90, "dashboard never answered")
            wait_for(lambda: " ready." in log_path.read_text(), 90, "worker never ready")
            assert f"dashboard at http://127.0.0.1:{port}" in log_path.read_text()
            # The embedded default generates an admin secret, prints it once, keeps it private.
            secret_file = evalboard_home / "admin_secret"
            assert secret_file.read_text() in log_path.read_text()
            assert secret_file.stat().st_mode & 0o077 == 0
            assert "anonymous local submissions are allowed" in log_path.read_text()
            children = psutil.Process(up.pid).children(recursive=True)
            assert len(children) >= 2

            report = run_json(
                "submit", "--model", str(tiny_models.resnet), "--dataset", str(digits.saved),
                "--wait",
            )  # fmt: skip
            assert report["state"] == "succeeded", json.dumps(report)

            up.send_signal(signal.SIGTERM)
            assert up.wait(timeout=60) == 0
            wait_for(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE
                                      for c in children), 30, "children left running")  # fmt: skip
            assert "evalboard stopped" in log_path.read_text()
        finally:
            if up.poll() is None:
                up.kill()


class Up:
    """``evalboard up`` as a user starts it, with its output in a log."""

    def __init__(self, log_path: Path) -> None:
        self.port = _free_port()
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "evalboard.cli", "up", "--port", str(self.port),
                 "--address", "127.0.0.1"],
                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
            )  # fmt: skip
        wait_for(lambda: _healthy(self.port), 90, "dashboard never answered")
        wait_for(lambda: self.log().count(" ready.") >= 1, 90, "worker never ready")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=90)

    def workers(self) -> list[psutil.Process]:
        """The prefork children of the worker (its main process is a child of up)."""
        found = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if "celery" in " ".join(child.cmdline()) and child.parent().pid != self.process.pid:
                    found.append(child)
            except psutil.Error:
                continue
        return found


def test_a_worker_whose_idle_child_was_killed_is_restarted_and_takes_work(
    evalboard_home: Path, digits: DigitsData, tiny_models: TinyModels, tmp_path: Path,
    monkeypatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("EVALBOARD_WORKER_STALL_SECONDS", "10")
    up = Up(tmp_path / "up.log")
    try:
        idle = up.workers()
        assert idle, "no prefork child found"
        for child in idle:
            child.kill()  # as the kernel's OOM killer would, while it waits for work
        report = run_json(
            "submit", "--model", str(tiny_models.resnet), "--dataset", str(digits.parquet),
            "--wait", "--timeout", "240",
        )  # fmt: skip
        assert report["state"] == "succeeded", report
    finally:
        up.stop()


def test_stopping_up_names_the_interrupted_submissions_and_the_next_up_resumes_them(
    evalboard_home: Path, digits: DigitsData, tiny_models: TinyModels, tmp_path: Path,
    monkeypatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("EVALBOARD_EVAL_BATCH_SIZE", "1")  # a long evaluation to interrupt
    monkeypatch.setenv("EVALBOARD_STOP_GRACE_SECONDS", "1")  # stopped before it can finish
    log_path = tmp_path / "up.log"
    up = Up(log_path)
    try:
        queued = run_json(
            "submit", "--model", str(tiny_models.resnet), "--dataset", str(digits.imagefolder),
            "--split", "train",
        )  # fmt: skip
        submission_id = queued["submission_id"]
        wait_for(lambda: run_json("status", str(submission_id))["state"] == "running", 120,
                 "the evaluation never started")  # fmt: skip
        up.stop()
        assert f"interrupted submissions: {submission_id} (evaluate)" in up.log()
        assert "They resume when evalboard up starts again" in up.log()
        time.sleep(4)  # its heartbeat (every 1 s here) goes stale
        again = Up(log_path)
        try:
            assert f"resuming interrupted submissions [{submission_id}]" in again.log()
            wait_for(lambda: run_json("status", str(submission_id))["state"] == "succeeded",
                     240, "the resumed evaluation never finished")  # fmt: skip
        finally:
            again.stop()
    finally:
        up.stop()
    with session_scope() as session:
        submission = session.get(Submission, submission_id)
        assert submission.attempts == 2 and not submission.losses  # resumed, not a loss
