"""Queued work survives a broker that lost its messages (issue 14, point 7).

Redis restarted empty (``shutdown nosave``) used to leave the submission queued behind the
running one ``queued`` for ever. Beat's reconciler sends again what has been queued too long and
whose message the broker no longer holds; a second delivery of a submission runs nothing.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.models import Result, Submission
from db.session import session_scope
from evalboard import queue
from evalboard.settings import get_settings, reset_settings_cache, subprocess_env
from tests import servers
from tests.conftest import DigitsData, TinyModels, _activate, _deactivate
from tests.servers import Backend, Worker, wait_for
from tests.test_end_to_end import evalboard, run_json

REQUEUE_AFTER_S = "3"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test's own, without persistence, that the test may stop."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.answers, 30, "private redis never answered")

    def answers(self) -> bool:
        ping = subprocess.run(
            ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
        )
        return ping.stdout.strip() == "PONG"

    def shutdown_nosave(self) -> None:
        """What the issue did: Redis goes away and forgets every message."""
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], check=False)
        assert self.process is not None
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class Beat:
    """A real ``celery beat`` on the active settings."""

    def __init__(self, home: Path, log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "worker.celery_app", "beat",
                 "--loglevel", "INFO", "--schedule", str(home / "beat-schedule")],
                stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(get_settings()),
                cwd=servers.ROOT,
            )  # fmt: skip

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture()
def production_on_private_redis(
    private_redis: PrivateRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_root: Path
) -> Iterator[PrivateRedis]:
    """PostgreSQL and this test's own Redis, with a short reconcile delay."""
    monkeypatch.setenv("EVALBOARD_REQUEUE_AFTER_SECONDS", REQUEUE_AFTER_S)
    with servers.postgres_database() as database_url:
        _activate(monkeypatch, tmp_path / "home", data_root,
                  database_url=database_url, broker_url=private_redis.url)  # fmt: skip
        yield private_redis
        _deactivate()


def _state(submission_id: int) -> str:
    with session_scope() as session:
        submission = session.get(Submission, submission_id)
        assert submission is not None
        return submission.state


def _attempts_and_results(submission_id: int) -> tuple[int, int, int]:
    """(attempts, result rows, distinct metrics) of a submission."""
    with session_scope() as session:
        submission = session.get(Submission, submission_id)
        assert submission is not None
        rows, metrics = session.execute(
            select(func.count(), func.count(func.distinct(Result.metric))).where(
                Result.submission_id == submission_id
            )
        ).one()
        return submission.attempts, int(rows), int(metrics)


def _start_service(home: Path, tmp_path: Path) -> tuple[Worker, Worker, Beat]:
    """The production layout: a jobs worker, a light worker and one beat."""
    env = subprocess_env(get_settings())
    jobs = Worker(env, tmp_path / "jobs.log", name="jobs", queues="eval,train")
    light = Worker(env, tmp_path / "light.log", name="light", queues="light")
    jobs.wait_ready()
    light.wait_ready()
    return jobs, light, Beat(home, tmp_path / "beat.log")


