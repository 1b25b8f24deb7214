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
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from db.models import Submission
from db.session import session_scope
from tests import factories, servers
from tests.test_end_to_end import evalboard

_good_copies = count()
_fresh = count()


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
    # A fresh copy of the good dataset is a new dataset path, so a new submission that really
    # runs (the batch size is no part of a submission's identity: varying it would only return
    # an earlier duplicate). Submitted in-process: the bad input before it went through the CLI.
    from evalboard.submit import EvaluationInput, submit

    copy = service.data / f"good-dataset-copy-{next(_good_copies)}"
    shutil.copytree(service.good_dataset, copy)
    before = _submissions()
    submitted = submit(EvaluationInput(str(service.good_model), str(copy)))
    assert not submitted.duplicate and _submissions() == before + 1  # new, not an earlier one
    state, error, n_samples = _wait_until_finished(submitted.submission_id)
    assert (state, error, n_samples) == ("succeeded", None, 12)


def _wait_until_finished(submission_id: int) -> tuple[str, dict | None, int | None]:
    """The final state of a submission, its error and its number of samples, from the database."""
    from db.submissions import get_submission

    def final() -> tuple[str, dict | None, int | None] | None:
        with session_scope() as session:
            row = get_submission(session, submission_id)
            assert row is not None
            if row.state not in ("succeeded", "failed", "cancelled"):
                return None
            error = None
            if row.failure_category is not None:
                error = {"category": row.failure_category, "message": row.failure_message}
            samples = row.results[0].n_samples if row.results else None
            return row.state, error, samples

    servers.wait_for(lambda: final() is not None, 180, f"submission {submission_id} ends")
    outcome = final()
    assert outcome is not None
    return outcome


# ---- refused or rejected before anything is queued -------------------------------------------


def _model_folder(
    data: Path, name: str, change: Callable[[Path], None],
    build: Callable[[Path], Path] = factories.make_resnet,
) -> Path:  # fmt: skip
    folder = build(data / name)
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


# Every file a data or config file names must lie inside the submitted folder.
def _outside(service: Service) -> Path:
    folder = service.data.parent / "outside"  # beside the allowed folders, never inside one
    folder.mkdir(exist_ok=True)
    (folder / "secret.png").write_bytes(b"not for you")
    return folder


def _once(path: Path, build: Callable[[Path], object]) -> Path:
    if not path.exists():
        build(path)
    return path


def _paths_dataset(service: Service, name: str, paths: Callable[[Path], list[str]]) -> Path:
    return _once(service.data / name, lambda root: factories.write_image_paths_parquet(
        root, paths(root), [0] * len(paths(root))))  # fmt: skip


def _saved(service: Service, name: str, change: Callable[[Path], object]) -> Path:
    def build(root: Path) -> None:
        factories.write_digits_saved(root, limit=4)
        change(root)

    return _once(service.data / name, build)


def _model(
    service: Service, name: str, change: Callable[[Path], object],
    build: Callable[[Path], Path] = factories.make_resnet,
) -> Path:  # fmt: skip
    return _once(
        service.data / name, lambda folder: _model_folder(service.data, name, change, build)
    )


def _sharded(folder: Path, shard: str) -> None:
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    weight_map = {"classifier.1.weight": "model-00001-of-00001.safetensors",
                  "classifier.1.bias": shard}  # fmt: skip
    _write(folder / "model.safetensors.index.json", json.dumps({"weight_map": weight_map}))


def _metadata_imagefolder(service: Service, name: str, file_name: str) -> Path:
    def build(root: Path) -> None:
        factories.write_digits_imagefolder(root, limit=4)
        _write(root / "test" / "metadata.csv", f"file_name,label\n{file_name},1\n")

    return _once(service.data / name, build)


def _text_paths_dataset(service: Service) -> Path:
    import datasets

    def build(root: Path) -> None:
        root.mkdir()
        images, labels = factories.digits_images("test", limit=2)
        rows = {"image": images, "label": labels, "path": ["/etc/hostname", "/etc/passwd"]}
        datasets.Dataset.from_dict(rows).to_parquet(str(root / "test.parquet"))

    return _once(service.data / "text-paths", build)


def _edit(name: str, change: Callable[[Any], object]) -> Callable[[Path], object]:
    return lambda folder: factories.edit_json(folder / name, change)


