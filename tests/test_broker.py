"""The embedded broker (kombu's SQL transport) when many processes meet it for the first time."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path
from typing import Any

ROUNDS, PROCESSES = 3, 8


def _first_send(barrier: Any, home: str, results: Any) -> None:
    os.environ["EVALBOARD_HOME"] = home
    os.environ.pop("EVALBOARD_BROKER_URL", None)
    from evalboard import queue

    barrier.wait()
    try:
        queue.send(queue.EVALUATE_TASK, 0)
        results.put("sent")
    except Exception as error:  # noqa: BLE001 - what failed is the test's finding
        results.put(f"{type(error).__name__}: {error}")


def test_processes_sending_their_first_task_together_all_send(tmp_path: Path) -> None:
    """kombu creates a queue's row on first use, guarded only within a process: a worker and a
    submitter meeting a fresh broker together both inserted ``eval``, and one send failed with
    ``UNIQUE constraint failed: kombu_queue.name`` (seen on CI). Eight processes at a barrier,
    three times over, on fresh brokers: every send lands, each queue exists once."""
    context = multiprocessing.get_context("spawn")
    for round_ in range(ROUNDS):
        home = tmp_path / f"home-{round_}"
        home.mkdir()
        barrier, results = context.Barrier(PROCESSES), context.Queue()
        processes = [
            context.Process(target=_first_send, args=(barrier, str(home), results))
            for _ in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        assert outcomes == ["sent"] * PROCESSES
        with sqlite3.connect(home / "broker.db") as broker:
            queues = broker.execute("SELECT name, COUNT(*) FROM kombu_queue GROUP BY name")
            assert dict(queues.fetchall()) == {"eval": 1, "train": 1, "light": 1}
            (messages,) = broker.execute("SELECT COUNT(*) FROM kombu_message").fetchone()
            assert messages == PROCESSES
