"""Every bad input gets a named reason, loses nothing, and the next good submission succeeds.

Refusals before queueing go through the real ``evalboard submit --json`` (exit non-zero, the
category and message in ``error``, no submission recorded); failures found by the worker go
through a real Celery worker on the embedded deployment (state ``failed`` with a category).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from db.models import Submission
from db.session import session_scope
from tests import factories, servers
from tests.test_end_to_end import evalboard

_batch_sizes = count(start=3)


@dataclass(frozen=True)
class Service:
    home: Path
    data: Path
    good_model: Path
    good_dataset: Path


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An embedded deployment with one real worker, shared by the whole suite."""
    from tests.conftest import _deactivate, _reconfigure_celery

    root = tmp_path_factory.mktemp("bad-input")
    home, data = root / "home", root / "data"
    data.mkdir()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("EVALBOARD_MAX_IMAGE_PIXELS", "10000")
        from tests.conftest import _activate

        _activate(monkeypatch, home, data)
        from evalboard.settings import get_settings, subprocess_env

        worker = servers.Worker(
            subprocess_env(get_settings()),
            root / "worker.log",
            name="bad",
            queues="eval,train,light",
        )
        try:
            worker.wait_ready()
            yield Service(
                home,
                data,
                factories.make_resnet(data / "good-model"),
                factories.write_digits_parquet(data / "good-dataset", limit=12),
            )
        finally:
            worker.stop()
            _deactivate()
    _reconfigure_celery()


def _submissions() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Submission)) or 0)


def _submit(*args: str) -> tuple[int, dict]:
    completed = evalboard("submit", *args, "--json")
    return completed.returncode, json.loads(completed.stdout)


def _next_good_submission_succeeds(service: Service) -> None:
    # A distinct batch size makes it a new submission, not a duplicate of an earlier one.
    code, report = _submit(
        "--model", str(service.good_model), "--dataset", str(service.good_dataset),
        "--batch-size", str(next(_batch_sizes)), "--wait",
    )  # fmt: skip
    assert (code, report["state"]) == (0, "succeeded"), report


# ---- refused or rejected before anything is queued -------------------------------------------


def _model_folder(data: Path, name: str, change: Callable[[Path], None]) -> Path:
    folder = factories.make_resnet(data / name)
    change(folder)
    return folder


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


PRE_QUEUE_CASES: dict[str, tuple[Callable[[Service], list[str]], str, str]] = {
    "empty model": (lambda s: ["--model", " ", "--dataset", str(s.good_dataset)],
                    "bad_input", "model is empty"),
    "empty dataset": (lambda s: ["--model", str(s.good_model), "--dataset", " "],
                      "bad_input", "dataset is empty"),
    "hub id with a space": (lambda s: ["--model", "bad id!", "--dataset", str(s.good_dataset)],
                            "bad_input", "not a valid Hub id"),
    "hub id with three parts": (lambda s: ["--model", "a/b/c", "--dataset", str(s.good_dataset)],
                                "bad_input", "not a valid Hub id"),
    "hub model not cached offline": (
        lambda s: ["--model", "someone/missing-model", "--dataset", str(s.good_dataset)],
        "not_found", "someone/missing-model"),
    "hub dataset not cached offline": (
        lambda s: ["--model", str(s.good_model), "--dataset", "someone/missing-data"],
        "not_found", "someone/missing-data"),
    "model outside allowed folders": (
        lambda s: ["--model", "/etc", "--dataset", str(s.good_dataset)],
        "refused", "outside the allowed folders"),
    "model path with dot-dot": (
        lambda s: ["--model", f"{s.data}/../data/good-model", "--dataset", str(s.good_dataset)],
        "refused", "'..'"),
    "model symlink escaping": (
        lambda s: ["--model", str(_link(s.data / "escape-link", Path("/usr/share"))),
                   "--dataset", str(s.good_dataset)],
        "refused", "outside the allowed folders"),
    "missing model folder": (lambda s: ["--model", str(s.data / "nowhere"), "--dataset",
                                        str(s.good_dataset)], "not_found", "does not exist"),
    "model path is a file": (
        lambda s: ["--model", str(_write(s.data / "model.txt", "x")), "--dataset",
                   str(s.good_dataset)], "bad_input", "not a folder"),
    "model folder without config": (
        lambda s: ["--model", str(_model_folder(s.data, "no-config",
                                                lambda f: (f / "config.json").unlink())),
                   "--dataset", str(s.good_dataset)], "bad_input", "no config.json"),
    "model config not json": (
        lambda s: ["--model", str(_model_folder(s.data, "bad-config",
                                                lambda f: _write(f / "config.json", "{oops"))),
                   "--dataset", str(s.good_dataset)], "bad_input", "not valid JSON"),
    "model needs custom code": (
        lambda s: ["--model", str(factories.make_remote_code_model(s.data / "remote-code")),
                   "--dataset", str(s.good_dataset)], "refused", "custom code"),
    "pickle-only weights": (
        lambda s: ["--model", str(factories.make_pickle_only_model(s.data / "pickle-only")),
                   "--dataset", str(s.good_dataset)], "refused", "pickle"),
    "no weights at all": (
        lambda s: ["--model", str(_model_folder(s.data, "no-weights",
                                                lambda f: (f / "model.safetensors").unlink())),
                   "--dataset", str(s.good_dataset)], "bad_input", "no .safetensors"),
    "dataset outside allowed folders": (
        lambda s: ["--model", str(s.good_model), "--dataset", "/usr/share"],
        "refused", "outside the allowed folders"),
    "dataset script": (
        lambda s: ["--model", str(s.good_model), "--dataset",
                   str(_write(s.data / "scripted" / "loader.py", "import os").parent)],
        "refused", "script"),
    "dataset file not parquet": (
        lambda s: ["--model", str(s.good_model), "--dataset",
                   str(_write(s.data / "labels.csv", "a,b\n1,2\n"))], "bad_input", "not parquet"),
    "missing dataset": (lambda s: ["--model", str(s.good_model), "--dataset",
                                   str(s.data / "no-data")], "not_found", "does not exist"),
    "dataset folder linking outside": (
        lambda s: ["--model", str(s.good_model), "--dataset",
                   str(_dataset_with_outside_link(s.data))], "refused", "points outside"),
    "same image and label column": (
        lambda s: ["--model", str(s.good_model), "--dataset", str(s.good_dataset),
                   "--image-column", "label"], "bad_input", "must be different"),
    "empty image column": (
        lambda s: ["--model", str(s.good_model), "--dataset", str(s.good_dataset),
                   "--image-column", ""], "bad_input", "image column is empty"),
}  # fmt: skip


