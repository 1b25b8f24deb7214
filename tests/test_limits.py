"""One job can never take the host, and a job that kills its process twice is not retried."""

from __future__ import annotations

from pathlib import Path

import pytest

from db.models import Submission
from db.session import session_scope
from evalboard.settings import reset_settings_cache
from tests import toy_task
from tests.servers import wait_for
from tests.test_end_to_end import run_json


@pytest.fixture()
def limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALBOARD_PLUGINS", "tests.toy_task")
    monkeypatch.setenv("EVALBOARD_JOB_MEMORY_GB", "2")
    reset_settings_cache()


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_a_job_past_its_memory_limit_fails_alone_and_one_killed_twice_is_not_retried(
    limited, backend, start_worker, data_root: Path
) -> None:
    root = data_root / "limits"
    dataset = toy_task.write_dataset(root / "numbers")
    start_worker()

    def submit(offset: int) -> dict:
        model = toy_task.write_model(root / f"model-{offset}", offset=offset)
        return run_json("submit", "--task", toy_task.TASK, "--model", str(model), "--dataset",
                        str(dataset), "--wait", "--timeout", "240")  # fmt: skip

    hog = submit(toy_task.HOG)
    assert hog["state"] == "failed"
    assert hog["error"]["category"] == "out_of_memory", hog["error"]
    assert "EVALBOARD_JOB_MEMORY_GB" in hog["error"]["message"]
    assert submit(0)["state"] == "succeeded"  # the worker took no harm

    killed = submit(toy_task.KILLED)
    assert killed["state"] == "failed", killed
    assert killed["error"]["category"] == "worker_lost"
    assert "died 2 times" in killed["error"]["message"]
    with session_scope() as session:
        submission = session.get(Submission, killed["submission_id"])
        assert submission.attempts == 3  # two runs killed, the third claim fails it
        assert len(submission.losses) == 2
    wait_for(lambda: submit(1)["state"] == "succeeded", 120, "the worker took no more work")
