"""Beat embedded in the light worker keeps sending on the embedded broker.

On SQLite + kombu's SQL transport, beat's second scheduled send and every later one failed with
``channel disconnected``: a pooled SQLite connection crossed the fork into beat ("disk I/O
error"), and kombu's recovery left beat's producer on the channel it closed. The reaper, the
reconciler and the re-evaluation check ran once per ``evalboard up``.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from celery.beat import ScheduleEntry

from evalboard import queue
from evalboard.processes import worker_layout
from evalboard.settings import get_settings, reset_settings_cache, subprocess_env
from tests import servers
from tests.servers import wait_for
from worker.beat import Scheduler

RUNS_WANTED = 5


def _runs(log: str) -> int:
    """Reconciler runs the light worker finished."""
    return len(re.findall(rf"Task {queue.REQUEUE_TASK}\[[^\]]+\] succeeded", log))


def test_beat_in_the_light_worker_sends_every_time_on_the_embedded_broker(
    evalboard_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reconciler's entry then fires every 2 s (half of this).
    monkeypatch.setenv("EVALBOARD_REQUEUE_AFTER_SECONDS", "4")
    reset_settings_cache()
    settings = get_settings()
    command = worker_layout(settings, beat=True)["light"]  # what `evalboard up` starts
    log_path = tmp_path / "light.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=subprocess_env(settings), cwd=servers.ROOT,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        try:
            wait_for(lambda: _runs(log_path.read_text(errors="replace")) >= RUNS_WANTED, 90, "")
        except TimeoutError:
            tail = log_path.read_text(errors="replace")[-4000:]
            pytest.fail(f"beat's sends stopped landing:\n{tail}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
    text = log_path.read_text(errors="replace")
    sends = text.count("Sending due task requeue-lost-submissions")
    assert "channel disconnected" not in text, text[-4000:]
    assert "ERROR/Beat" not in text and "Couldn't apply scheduled task" not in text, text[-4000:]
    assert "disk I/O error" not in text, text[-4000:]
    assert sends >= RUNS_WANTED and _runs(text) >= RUNS_WANTED, (sends, _runs(text))


def _waiting(home: Path) -> int:
    with sqlite3.connect(home / "broker.db") as broker:
        (count,) = broker.execute("SELECT COUNT(*) FROM kombu_message WHERE visible").fetchone()
        return int(count)


def test_beat_sends_again_after_kombu_recovered_the_connection_under_its_producer(
    evalboard_home: Path, tmp_path: Path
) -> None:
    """kombu's retry of a failed declare closes the connection's channel, reconnects and declares
    again, but beat's producer stays on the closed channel; the next send must still land."""
    scheduler = Scheduler(app=queue.app, schedule_filename=str(tmp_path / "schedule"))
    try:
        entry = ScheduleEntry(name="requeue", task=queue.REQUEUE_TASK, schedule=2.0, app=queue.app)
        producer = scheduler.producer
        scheduler.apply_entry(entry, producer=producer)
        assert _waiting(evalboard_home) == 1
        # What kombu's Connection.ensure does on a connection error, before it retries.
        scheduler.connection.collect()
        scheduler.connection.ensure_connection()
        assert producer.channel.connection is None  # the producer's channel is the closed one
        for expected in (2, 3):
            scheduler.apply_entry(entry, producer=scheduler.producer)
            assert _waiting(evalboard_home) == expected
    finally:
        scheduler.close()