def _weights_header(header: dict) -> Callable[[Path], object]:
    return lambda folder: factories.write_raw_safetensors(
        folder / "model.safetensors", header, b"\x00" * 4
    )


def _sparse_weights(folder: Path, size: int) -> None:
    header = {"w": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}
    encoded = json.dumps(header).encode()
    prefix = len(encoded).to_bytes(8, "little") + encoded
    factories.sparse_file(folder / "model.safetensors", len(prefix) + size, prefix=prefix)


def _loop(path: Path) -> Path:
    if not path.is_symlink():
        path.symlink_to(path.with_name(path.name + "-back"))
        path.with_name(path.name + "-back").symlink_to(path)
    return path


def _dataset_with_inner_loop(service: Service) -> Path:
    def build(root: Path) -> None:
        shutil.copytree(service.good_dataset, root)
        _loop(root / "a")

    return _once(service.data / "inner-loop", build)


def _sparse_dataset(service: Service) -> Path:
    def build(root: Path) -> None:
        shutil.copytree(service.good_dataset, root)
        factories.sparse_file(root / "huge.bin", 16 * 10**9)

    return _once(service.data / "sparse-dataset", build)


def _good_args(service: Service, **change: str) -> list[str]:
    args = {"--model": str(service.good_model), "--dataset": str(service.good_dataset)}
    args.update({f"--{k.replace('_', '-')}": v for k, v in change.items()})
    return [part for pair in args.items() for part in pair]


NAMED_FILE_CASES: dict[str, tuple[Callable[[Service], list[str]], str, str]] = {
    "parquet image path outside the dataset": (
        lambda s: _good_args(s, dataset=str(_paths_dataset(
            s, "paths-outside", lambda root: [str(_outside(s) / "secret.png")]))),
        "refused", "names an image outside the dataset folder"),
    "parquet image path to a file that does not exist outside": (
        lambda s: _good_args(s, dataset=str(_paths_dataset(
            s, "paths-missing-outside", lambda root: [str(_outside(s) / "no-such.png")]))),
        "refused", "names an image outside the dataset folder"),
    "parquet image path with dot-dot": (
        lambda s: _good_args(s, dataset=str(_paths_dataset(
            s, "paths-dotdot", lambda root: [f"{root}/../../outside/secret.png"]))),
        "refused", "not absolute"),
    "parquet image path relative": (
        lambda s: _good_args(s, dataset=str(_paths_dataset(
            s, "paths-relative", lambda root: ["../outside/secret.png"]))),
        "refused", "not absolute"),
    "parquet image path into the allowed folder beside the dataset": (
        lambda s: _good_args(s, dataset=str(_paths_dataset(
            s, "paths-sibling", lambda root: [str(s.good_dataset / "test.parquet")]))),
        "refused", "names an image outside the dataset folder"),
    "a text column of paths taken as images": (
        lambda s: _good_args(s, dataset=str(_text_paths_dataset(s)), image_column="path"),
        "refused", "column 'path' row 0 names an image outside"),
    "saved dataset naming an arrow file outside": (
        lambda s: _good_args(s, dataset=str(_saved(s, "saved-outside", lambda root:
            factories.edit_json(root / "test" / "state.json", lambda state: state.update(
                _data_files=[{"filename": "../../../outside/x.arrow"}]))))),
        "refused", "not a plain relative name"),
    "saved dataset naming a split outside": (
        lambda s: _good_args(s, dataset=str(_saved(s, "saved-split-outside", lambda root:
            factories.edit_json(root / "dataset_dict.json", lambda d: d.update(
                splits=["../../outside"]))))),
        "refused", "not a plain relative name"),
    "weight index naming a shard outside": (
        lambda s: _good_args(s, model=str(_model(s, "index-outside",
                             lambda f: _sharded(f, "../../outside/model.safetensors")))),
        "refused", "not a plain relative name"),
    "weight index naming a hidden shard": (
        lambda s: _good_args(s, model=str(_model(s, "index-hidden",
                             lambda f: _sharded(f, ".hidden.safetensors")))),
        "refused", "hidden"),
    "imagefolder metadata naming a file outside": (
        lambda s: _good_args(s, dataset=str(_metadata_imagefolder(
            s, "metadata-outside", "../../../outside/secret.png"))),
        "refused", "not a plain relative name"),
    "dataset link into the allowed folder beside it": (
        lambda s: _good_args(s, dataset=str(_once(s.data / "link-sibling", lambda root: (
            shutil.copytree(s.good_dataset, root), (root / "other").symlink_to(s.good_model))))),
        "refused", "points outside the dataset folder"),
}  # fmt: skip