def _link(link: Path, target: Path) -> Path:
    if not link.is_symlink():
        link.symlink_to(target)
    return link


def _dataset_with_outside_link(data: Path) -> Path:
    folder = data / "linked-dataset"
    if not folder.exists():
        shutil.copytree(data / "good-dataset", folder)
        (folder / "secret.parquet").symlink_to("/etc/hostname")
    return folder


@pytest.mark.parametrize("case", list(PRE_QUEUE_CASES))
def test_refused_before_queueing_with_a_named_reason(service: Service, case: str) -> None:
    build, category, fragment = PRE_QUEUE_CASES[case]
    before = _submissions()
    code, report = _submit(*build(service))
    assert code != 0
    assert report["submission_id"] is None and report["state"] == "failed"
    assert report["error"]["category"] == category, report["error"]
    assert fragment in report["error"]["message"], report["error"]
    assert _submissions() == before  # nothing recorded, nothing queued
    _next_good_submission_succeeds(service)


def test_invalid_training_parameters_are_refused_before_queueing(service: Service) -> None:
    before = _submissions()
    completed = evalboard(
        "train", "--model", str(service.good_model), "--dataset", str(service.good_dataset),
        "--epochs", "0", "--json",
    )  # fmt: skip
    report = json.loads(completed.stdout)
    assert completed.returncode != 0
    assert report["error"]["category"] == "bad_input"
    assert "epochs" in report["error"]["message"]
    assert _submissions() == before
    _next_good_submission_succeeds(service)


# ---- found by the worker: the submission fails with a category, the queue goes on ---------


def _images_dataset(data: Path, name: str, images: list[Image.Image], labels: list) -> Path:
    root = data / name
    if not root.exists():
        factories.write_image_parquet(root, {"test": (images, labels)})
    return root


def _corrupt_imagefolder(data: Path, name: str, n_good: int, n_bad: int) -> Path:
    root = data / name
    if not root.exists():
        images, labels = factories.digits_images("test", limit=n_good)
        factories.write_image_folder(root, {"test": (images, labels)})
        for index in range(n_bad):
            # Spread over two classes: imagefolder only infers labels from two folders up.
            _write(root / "test" / str(3 + index % 2) / f"broken-{index}.png", "not a png at all")
    return root


