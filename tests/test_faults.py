"""Fault injection: killed workers, a restarted Redis, runaway jobs and out-of-memory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import func, select

from db.models import Result, Submission
from db.session import session_scope
from evalboard.errors import EvalboardError, FailureCategory
from evalboard.submit import EvaluationInput, submit
from tests import factories, servers
from tests.conftest import DigitsData, TinyModels
from tests.servers import wait_for


def _submission(submission_id: int) -> Submission:
    with session_scope() as session:
        submission = session.get(Submission, submission_id)
        assert submission is not None
        return submission


def _results(submission_id: int) -> int:
    with session_scope() as session:
        return int(
            session.scalar(select(func.count()).where(Result.submission_id == submission_id)) or 0
        )


@pytest.mark.parametrize("backend", ["production"], indirect=True)
def test_an_evaluation_whose_worker_is_killed_succeeds_once_on_a_new_worker(
    backend, start_worker, digits: DigitsData, tiny_models: TinyModels
) -> None:
    from worker.scheduling.reaper import reap_stale

    first = start_worker("doomed")
    submission_id = submit(
        EvaluationInput(
            model=str(tiny_models.trained_resnet),
            dataset=str(digits.imagefolder),
            split="train",  # 1,438 images one at a time: slow enough to be killed half way
            parameters={"batch_size": 1},
        )
    ).submission_id
    wait_for(lambda: _submission(submission_id).progress > 0.05, 120, "never made progress")
    first.kill()
    assert _submission(submission_id).state == "running"
    time.sleep(3)  # its heartbeat (every second here) goes stale
    assert reap_stale(limit_seconds=2) == 1
    start_worker("rescuer")
    wait_for(lambda: _submission(submission_id).state == "succeeded", 180, "never succeeded")
    submission = _submission(submission_id)
    assert submission.attempts == 2
    assert _results(submission_id) == 7  # exactly one result set


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    wait_for(lambda: _pings(client), 30, "redis did not start")
    return process


def _pings(client) -> bool:
    import redis

    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_restarting_redis_loses_no_queued_submission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_root: Path, digits: DigitsData,
    tiny_models: TinyModels,
) -> None:  # fmt: skip
    """A throwaway Redis with an append-only file, as production runs it."""
    from evalboard.settings import get_settings, subprocess_env
    from tests.conftest import _activate, _deactivate

    port = _free_port()
    folder = tmp_path / "redis"
    folder.mkdir()
    redis_server = _redis(port, folder)
    workers: list[servers.Worker] = []
    try:
        with servers.postgres_database() as database_url:
            _activate(monkeypatch, tmp_path / "home", data_root, database_url=database_url,
                      broker_url=f"redis://127.0.0.1:{port}/0")  # fmt: skip
            ids = [
                submit(EvaluationInput(model=str(path), dataset=str(digits.saved))).submission_id
                for path in (tiny_models.vit, tiny_models.resnet, tiny_models.trained_resnet)
            ]
            redis_server.terminate()  # SIGTERM: Redis flushes its append-only file and exits
            redis_server.wait(timeout=30)
            redis_server = _redis(port, folder)
            worker = servers.Worker(subprocess_env(get_settings()), tmp_path / "w.log",
                                    name="after-restart", queues="eval,train,light")  # fmt: skip
            workers.append(worker)
            worker.wait_ready()
            wait_for(
                lambda: all(_submission(i).state == "succeeded" for i in ids), 180, "lost work"
            )
            assert all(_results(i) == 7 for i in ids)
            _deactivate()
    finally:
        for worker in workers:
            worker.stop()
        redis_server.terminate()
        redis_server.wait(timeout=30)


def test_a_runaway_evaluation_ends_with_timeout_and_the_queue_goes_on(
    evalboard_home: Path, monkeypatch: pytest.MonkeyPatch, start_worker, digits: DigitsData,
    data_root: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("EVALBOARD_EVAL_TIME_LIMIT", "3")
    start_worker()
    # 1,438 images at 224×224, one at a time: tens of seconds, far past the 3 s limit.
    large = data_root / "runaway-resnet-224"
    if not large.exists():
        factories.make_resnet(large, image_size=224)
    slow = submit(
        EvaluationInput(
            model=str(large),
            dataset=str(digits.imagefolder),
            split="train",
            parameters={"batch_size": 1},
        )  # fmt: skip
    ).submission_id
    wait_for(lambda: _submission(slow).state not in ("queued", "running"), 120, "no timeout")
    submission = _submission(slow)
    assert (submission.state, submission.failure_category) == ("failed", "timeout")
    assert "3 s limit" in (submission.failure_message or "")

    handful = data_root / "runaway-handful"
    if not handful.exists():
        factories.write_digits_parquet(handful, limit=6)
    quick = submit(EvaluationInput(model=str(large), dataset=str(handful))).submission_id
    wait_for(lambda: _submission(quick).state not in ("queued", "running"), 120, "stuck")
    assert _submission(quick).state == "succeeded", _submission(quick).failure_message


class _SmallDevice:
    """Stands in for a GPU that holds at most ``limit`` images at once (no GPU exists here)."""

    def __init__(self, model, limit: int) -> None:
        self.model, self.limit, self.calls = model, limit, []

    @torch.inference_mode()
    def predict(self, pixel_values: torch.Tensor) -> np.ndarray:
        self.calls.append(len(pixel_values))
        if len(pixel_values) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated device limit)")
        return self.model(pixel_values=pixel_values).logits.float().numpy()


def test_out_of_memory_halves_the_batch_and_gives_the_same_logits(
    tiny_models: TinyModels,
) -> None:
    from transformers import AutoModelForImageClassification

    from worker.evaluation.image_classification import _predict_halving_on_oom

    model = AutoModelForImageClassification.from_pretrained(tiny_models.resnet).eval()
    pixels = torch.randn(16, 3, 32, 32)
    device = _SmallDevice(model, limit=4)
    logits = _predict_halving_on_oom(device, pixels)
    with torch.inference_mode():
        expected = model(pixel_values=pixels).logits.numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    assert device.calls[0] == 16 and max(c for c in device.calls if c <= 4) == 4

    with pytest.raises(EvalboardError) as failure:
        _predict_halving_on_oom(_SmallDevice(model, limit=0), pixels[:2])
    assert failure.value.category == FailureCategory.OUT_OF_MEMORY
