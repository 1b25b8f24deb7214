"""Hub models and datasets from the local Hub cache, offline (``HF_HUB_OFFLINE=1``), through
the real CLI and a real worker: what an operator who fetched them beforehand runs.

The Hub itself cannot exist here; its cache can, laid out exactly as huggingface_hub writes it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests import factories
from tests.conftest import DigitsData, TinyModels
from tests.test_end_to_end import evalboard, run_json


def _report(stdout: str) -> dict[str, Any]:
    report = json.loads(stdout)
    assert isinstance(report, dict)
    return report


def _hub_copy_of(folder: Path, name: str) -> str:
    """The local model ``folder`` published as ``evalboard-tests/<name>`` in the Hub cache."""

    def replace(snapshot: Path) -> None:
        for file in snapshot.iterdir():
            file.unlink()
        for file in folder.iterdir():
            shutil.copy2(file, snapshot / file.name)

    return factories.cached_hub_model(name, replace)


def test_a_hub_dataset_gives_the_numbers_of_the_same_files_submitted_locally(
    backend, start_worker, digits: DigitsData, tiny_models: TinyModels
) -> None:
    start_worker()
    model = _hub_copy_of(tiny_models.trained_resnet, "trained-resnet")
    dataset, commit = factories.cached_hub_dataset("digits")
    hub = run_json("submit", "--model", model, "--dataset", dataset, "--wait")
    local = run_json(
        "submit", "--model", str(tiny_models.trained_resnet), "--dataset", str(digits.parquet),
        "--wait",
    )  # fmt: skip
    for report in (hub, local):
        assert report["state"] == "succeeded", report
    assert hub["split"] == "test" and hub["n_samples"] == local["n_samples"] == 359
    assert hub["metrics"] == local["metrics"] and hub["metrics"]["accuracy"] > 0.9
    assert hub["dataset"] == dataset and hub["provenance"]["dataset_fingerprint"] == commit
    assert len(hub["revision"]) == 40  # the model's commit in the cache, not "main"

    board = json.loads(
        evalboard("leaderboard", "--dataset", dataset, "--split", "test", "--format", "json").stdout
    )
    assert [row["submission_id"] for row in board] == [hub["submission_id"]]
    assert board[0]["display_name"] == model


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_a_hub_datasets_configs_come_from_its_readme_and_its_script_never_runs(
    backend, start_worker, tiny_models: TinyModels, tmp_path: Path
) -> None:
    start_worker()
    model = _hub_copy_of(tiny_models.trained_resnet, "trained-resnet")
    dataset, _ = factories.cached_hub_dataset("digits-configs", {"small": 40, "large": 120})
    small = run_json("submit", "--model", model, "--dataset", dataset, "--config", "small",
                     "--wait")  # fmt: skip
    large = run_json("submit", "--model", model, "--dataset", dataset, "--config", "large",
                     "--wait")  # fmt: skip
    assert (small["state"], small["config"], small["n_samples"]) == ("succeeded", "small", 40)
    assert (large["state"], large["config"], large["n_samples"]) == ("succeeded", "large", 120)

    # A config the README does not declare: the submitter's mistake, named with the real ones.
    missing = run_json("submit", "--model", model, "--dataset", dataset, "--config", "medium",
                       "--wait")  # fmt: skip
    assert missing["state"] == "failed"
    assert missing["error"]["category"] == "bad_input", missing["error"]
    assert "medium" in missing["error"]["message"]
    assert "small" in missing["error"]["message"]

    # A repository that is a loading script (named after it, as the Hub's convention is) is
    # refused like a local one, though it holds data files too; the script never runs.
    ran = tmp_path / "the-script-ran"
    scripted, _ = factories.cached_hub_dataset(
        "scripted", files={"scripted.py": f"open({str(ran)!r}, 'w').close()\n"}
    )
    report = run_json("submit", "--model", model, "--dataset", scripted, "--wait")
    assert report["state"] == "failed"
    assert report["error"]["category"] == "refused", report["error"]
    assert "script" in report["error"]["message"]
    assert not ran.exists()


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_a_hub_commit_missing_from_the_cache_is_refused_before_queueing(
    backend, tiny_models: TinyModels
) -> None:
    model = _hub_copy_of(tiny_models.trained_resnet, "trained-resnet")
    dataset, commit = factories.cached_hub_dataset("digits")
    absent = "0" * 40
    for args, named in (
        (("--dataset", dataset, "--dataset-revision", absent), absent),
        (("--dataset", dataset, "--dataset-revision", "v2"), "v2"),
        (("--dataset", "evalboard-tests/never-fetched"), "never-fetched"),
        (("--dataset", dataset, "--revision", absent), absent),
    ):
        completed = evalboard("submit", "--model", model, *args, "--json")
        assert completed.returncode == 2, completed
        report = _report(completed.stdout)
        assert report["submission_id"] is None
        assert report["error"]["category"] == "not_found", report
        assert named in report["error"]["message"]
        assert "HF_HUB_OFFLINE" in report["error"]["message"]
    # The cached commit, named explicitly, is taken.
    named = evalboard("submit", "--model", model, "--dataset", dataset,
                      "--dataset-revision", commit, "--json")  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert _report(named.stdout)["state"] == "queued"