WORKER_CASES: dict[str, tuple[Callable[[Service], list[str]], str, str]] = {
    "split that does not exist": (
        lambda s: ["--model", str(s.good_model), "--dataset", str(s.good_dataset),
                   "--split", "validation"], "not_found", "split 'validation' does not exist"),
    "image column that does not exist": (
        lambda s: ["--model", str(s.good_model), "--dataset", str(s.good_dataset),
                   "--image-column", "picture"], "bad_input", "image column 'picture'"),
    "label column that does not exist": (
        lambda s: ["--model", str(s.good_model), "--dataset", str(s.good_dataset),
                   "--label-column", "category"], "bad_input", "label column 'category'"),
    "labels the model does not know": (
        lambda s: ["--model", str(factories.make_resnet(s.data / "animals", labels=[
                   "cat", "dog", "bird", "fish", "frog", "deer", "horse", "ship", "truck", "car"])),
                   "--dataset", str(s.good_dataset)], "bad_input", "'0'"),
    "a label column used as images": (
        lambda s: ["--model", str(s.good_model), "--dataset", str(_two_label_columns(s.data)),
                   "--image-column", "other"], "bad_input", "does not hold images"),
    "only unreadable images": (
        lambda s: ["--model", str(s.good_model), "--dataset",
                   str(_corrupt_imagefolder(s.data, "all-corrupt", 0, 3))],
        "bad_input", "no readable image"),
    "only unlabelled rows": (
        lambda s: ["--model", str(s.good_model), "--dataset", str(_unlabelled(s.data))],
        "bad_input", "no labelled rows"),
    "fractional labels": (
        lambda s: ["--model", str(s.good_model), "--dataset", str(_fractional(s.data))],
        "bad_input", "not class ids"),
}  # fmt: skip


def _two_label_columns(data: Path) -> Path:
    import datasets

    root = data / "two-label-columns"
    if not root.exists():
        images, labels = factories.digits_images("test", limit=6)
        root.mkdir()
        datasets.Dataset.from_dict(
            {"image": images, "label": labels, "other": labels},
            features=datasets.Features({"image": datasets.Image(),
                                        "label": datasets.ClassLabel(names=factories.DIGIT_NAMES),
                                        "other": datasets.Value("int64")}),
        ).to_parquet(str(root / "test.parquet"))  # fmt: skip
    return root


def _unlabelled(data: Path) -> Path:
    import datasets

    images, _ = factories.digits_images("test", limit=4)
    return _images_dataset_with(data, "unlabelled", images, [-1] * 4, datasets.Value("int64"))


def _fractional(data: Path) -> Path:
    import datasets

    images, _ = factories.digits_images("test", limit=4)
    return _images_dataset_with(data, "fractional", images, [0.5, 1.5, 2.0, 3.0],
                                datasets.Value("float64"))  # fmt: skip


def _images_dataset_with(data: Path, name: str, images: list, labels: list, feature) -> Path:
    root = data / name
    if not root.exists():
        factories.write_image_parquet(root, {"test": (images, labels)}, label_feature=feature)
    return root


@pytest.mark.parametrize("case", list(WORKER_CASES))
def test_failed_by_the_worker_with_a_named_reason(service: Service, case: str) -> None:
    build, category, fragment = WORKER_CASES[case]
    code, report = _submit(*build(service), "--wait")
    assert code == 1
    assert report["submission_id"] is not None
    assert report["state"] == "failed"
    assert report["error"]["category"] == category, report["error"]
    assert fragment in report["error"]["message"], report["error"]
    _next_good_submission_succeeds(service)


def test_unreadable_and_oversized_images_are_skipped_and_reported(service: Service) -> None:
    root = _corrupt_imagefolder(service.data, "some-corrupt", 10, 2)
    Image.new("L", (200, 200)).save(root / "test" / "5" / "huge.png")  # 40,000 > 10,000 px
    code, report = _submit("--model", str(service.good_model), "--dataset", str(root), "--wait")
    assert (code, report["state"]) == (0, "succeeded"), report
    bad = report["provenance"]["bad_images"]
    assert bad["count"] == 3
    reasons = " ".join(row["reason"] for row in bad["rows"])
    assert "unreadable image" in reasons and "pixel limit" in reasons
    assert all(isinstance(row["row"], int) for row in bad["rows"])
    assert report["n_samples"] == 10
    _next_good_submission_succeeds(service)


def test_a_duplicate_returns_the_existing_submission(service: Service) -> None:
    args = ["--model", str(service.good_model), "--dataset", str(service.good_dataset), "--wait"]
    first_code, first = _submit(*args)
    before = _submissions()
    completed = evalboard("submit", *args, "--json")
    second = json.loads(completed.stdout)
    assert first_code == completed.returncode == 0, (
        first,
        completed.stdout,
        completed.stderr[-500:],
    )
    assert second["submission_id"] == first["submission_id"]
    assert "identical to submission" in completed.stderr
    assert _submissions() == before


def test_the_bad_input_suite_covers_at_least_25_cases() -> None:
    assert len(PRE_QUEUE_CASES) + len(WORKER_CASES) + 2 >= 25


def test_data_the_suite_used_is_untouched(service: Service) -> None:
    # The user's data is only read: the good dataset still evaluates to the same numbers.
    code, report = _submit(
        "--model", str(service.good_model), "--dataset", str(service.good_dataset),
        "--batch-size", "999", "--wait",
    )  # fmt: skip
    assert code == 0 and report["n_samples"] == 12
    assert os.access(service.good_dataset / "test.parquet", os.R_OK)
