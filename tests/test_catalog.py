"""The catalog is the single source of truth; a second task is a registration, not a rewrite;
the light core imports no worker code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalboard import catalog
from tests.test_end_to_end import ROOT, evalboard, run_json

# Front-ends that may load the worker's engine in-process (``evaluate``, ``demo``), or
# start processes (``up``); every other module of the ``evalboard`` package is the core.
FRONT_ENDS = {"cli.py", "cli_parser.py", "commands", "processes.py"}


def core_modules() -> list[Path]:
    package = ROOT / "evalboard"
    return [
        path
        for path in sorted(package.rglob("*.py"))
        if path.relative_to(package).parts[0] not in FRONT_ENDS
    ]


def imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_core_never_imports_worker_code_not_even_lazily() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in imported_names(path) if n.split(".")[0]
                                            in ("worker", "dashboard"))
        for path in core_modules()
    }  # fmt: skip
    assert {path: names for path, names in offenders.items() if names} == {}
    assert len(core_modules()) >= 10  # settings, errors, references, catalog, submit, …


def test_importing_the_core_loads_no_worker_module_and_no_torch() -> None:
    modules = [".".join(path.relative_to(ROOT).with_suffix("").parts) for path in core_modules()]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('worker', 'torch', 'transformers', 'datasets'))\n"
        "print(bad)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_only_the_catalog_declares_spec_versions_and_metric_names() -> None:
    """No module outside the catalog spells a spec version or registers a metric name."""
    spec = catalog.default_spec(catalog.IMAGE_CLASSIFICATION)
    for folder in ("evalboard", "db", "worker", "dashboard"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "catalog.py" or "migrations" in path.parts:
                continue
            text = path.read_text()
            assert f'version="{spec.version}"' not in text, path
            assert f'"{spec.version}"' not in text, path
            for name in spec.metrics:
                assert f'Metric("{name}"' not in text, path


def test_every_spec_names_registered_metrics_and_a_task_with_an_adapter() -> None:
    for spec in catalog.SPECS:
        task = catalog.task(spec.task)
        module, _, attribute = task.adapter.partition(":")
        assert module and attribute
        assert spec.primary_metric in spec.metrics
        for name in spec.metrics:
            assert catalog.metric(name).interval in ("wilson", "bootstrap", "none")


@pytest.fixture()
def toy_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALBOARD_PLUGINS", "tests.toy_task")
    from evalboard.settings import reset_settings_cache

    reset_settings_cache()


def test_a_registered_second_task_runs_through_the_queue_to_the_leaderboard(
    toy_plugin, backend, start_worker, tmp_path: Path, data_root: Path
) -> None:
    from tests import toy_task

    start_worker()
    root = data_root / f"toy-{backend.name}"
    dataset = toy_task.write_dataset(root / "numbers")
    right = toy_task.write_model(root / "right", offset=0)
    wrong = toy_task.write_model(root / "wrong", offset=1)
    reports = {}
    for name, model in (("right", right), ("wrong", wrong)):
        reports[name] = run_json(
            "submit", "--task", toy_task.TASK, "--model", str(model), "--dataset", str(dataset),
            "--wait",
        )  # fmt: skip
        assert reports[name]["state"] == "succeeded", reports[name]
        assert reports[name]["task"] == toy_task.TASK
        assert reports[name]["spec_name"] == toy_task.SPEC.name
        assert reports[name]["provenance"]["columns"] == {"number": "number", "label": "label"}
    assert reports["right"]["metrics"]["accuracy"] == 1.0
    assert reports["wrong"]["metrics"]["accuracy"] == 0.0
    assert reports["right"]["n_samples"] == 40

    board = evalboard(
        "leaderboard", "--task", toy_task.TASK, "--dataset", str(dataset), "--split", "test",
        "--format", "json",
    )  # fmt: skip
    assert board.returncode == 0, board.stderr
    rows = json.loads(board.stdout)
    assert [(row["model"], row["rank"]) for row in rows] == [(str(right), 1), (str(wrong), 2)]
    assert {row["spec_name"] for row in rows} == {toy_task.SPEC.name}
    # The image-classification board of the same dataset knows nothing of these results.
    images = evalboard(
        "leaderboard", "--dataset", str(dataset), "--split", "test", "--format", "json"
    )
    assert json.loads(images.stdout) == []


def test_a_column_the_task_does_not_have_is_refused_before_queueing(
    toy_plugin, evalboard_home: Path, data_root: Path
) -> None:
    from tests import toy_task

    dataset = toy_task.write_dataset(data_root / "toy-refused" / "numbers")
    model = toy_task.write_model(data_root / "toy-refused" / "model", offset=0)
    completed = evalboard(
        "submit", "--task", toy_task.TASK, "--model", str(model), "--dataset", str(dataset),
        "--image-column", "number", "--json",
    )  # fmt: skip
    report = json.loads(completed.stdout)
    assert completed.returncode == 2
    assert report["error"]["category"] == "bad_input"
    assert "no column role 'image'" in report["error"]["message"]
    assert "number, label" in report["error"]["message"]
