"""``evalboard up``: migrate, then run a worker (with beat) and the dashboard until stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from evalboard.settings import Settings, subprocess_env

STOP_GRACE_S = 20.0


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


def run_up(settings: Settings, *, port: int, address: str = "localhost") -> int:
    """Start worker+beat and dashboard; stop both on Ctrl-C, SIGTERM or if either exits."""
    env = subprocess_env(settings)
    commands = {
        "worker": worker_command(settings, beat=True),
        "dashboard": dashboard_command(port, address),
    }
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in commands.items():
            children[name] = subprocess.Popen(command, env=env)
    except BaseException:
        terminate(list(children.values()))
        raise
    stopping = False

    def _stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"evalboard is up: dashboard at http://{address}:{port}", flush=True)
    print(f"data in {settings.home}; stop with Ctrl-C", flush=True)
    exit_code = 0
    try:
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"{name} exited with code {child.returncode}; stopping", flush=True)
                    exit_code = child.returncode or 1
                    stopping = True
            time.sleep(0.2)
    finally:
        terminate(list(children.values()))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("evalboard stopped", flush=True)
    return exit_code


def terminate(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
