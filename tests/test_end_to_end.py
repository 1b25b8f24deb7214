"""Submissions through a real broker and a real Celery worker, on both deployments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from db.models import Result
from db.session import session_scope
from tests.conftest import DigitsData, TinyModels

ROOT = Path(__file__).resolve().parent.parent


def evalboard(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real ``evalboard`` command line in a child process."""
    import os

    return subprocess.run(
        [sys.executable, "-m", "evalboard.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=dict(os.environ),
    )


def run_json(*args: str) -> Any:
    completed = evalboard(*args, "--json")
    assert completed.stdout, completed.stderr
    return json.loads(completed.stdout)


def test_two_models_submitted_with_wait_are_ranked_on_the_leaderboard(
    backend, start_worker, digits: DigitsData, tiny_models: TinyModels
) -> None:
    start_worker()
    trained = run_json(
        "submit", "--model", str(tiny_models.trained_resnet), "--dataset", str(digits.parquet),
        "--wait", "--submitter", "alice",
    )  # fmt: skip
    untrained = run_json(
        "submit", "--model", str(tiny_models.vit), "--dataset", str(digits.parquet), "--wait",
    )  # fmt: skip
    for report in (trained, untrained):
        assert report["state"] == "succeeded", report
        assert report["error"] is None
        assert report["n_samples"] == 359
        assert report["provenance"]["split"] == "test"
        assert set(report["metrics"]) >= {"accuracy", "f1_macro", "top5_accuracy"}

    # The queued evaluation gives exactly the numbers of the in-process one.
    in_process = run_json(
        "evaluate", "--model", str(tiny_models.trained_resnet), "--dataset", str(digits.parquet)
    )
    assert in_process["submission_id"] is None
    assert in_process["metrics"] == trained["metrics"]

    board = evalboard(
        "leaderboard", "--dataset", str(digits.parquet), "--split", "test", "--format", "json"
    )
    rows = json.loads(board.stdout)
    assert [row["submission_id"] for row in rows] == [
        trained["submission_id"],
        untrained["submission_id"],
    ]
    assert [row["rank"] for row in rows] == [1, 2]
    assert rows[0]["value"] == trained["metrics"]["accuracy"] > 0.9
    assert rows[1]["value"] == untrained["metrics"]["accuracy"]
    assert rows[0]["model"] == str(tiny_models.trained_resnet)
    assert rows[0]["revision"] == trained["revision"]
    assert rows[0]["n_samples"] == 359

    status = run_json("status", str(trained["submission_id"]))
    assert status["state"] == "succeeded"
    assert status["metrics"] == trained["metrics"]
    with session_scope() as session:
        stored = session.scalar(
            select(func.count()).where(Result.submission_id == trained["submission_id"])
        )
    assert stored == len(trained["metrics"])


def test_a_failing_submission_gets_a_named_reason_and_the_queue_goes_on(
    backend, start_worker, digits: DigitsData, tiny_models: TinyModels
) -> None:
    start_worker()
    bad = evalboard(
        "submit", "--model", str(tiny_models.resnet), "--dataset", str(digits.imagefolder),
        "--split", "validation", "--wait", "--json",
    )  # fmt: skip
    assert bad.returncode == 1
    failed = json.loads(bad.stdout)
    assert failed["state"] == "failed"
    assert failed["error"]["category"] == "not_found"
    assert "validation" in failed["error"]["message"]
    assert "test" in failed["error"]["message"]  # lists the splits that exist

    good = run_json(
        "submit", "--model", str(tiny_models.resnet), "--dataset", str(digits.imagefolder),
        "--wait",
    )  # fmt: skip
    assert good["state"] == "succeeded"
    assert good["submission_id"] == failed["submission_id"] + 1


def test_a_refused_submission_is_never_queued_and_exits_non_zero(
    backend, digits: DigitsData
) -> None:
    completed = evalboard("submit", "--model", "/etc", "--dataset", str(digits.parquet), "--json")
    assert completed.returncode != 0
    report = json.loads(completed.stdout)
    assert report["submission_id"] is None
    assert report["error"]["category"] == "refused"
    assert "outside the allowed folders" in report["error"]["message"]
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Result)) == 0