BOUND_CASES: dict[str, tuple[Callable[[Service], list[str]], str, str]] = {
    "processor asking for a million pixels a side": (
        lambda s: _good_args(s, model=str(_model(s, "size-bomb", lambda f: factories.edit_json(
            f / "preprocessor_config.json",
            lambda p: p.update(size={"height": 10**6, "width": 10**6}))))),
        "bad_input", "EVALBOARD_MAX_IMAGE_SIDE"),
    "processor with a huge shortest edge": (
        lambda s: _good_args(s, model=str(_model(s, "edge-bomb", lambda f: factories.edit_json(
            f / "preprocessor_config.json", lambda p: p.update(size={"shortest_edge": 10**7}))))),
        "bad_input", "EVALBOARD_MAX_IMAGE_SIDE"),
    "a billion labels": (
        lambda s: _good_args(s, model=str(_model(s, "label-bomb", lambda f: factories.edit_json(
            f / "config.json", lambda c: c.update(num_labels=10**9))))),
        "bad_input", "EVALBOARD_MAX_LABELS"),
    "weights declared over the limit": (
        lambda s: _good_args(s, model=str(_model(s, "weights-bomb",
                             lambda f: _sparse_weights(f, 8 * 2**30 + 1)))),
        "bad_input", "EVALBOARD_MAX_WEIGHT_BYTES"),
    "a 16 GB sparse file in a dataset": (
        lambda s: _good_args(s, dataset=str(_sparse_dataset(s))),
        "bad_input", "EVALBOARD_MAX_HASH_BYTES"),
}  # fmt: skip

