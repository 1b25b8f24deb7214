"""Scheduled re-evaluation and history, through the real CLI, broker and worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from db.models import Submission
from db.session import session_scope
from tests import factories
from tests.conftest import DigitsData
from tests.servers import wait_for
from tests.test_end_to_end import ROOT, evalboard, run_json

# What tests.catalog_spec_bump registers, in the processes that load it. Never imported here:
# a registration would change the spec for every other test in this process.
CURRENT = factories.SPEC
BUMPED_VERSION = f"{CURRENT.version}.1"


def reevaluate(*args: str, plugins: str | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if plugins:
        env["EVALBOARD_PLUGINS"] = plugins
    completed = subprocess.run(
        [sys.executable, "-m", "evalboard.cli", "reevaluate", *args, "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr + completed.stdout
    return json.loads(completed.stdout)


def submissions_of(model: Path) -> list[Submission]:
    with session_scope() as session:
        return [
            s
            for s in session.scalars(select(Submission).order_by(Submission.id)).unique()
            if s.model.name == str(model)
        ]


def board(dataset: Path) -> dict[str, dict[str, Any]]:
    completed = evalboard(
        "leaderboard", "--dataset", str(dataset), "--split", "test", "--format", "json"
    )
    return {row["model"]: row for row in json.loads(completed.stdout)}


def test_a_changed_model_is_reevaluated_exactly_once_and_keeps_its_history(
    backend, start_worker, digits: DigitsData, data_root: Path
) -> None:
    root = data_root / f"reevaluation-{backend.name}"
    changed = factories.make_resnet(root / "changed", seed=0)
    steady = factories.make_resnet(root / "steady", seed=1)
    start_worker()
    first = {
        model: run_json("submit", "--model", str(model), "--dataset", str(digits.parquet),
                        "--wait")
        for model in (changed, steady)
    }  # fmt: skip
    assert all(report["state"] == "succeeded" for report in first.values())
    assert reevaluate("--due", "--dry-run")["due"] == []

    # A new spec version makes every model due (a dry run queues nothing).
    bumped = reevaluate("--due", "--dry-run", plugins="tests.catalog_spec_bump")
    assert {entry["model"] for entry in bumped["due"]} == {str(changed), str(steady)}
    for entry in bumped["due"]:
        assert entry["reasons"] == [
            f"spec {CURRENT.name} version {CURRENT.version} → {BUMPED_VERSION}"
        ]
        assert entry["submission_id"] is None
    assert len(submissions_of(changed)) == len(submissions_of(steady)) == 1

    # New weights in one folder: four concurrent checks queue its re-evaluation once.
    factories.make_resnet(root / "changed", seed=2)
    checks = [
        subprocess.Popen(
            [sys.executable, "-m", "evalboard.cli", "reevaluate", "--due", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )  # fmt: skip
        for _ in range(4)
    ]
    outputs = [check.communicate(timeout=300) for check in checks]
    assert all(check.returncode == 0 for check in checks), outputs
    queued = [entry for out, _ in outputs for entry in json.loads(out)["due"]]
    assert {entry["model"] for entry in queued} == {str(changed)}
    assert len({entry["submission_id"] for entry in queued}) == 1
    assert sum(not entry["duplicate"] for entry in queued) == 1
    assert "folder content changed" in queued[0]["reasons"][0]
    rerun_id = queued[0]["submission_id"]
    assert [s.id for s in submissions_of(changed)] == [first[changed]["submission_id"], rerun_id]
    assert len(submissions_of(steady)) == 1  # exactly that model, nothing else

    def finished() -> bool:
        return run_json("status", str(rerun_id))["state"] in ("succeeded", "failed")

    wait_for(finished, 180, "the re-evaluation never finished")
    rerun = run_json("status", str(rerun_id))
    assert rerun["state"] == "succeeded", rerun
    assert rerun["submitter"] == "system"
    assert rerun["trigger"] == "manual"
    assert rerun["supersedes_submission_id"] == first[changed]["submission_id"]
    assert rerun["revision"] != first[changed]["revision"]

    history = json.loads(evalboard("history", "--model", str(changed), "--json").stdout)
    assert [entry["submission_id"] for entry in history] == [
        first[changed]["submission_id"], rerun_id,
    ]  # fmt: skip
    assert history[0]["changed"] is None
    assert history[1]["changed"] == ["model revision"]
    for entry in history:
        assert set(entry) >= {
            "submission_id", "revision", "dataset_fingerprint", "spec_version", "metrics",
            "created_at",
        }  # fmt: skip
    assert history[1]["metrics"] == rerun["metrics"]

    rows = board(digits.parquet)
    assert rows[str(changed)]["submission_id"] == rerun_id
    assert rows[str(changed)]["status"] == "ranked" and rows[str(changed)]["rank"] is not None
    assert rows[str(steady)]["submission_id"] == first[steady]["submission_id"]
    assert reevaluate("--due", "--dry-run")["due"] == []  # nothing left to do


def test_a_changed_dataset_makes_every_model_on_it_stale_until_reevaluated(
    backend, start_worker, data_root: Path
) -> None:
    root = data_root / f"changed-dataset-{backend.name}"
    dataset = factories.write_digits_parquet(root / "digits", limit=40)
    models = [factories.make_resnet(root / f"model-{seed}", seed=seed) for seed in (0, 1)]
    worker = start_worker()
    for model in models:
        report = run_json("submit", "--model", str(model), "--dataset", str(dataset), "--wait")
        assert report["state"] == "succeeded"
    worker.stop()  # the re-evaluations stay queued while the board is looked at
    factories.write_digits_parquet(root / "digits", limit=30)  # the content changes

    checked = reevaluate("--due")
    assert {entry["model"] for entry in checked["due"]} == {str(m) for m in models}
    assert all("dataset content changed" in entry["reasons"][0] for entry in checked["due"])
    rows = board(dataset)
    assert {row["status"] for row in rows.values()} == {"stale"}  # until the re-runs land
    assert all(row["stale_reasons"] == ["dataset changed since"] for row in rows.values())

    ids = [entry["submission_id"] for entry in checked["due"]]
    start_worker("second")
    wait_for(
        lambda: all(run_json("status", str(i))["state"] == "succeeded" for i in ids),
        180, "the re-evaluations never finished",
    )  # fmt: skip
    rows = board(dataset)
    assert {row["status"] for row in rows.values()} == {"ranked"}
    assert {row["n_samples"] for row in rows.values()} == {30}
    history = json.loads(evalboard("history", "--model", str(models[0]), "--json").stdout)
    assert history[-1]["changed"] == ["dataset fingerprint"]
