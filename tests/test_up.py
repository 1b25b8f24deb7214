"""``evalboard up`` brings up the dashboard and a worker, and stops them all on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil

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