def test_work_queued_when_redis_restarts_empty_runs_once_after_it_returns(
    production_on_private_redis: PrivateRedis,
    digits: DigitsData,
    tiny_models: TinyModels,
    tmp_path: Path,
) -> None:
    redis = production_on_private_redis
    jobs, light, beat = _start_service(get_settings().home, tmp_path)
    try:
        running = run_json(
            "submit", "--model", str(tiny_models.resnet), "--dataset", str(digits.imagefolder),
            "--split", "train", "--batch-size", "1", "--submitter", "long",
        )["submission_id"]  # fmt: skip
        wait_for(lambda: _state(running) == "running", 180, "the first evaluation never started")
        behind = run_json(
            "submit", "--model", str(tiny_models.resnet), "--dataset", str(digits.parquet),
            "--submitter", "behind",
        )["submission_id"]  # fmt: skip
        assert _state(behind) == "queued"
        redis.shutdown_nosave()
        assert _state(running) == "running", "the first evaluation ended before Redis did"
        # Submitted while the broker is down: recorded, kept queued, and said so.
        down = evalboard(
            "submit", "--model", str(tiny_models.resnet), "--dataset", str(digits.parquet),
            "--submitter", "while-down", "--json",
        )  # fmt: skip
        assert "broker could not take it" in down.stderr, (down.stdout, down.stderr)
        with session_scope() as session:
            while_down = session.scalars(
                select(Submission.id).where(Submission.submitter == "while-down")
            ).one()
        assert _state(while_down) == "queued"
        redis.start()  # the same port, empty
        for submission_id in (running, behind, while_down):
            wait_for(
                lambda i=submission_id: _state(i) in ("succeeded", "failed", "cancelled"),
                600,
                f"submission {submission_id} never finished:\n{jobs.log()[-3000:]}",
            )
            assert _state(submission_id) == "succeeded", submission_id
        outcomes = {i: _attempts_and_results(i) for i in (running, behind, while_down)}
        for submission_id, (attempts, rows, metrics) in outcomes.items():
            assert attempts == 1, (submission_id, attempts)
            assert rows == metrics > 0, (submission_id, rows, metrics)  # one result set
        assert "message is gone: sent again" in light.log()

        # A duplicate delivery of a finished submission runs nothing and changes nothing.
        duplicate = queue.send(queue.EVALUATE_TASK, behind)
        wait_for(lambda: f"[{duplicate}] succeeded" in jobs.log(), 120, "duplicate never taken")
        assert _attempts_and_results(behind) == outcomes[behind]
    finally:
        beat.stop()
        light.stop()
        jobs.stop()


def _kombu_rows(home: Path) -> int:
    with sqlite3.connect(home / "broker.db") as broker:
        (count,) = broker.execute("SELECT COUNT(*) FROM kombu_message WHERE visible").fetchone()
        return int(count)


def test_a_message_deleted_from_the_embedded_broker_is_sent_again_by_beat(
    evalboard_home: Path,
    digits: DigitsData,
    tiny_models: TinyModels,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVALBOARD_REQUEUE_AFTER_SECONDS", REQUEUE_AFTER_S)
    reset_settings_cache()
    submission_id = run_json(
        "submit", "--model", str(tiny_models.resnet), "--dataset", str(digits.parquet)
    )["submission_id"]  # fmt: skip
    assert _kombu_rows(evalboard_home) == 1
    with sqlite3.connect(evalboard_home / "broker.db") as broker:
        broker.execute("DELETE FROM kombu_message")  # the lost message
    jobs, light, beat = _start_service(evalboard_home, tmp_path)
    try:
        wait_for(lambda: _state(submission_id) == "succeeded", 300,
                 f"never sent again:\n{light.log()[-3000:]}")  # fmt: skip
        attempts, rows, metrics = _attempts_and_results(submission_id)
        assert attempts == 1 and rows == metrics > 0
    finally:
        beat.stop()
        light.stop()
        jobs.stop()


def _delete_messages(backend: Backend) -> None:
    """Lose every message of the submission queues, as a broker restarted empty would."""
    if backend.name == "embedded":
        with sqlite3.connect(get_settings().home / "broker.db") as broker:
            broker.execute("DELETE FROM kombu_message")
        return
    import redis

    client = redis.Redis.from_url(backend.broker_url)
    client.delete(*queue.ALL_QUEUES)
    client.close()


def test_the_reconciler_sends_again_only_what_the_broker_lost_and_only_once(
    backend: Backend, digits: DigitsData, tiny_models: TinyModels
) -> None:
    from worker.scheduling.reconcile import requeue_lost

    submitted = [
        run_json("submit", "--model", str(model), "--dataset", str(digits.parquet))["submission_id"]
        for model in (tiny_models.resnet, tiny_models.vit)
    ]
    time.sleep(1.5)
    # Not old enough yet: nothing is touched, however the broker looks.
    _delete_messages(backend)
    assert requeue_lost(after_seconds=3600) == []
    assert requeue_lost(after_seconds=1) == submitted  # gone: both sent again
    assert requeue_lost(after_seconds=1) == []  # present now: not sent a second time
    with session_scope() as session:
        task_ids = {
            session.get(Submission, i).celery_task_id  # type: ignore[union-attr]
            for i in submitted
        }
    assert None not in task_ids and len(task_ids) == 2
    # A submission that is no longer queued is never sent again, message or not.
    cancelled = evalboard("cancel", str(submitted[0]))
    assert cancelled.returncode == 0, cancelled.stderr
    _delete_messages(backend)
    assert requeue_lost(after_seconds=1) == [submitted[1]]