VALUE_CASES: dict[str, tuple[Callable[[Service], list[str]], str, str]] = {
    "model path is a symlink loop": (
        lambda s: _good_args(s, model=str(_loop(s.data / "loop-model"))),
        "bad_input", "symlink loop"),
    "symlink loop inside a dataset": (
        lambda s: _good_args(s, dataset=str(_dataset_with_inner_loop(s))),
        "bad_input", "symlink loop"),
    "config.json not UTF-8": (
        lambda s: _good_args(s, model=str(_model(s, "latin-config", lambda f: (
            f / "config.json").write_bytes('{"model_type": "résnet"}'.encode("latin-1"))))),
        "bad_input", "not UTF-8"),
    "config.json 200,000 levels deep": (
        lambda s: _good_args(s, model=str(_model(s, "deep-config", lambda f: (
            f / "config.json").write_text("[" * 200_000 + "]" * 200_000)))),
        "bad_input", "nested too deeply"),
    "Hub id of 500 characters": (
        lambda s: _good_args(s, model="x" * 500), "bad_input", "not a valid Hub id"),
    "reference of 5,000 characters": (
        lambda s: _good_args(s, dataset="d" * 5000), "bad_input", "longer than 1024"),
    "Hub id with dot-dot": (
        lambda s: _good_args(s, model="some..one/model"), "bad_input", "not a valid Hub id"),
    "Hub id in Cyrillic": (
        lambda s: _good_args(s, model="модель/имя"), "bad_input", "not a valid Hub id"),
    "revision that climbs out of the cache": (
        lambda s: _good_args(s, model="someone/model", revision="../../../etc"),
        "bad_input", "not a branch, tag or commit name"),
    "malformed safetensors header": (
        lambda s: _good_args(s, model=str(_model(s, "bad-header", _weights_header({"w": {
            "dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})))),
        "bad_input", "malformed header"),
    "safetensors header longer than the file": (
        lambda s: _good_args(s, model=str(_model(s, "long-header", lambda f: (
            f / "model.safetensors").write_bytes(b"\xff" * 64)))),
        "bad_input", "model weights model.safetensors"),
    "id2label larger than the head": (
        lambda s: _good_args(s, model=str(_model(s, "big-id2label", _edit("config.json",
            lambda c: c.update(id2label={str(i): f"c{i}" for i in range(1000)}))))),
        "bad_input", "classification head"),
    "id2label with words as keys": (
        lambda s: _good_args(s, model=str(_model(s, "word-id2label", _edit("config.json",
            lambda c: c.update(id2label={"zero": "0", "one": "1"}))))),
        "bad_input", "not a label id"),
    "batch size -1": (lambda s: _good_args(s, batch_size="-1"), "bad_input", "batch size"),
    "batch size 0": (lambda s: _good_args(s, batch_size="0"), "bad_input", "batch size"),
    "batch size a billion": (
        lambda s: _good_args(s, batch_size=str(10**9)), "bad_input", "batch size"),
    "submitter of 300 characters": (
        lambda s: _good_args(s, submitter="s" * 300), "bad_input", "longer than 255"),
    "split of 300 characters": (
        lambda s: _good_args(s, split="s" * 300), "bad_input", "longer than 255"),
    "config of 300 characters": (
        lambda s: _good_args(s, config="c" * 300), "bad_input", "longer than 255"),
    "column of 300 characters": (
        lambda s: _good_args(s, label_column="c" * 300), "bad_input", "longer than 255"),
    "revision of 300 characters": (
        lambda s: _good_args(s, revision="r" * 300), "bad_input", "longer than 255"),
    "webhook of 3,000 characters": (
        lambda s: _good_args(s, webhook="http://localhost/" + "w" * 3000),
        "bad_input", "longer than 2048"),
    # Bytes that are not UTF-8 on the command line arrive as lone surrogates.
    "submitter not UTF-8": (
        lambda s: _good_args(s, submitter="caf\udce9"), "bad_input", "not valid UTF-8"),
    "split not UTF-8": (lambda s: _good_args(s, split="t\udcffst"), "bad_input", "not valid UTF-8"),
    "model path not UTF-8": (
        lambda s: _good_args(s, model=f"{s.data}/m\udcffdel"), "bad_input", "not valid UTF-8"),
    "token not UTF-8": (lambda s: _good_args(s, token="evb_\udcff"), "refused", "token"),
    "token with a NUL-like control character": (
        lambda s: _good_args(s, token="evb_\x1b[31m"), "refused", "token"),
}  # fmt: skip

ALL_PRE_QUEUE_CASES = {**PRE_QUEUE_CASES, **NAMED_FILE_CASES, **BOUND_CASES, **VALUE_CASES}


@pytest.mark.parametrize("case", list(ALL_PRE_QUEUE_CASES))
def test_refused_before_queueing_with_a_named_reason(service: Service, case: str) -> None:
    build, category, fragment = ALL_PRE_QUEUE_CASES[case]
    before = _submissions()
    code, report = _submit(*build(service))
    assert code != 0
    assert report["submission_id"] is None and report["state"] == "failed"
    assert report["error"]["category"] == category, report["error"]
    assert fragment in report["error"]["message"], report["error"]
    assert _submissions() == before  # nothing recorded, nothing queued
    _next_good_submission_succeeds(service)


TRAINING_CASES = {
    "no epochs": (["--epochs", "0"], "epochs"),
    "infinite epochs": (["--epochs", "inf"], "epochs"),
    "epochs not a number": (["--epochs", "nan"], "epochs"),
    "infinite learning rate": (["--learning-rate", "inf"], "learning_rate"),
    "infinite weight decay": (["--weight-decay", "inf"], "weight_decay"),
    "seed 2**32": (["--seed", str(2**32)], "seed"),
    "negative seed": (["--seed", "-1"], "seed"),
    "batch size -1": (["--batch-size", "-1"], "batch_size"),
    "epochs not a number at all": (["--epochs", "many"], "--epochs"),
    "train split of 300 characters": (["--train-split", "t" * 300], "train split"),
    "test split not UTF-8": (["--test-split", "t\udcffst"], "not valid UTF-8"),
}


@pytest.mark.parametrize("case", list(TRAINING_CASES))
def test_invalid_training_parameters_are_refused_before_queueing(
    service: Service, case: str
) -> None:
    extra, fragment = TRAINING_CASES[case]
    before = _submissions()
    completed = evalboard(
        "train", "--model", str(service.good_model), "--dataset", str(service.good_dataset),
        *extra, "--json",
    )  # fmt: skip
    report = json.loads(completed.stdout)
    assert completed.returncode != 0
    assert report["submission_id"] is None
    assert report["error"]["category"] == "bad_input", report["error"]
    assert fragment in report["error"]["message"], report["error"]
    assert "Traceback" not in completed.stderr
    assert _submissions() == before


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
    "bool labels": (
        lambda s: _good_args(s, dataset=str(_labelled(s.data, "bool-labels",
                             [True, False, True, False], "bool"))),
        "bad_input", "holds bool values"),
    "list labels": (
        lambda s: _good_args(s, dataset=str(_labelled(s.data, "list-labels",
                             [[0], [1, 2], [3], []], "list"))),
        "bad_input", "a label is one class per row"),
    "weights that do not fit the config": (
        lambda s: _good_args(s, model=str(_model(s, "wider-config", _edit("config.json",
            lambda c: c.update(hidden_sizes=[16, 64]))))),
        "bad_input", "model weights do not fit its config.json"),
    "a config describing a model over the weight limit": (
        lambda s: _good_args(s, model=str(_model(s, "huge-config", _edit("config.json",
            lambda c: c.update(hidden_sizes=[16, 10**8]))))),
        "bad_input", "EVALBOARD_MAX_WEIGHT_BYTES"),
    "Hub model whose processor asks for a million pixels a side": (
        lambda s: _good_args(s, model=factories.cached_hub_model("size-bomb", _edit(
            "preprocessor_config.json", lambda p: p.update(size={"height": 10**6,
                                                                 "width": 10**6})))),
        "bad_input", "EVALBOARD_MAX_IMAGE_SIDE"),
    "a processor whose images do not fit the model": (
        lambda s: _good_args(s, model=str(_model(s, "vit-wrong-size", _edit(
            "preprocessor_config.json", lambda p: p.update(size={"height": 48, "width": 48})),
            build=factories.make_vit))),
        "bad_input", "cannot take the images its image processor makes"),
    "a processor with a mean that is not a number": (
        lambda s: _good_args(s, model=str(_model(s, "bad-mean", _edit(
            "preprocessor_config.json", lambda p: p.update(image_mean="abc"))))),
        "bad_input", "image processor"),
    "Hub model whose id2label is larger than its head": (
        lambda s: _good_args(s, model=factories.cached_hub_model("big-id2label", _edit(
            "config.json", lambda c: c.update(id2label={str(i): str(i) for i in range(99)})))),
        "bad_input", "classification head"),
}  # fmt: skip


def _labelled(data: Path, name: str, labels: list, kind: str) -> Path:
    import datasets

    feature = datasets.Value("bool") if kind == "bool" else datasets.List(datasets.Value("int64"))
    images, _ = factories.digits_images("test", limit=len(labels))
    return _images_dataset_with(data, name, images, labels, feature)


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


# ---- what was validated is what runs: a change after submit is refused by the worker --------


def _copies(service: Service) -> tuple[Path, Path]:
    n = next(_fresh)
    model = Path(shutil.copytree(service.good_model, service.data / f"swap-model-{n}"))
    return model, Path(shutil.copytree(service.good_dataset, service.data / f"swap-data-{n}"))


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def _weights_linked_outside(service: Service, model: Path) -> None:
    outside = _outside(service) / f"weights-{next(_fresh)}.safetensors"
    shutil.copy(model / "model.safetensors", outside)
    (model / "model.safetensors").unlink()
    (model / "model.safetensors").symlink_to(outside)  # ln -sf /outside/… M/model.safetensors


def _folder_replaced_by_a_link(service: Service, folder: Path) -> None:
    moved = folder.rename(folder.with_name(folder.name + "-moved"))
    folder.symlink_to(moved)


SWAPS: dict[str, tuple[Callable[[Service, Path, Path], object], str]] = {
    "weights swapped for a link outside": (
        lambda s, m, d: _weights_linked_outside(s, m), "points outside the model folder"),
    "weights changed in place": (
        lambda s, m, d: _flip_last_byte(m / "model.safetensors"), "changed since it was submitted"),
    "processor config changed": (
        lambda s, m, d: factories.edit_json(m / "preprocessor_config.json",
                                            lambda p: p.update(size={"height": 10**6,
                                                                     "width": 10**6})),
        "changed since it was submitted"),
    "model folder replaced by a link elsewhere": (
        lambda s, m, d: _folder_replaced_by_a_link(s, m), "changed since it was submitted"),
    "dataset rewritten": (
        lambda s, m, d: factories.write_digits_parquet(d, limit=5),
        "changed since it was submitted"),
    "dataset images now read from outside": (
        lambda s, m, d: factories.write_image_paths_parquet(
            d, [str(_outside(s) / "secret.png")], [0]),
        "changed since it was submitted"),
    "dataset gained a link outside": (
        lambda s, m, d: (d / "extra.parquet").symlink_to(_outside(s) / "secret.png"),
        "points outside the dataset folder"),
}  # fmt: skip


def _run_recorded(request) -> dict:  # noqa: ANN001 - a db.schemas.SubmissionCreate
    """Record and queue a request that ``prepare`` validated, and wait for the worker."""
    from evalboard.settings import get_settings
    from evalboard.submit import record_and_enqueue

    submitted = record_and_enqueue(request, get_settings())
    assert not submitted.duplicate
    state, error, _ = _wait_until_finished(submitted.submission_id)
    return {"state": state, "error": error}


@pytest.mark.parametrize("case", list(SWAPS))
def test_what_changed_after_submit_is_refused_by_the_worker(service: Service, case: str) -> None:
    from evalboard.submit import EvaluationInput, prepare

    change, fragment = SWAPS[case]
    model, dataset = _copies(service)
    request = prepare(EvaluationInput(str(model), str(dataset)))  # validated and hashed
    change(service, model, dataset)  # … then changed before the worker takes it
    report = _run_recorded(request)
    assert report["state"] == "failed", report
    assert report["error"]["category"] == "refused", report["error"]
    assert fragment in report["error"]["message"], report["error"]
    assert "secret" not in report["error"]["message"]
    _next_good_submission_succeeds(service)


def _as_trained(request, folder: Path):  # noqa: ANN202 - db.schemas types, built by prepare
    from evalboard.references import model_hash

    model = request.model.model_copy(
        update={"source": "trained", "name": str(folder), "resolved_revision": model_hash(folder)}
    )
    return request.model_copy(update={"model": model})


def test_a_trained_model_runs_only_from_the_artifacts_folder_and_unchanged(
    service: Service,
) -> None:
    from evalboard.settings import get_settings
    from evalboard.submit import EvaluationInput, prepare

    artifacts = get_settings().artifacts_dir / f"run-{next(_fresh)}" / "model"
    trained = Path(shutil.copytree(service.good_model, artifacts))
    request = prepare(EvaluationInput(str(trained), str(service.good_dataset)))
    report = _run_recorded(_as_trained(request, trained))
    assert report["state"] == "succeeded", report  # unchanged, in the artifacts folder
    model, dataset = _copies(service)
    report = _run_recorded(_as_trained(prepare(EvaluationInput(str(model), str(dataset))), model))
    assert report["error"]["category"] == "refused", report
    assert "not in the artifacts folder" in report["error"]["message"]
    changed = Path(shutil.copytree(service.good_model, artifacts.parent.with_name(
        artifacts.parent.name + "-changed") / "model"))  # fmt: skip
    request = _as_trained(prepare(EvaluationInput(str(changed), str(dataset))), changed)
    _flip_last_byte(changed / "model.safetensors")
    report = _run_recorded(request)
    assert report["error"]["category"] == "refused", report
    assert "changed since it was submitted" in report["error"]["message"]


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
    assert len(ALL_PRE_QUEUE_CASES) + len(WORKER_CASES) + len(TRAINING_CASES) + 2 >= 25


def test_data_the_suite_used_is_untouched(service: Service) -> None:
    # The user's data is only read: the good dataset still evaluates to the same numbers.
    code, report = _submit(
        "--model", str(service.good_model), "--dataset", str(service.good_dataset),
        "--batch-size", "999", "--wait",
    )  # fmt: skip
    assert code == 0 and report["n_samples"] == 12
    assert os.access(service.good_dataset / "test.parquet", os.R_OK)
