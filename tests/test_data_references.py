"""Files named inside data files stay inside the submitted folder; what a folder declares is
bounded before anything allocates; every bad value is named, never a traceback.

In-process, on real files: ``resolve_model`` / ``resolve_dataset`` as submit calls them, and the
worker's split loader and model check. Hypothesis draws the names and paths of each class; the
same classes go through the real CLI and a real worker in ``tests/test_bad_input.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalboard.errors import EvalboardError, FailureCategory
from evalboard.references import ResolvedDataset, resolve_dataset, resolve_model
from evalboard.settings import Settings
from tests import factories

_fresh = itertools.count()
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``allowed/`` (the allowed folder) and ``outside/`` (a secret file beside it)."""
    root = tmp_path_factory.mktemp("references")
    (root / "allowed").mkdir()
    (root / "outside").mkdir()
    (root / "outside" / "secret.png").write_bytes(b"secret")
    return root


@pytest.fixture(scope="module")
def config(area: Path) -> Settings:
    return Settings(home=area / "allowed" / "home", allowed_paths=[area / "allowed"])


@pytest.fixture(scope="module")
def good_model(area: Path) -> Path:
    return factories.make_resnet(area / "allowed" / "good-model")


def fresh(area: Path, name: str) -> Path:
    return area / "allowed" / f"{name}-{next(_fresh)}"


def failure_of(call: Callable[[], object]) -> EvalboardError:
    with pytest.raises(EvalboardError) as failure:
        call()
    return failure.value


def resolving(kind: str, reference: str, config: Settings) -> Callable[[], object]:
    if kind == "model":
        return lambda: resolve_model(reference, None, config)
    return lambda: resolve_dataset(reference, None, None, config)


def copy_model(source: Path, target: Path) -> Path:
    return Path(shutil.copytree(source, target, symlinks=True))


# ---- point 1: every path a data file names lies inside the submitted folder --------------------

# The pieces a path is written with: folder names, '..', '.', hidden names, links that lead out
# of the dataset (outside, or to its sibling in the allowed folder) or stay inside it.
SEGMENTS = ["img.png", "sub", "..", ".", ".hidden", "link-out", "link-sibling", "link-in", "x"]


@st.composite
def written_paths(draw: st.DrawFn, dataset: Path, area: Path) -> str:
    starts = [str(dataset), str(area / "allowed"), str(area / "outside"), "/etc", "", "~"]
    start = draw(st.sampled_from(starts))
    parts = draw(st.lists(st.sampled_from(SEGMENTS), max_size=4))
    return "/".join([start, *parts]) if start else "/".join(parts)


def _expected_inside(written: str, dataset: Path) -> bool:
    path = Path(written)
    if not path.is_absolute() or ".." in path.parts:
        return False
    if path != dataset and not str(path).startswith(f"{dataset}/"):
        return False
    relative = path.relative_to(dataset).parts
    # The links that lead out are at the top of the folder: only a path through them leaves.
    leaves = relative[:1] in (("link-out",), ("link-sibling",))
    return not leaves and not any(part.startswith(".") for part in relative)


@pytest.fixture(scope="module")
def linked_dataset(area: Path) -> Path:
    """A folder with a subfolder, a link that stays inside, and two that lead out of it."""
    dataset = area / "allowed" / "linked-dataset"
    (dataset / "sub").mkdir(parents=True)
    (dataset / "sub" / "img.png").write_bytes(b"inside")
    (dataset / "link-in").symlink_to(dataset / "sub")
    (dataset / "link-out").symlink_to(area / "outside")
    (area / "allowed" / "sibling").mkdir()
    (dataset / "link-sibling").symlink_to(area / "allowed" / "sibling")
    return dataset


@FUZZ
@given(data=st.data())
def test_an_image_read_from_a_path_must_lie_inside_the_dataset(
    data: st.DataObject, area: Path, linked_dataset: Path
) -> None:
    """The check both submit and the worker make on every image that has no embedded bytes:
    by what is written, then by where links lead."""
    import pyarrow as pa

    from evalboard.dataset_files import check_image_paths

    written = data.draw(written_paths(linked_dataset, area))
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    # Images with bytes are read from their bytes: their path is only a name.
    column = pa.array([{"bytes": b"x", "path": "/etc/passwd"}, {"bytes": None, "path": written}],
                      type=image_type)  # fmt: skip
    call = lambda: check_image_paths(column, [linked_dataset], what="t.parquet")  # noqa: E731
    if _expected_inside(written, linked_dataset):
        call()
        return
    error = failure_of(call)
    assert error.category == FailureCategory.REFUSED, error
    assert str(error).startswith("t.parquet row 1 names an image")
    assert str(area) not in str(error) and "/etc" not in str(error)


@pytest.mark.parametrize(
    "written",
    ["/etc/hostname", "../../outside/secret.png", "{outside}/secret.png", "{allowed}/sibling/x.png",
     "{dataset}/sub/../../outside/secret.png", "{dataset}/.cache/x.png", "relative.png"],
)  # fmt: skip
def test_a_parquet_image_path_outside_the_dataset_is_refused_at_submit(
    written: str, area: Path, config: Settings
) -> None:
    dataset = fresh(area, "image-paths")
    written = written.format(outside=area / "outside", allowed=area / "allowed", dataset=dataset)
    factories.write_image_paths_parquet(dataset, [str(dataset / "sub" / "1.png"), written], [0, 1])
    error = failure_of(lambda: resolve_dataset(str(dataset), None, None, config))
    assert error.category == FailureCategory.REFUSED, error
    assert "test.parquet, column 'image' row 1 names an image" in str(error)
    assert str(area / "outside") not in str(error) and "/etc" not in str(error)


def test_a_parquet_image_path_inside_the_dataset_is_accepted(area: Path, config: Settings) -> None:
    dataset = fresh(area, "image-paths")
    factories.write_image_paths_parquet(dataset, [str(dataset / "a.png"), None], [0, 1])
    assert resolve_dataset(str(dataset), None, None, config).local_format == "parquet"


@pytest.mark.parametrize("kind", ["link-out", "link-sibling"])
def test_a_link_in_a_dataset_may_not_lead_out_of_it_even_into_the_allowed_folder(
    kind: str, area: Path, config: Settings
) -> None:
    dataset = factories.write_digits_parquet(fresh(area, "linked"), limit=4)
    target = area / "outside" if kind == "link-out" else area / "allowed" / "good-model"
    target.mkdir(exist_ok=True)
    (dataset / kind).symlink_to(target)
    error = failure_of(lambda: resolve_dataset(str(dataset), None, None, config))
    assert error.category == FailureCategory.REFUSED
    assert f"link '{kind}' that points outside the dataset folder" in str(error)
    assert str(target) not in str(error)


def test_an_image_read_from_a_path_says_nothing_about_a_file_outside(
    area: Path, config: Settings
) -> None:
    messages = []
    for path in (area / "outside" / "secret.png", area / "outside" / "no-such-file.png"):
        dataset = fresh(area, "probe")
        factories.write_image_paths_parquet(dataset, [str(path)], [0])
        messages.append(
            str(failure_of(lambda d=dataset: resolve_dataset(str(d), None, None, config)))
        )
    assert messages[0] == messages[1]  # an outside file that exists and one that does not
    assert "outside the dataset folder" in messages[0]


NAME_PARTS = ["data-00000-of-00001.arrow", "train", "..", ".hidden", "/etc", "x"]


def _names(draw: st.DrawFn) -> str:
    return "/".join(draw(st.lists(st.sampled_from(NAME_PARTS), min_size=1, max_size=3)))


def _expected_name(name: str, folder: Path) -> str:
    """ok, refused or bad_input: what a name written in a data file should end in."""
    path = Path(name)
    if path.is_absolute() or ".." in path.parts:
        return "refused"
    if any(part.startswith(".") for part in path.parts):
        return "refused"
    return "ok" if (folder / path).exists() else "bad_input"


@FUZZ
@given(name=st.composite(_names)())
def test_a_saved_dataset_names_only_files_inside_it(
    name: str, area: Path, config: Settings
) -> None:
    saved = factories.write_digits_saved(fresh(area, "saved"), limit=4)
    split = saved / "train"
    factories.edit_json(split / "state.json", lambda s: s.update(_data_files=[{"filename": name}]))
    outcome = _outcome(lambda: resolve_dataset(str(saved), None, None, config))
    assert outcome == _expected_name(name, split), (name, outcome)


@FUZZ
@given(name=st.composite(_names)())
def test_a_saved_dataset_dict_names_only_split_folders_inside_it(
    name: str, area: Path, config: Settings
) -> None:
    saved = factories.write_digits_saved(fresh(area, "splits"), limit=4)
    factories.edit_json(saved / "dataset_dict.json", lambda d: d.update(splits=[name]))
    outcome = _outcome(lambda: resolve_dataset(str(saved), None, None, config))
    expected = _expected_name(name, saved)
    if expected == "ok" and name != "train":
        expected = "bad_input"  # not a saved split: no state.json in it
    assert outcome == expected, (name, outcome)


@FUZZ
@given(name=st.composite(_names)())
def test_a_weight_index_names_only_shards_inside_the_model(
    name: str, area: Path, config: Settings, good_model: Path
) -> None:
    model = copy_model(good_model, fresh(area, "sharded"))
    (model / "model.safetensors").rename(model / "shard.safetensors")
    index = {"metadata": {}, "weight_map": {"classifier.1.bias": "shard.safetensors",
                                            "classifier.1.weight": name}}  # fmt: skip
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    outcome = _outcome(lambda: resolve_model(str(model), None, config))
    expected = _expected_name(name, model)
    if expected == "ok":
        expected = "bad_input"  # none of the drawn names is a .safetensors file
    assert outcome == expected, (name, outcome)


def test_a_weight_index_naming_a_shard_outside_is_refused_and_one_inside_loads(
    area: Path, config: Settings, good_model: Path
) -> None:
    model = copy_model(good_model, fresh(area, "sharded"))
    (model / "model.safetensors").rename(model / "model-00001-of-00001.safetensors")
    index = model / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"x": "model-00001-of-00001.safetensors"}}))
    assert resolve_model(str(model), None, config).source == "local"
    shutil.copy(model / "model-00001-of-00001.safetensors", area / "outside" / "w.safetensors")
    index.write_text(json.dumps({"weight_map": {"x": "../../outside/w.safetensors"}}))
    error = failure_of(lambda: resolve_model(str(model), None, config))
    assert error.category == FailureCategory.REFUSED
    assert "not a plain relative name" in str(error)


@FUZZ
@given(name=st.composite(_names)())
def test_an_imagefolder_metadata_names_only_files_inside_it(
    name: str, area: Path, config: Settings
) -> None:
    root = factories.write_digits_imagefolder(fresh(area, "metadata"), limit=4)
    (root / "train" / "metadata.csv").write_text(f"file_name,label\n{name},1\n")
    outcome = _outcome(lambda: resolve_dataset(str(root), None, None, config))
    assert outcome == _expected_name(name, root / "train"), (name, outcome)


def test_a_text_column_taken_as_images_names_files_inside_the_dataset_only(
    evalboard_home: Path, data_root: Path, good_model: Path
) -> None:
    model = copy_model(good_model, data_root / f"text-paths-model-{next(_fresh)}")
    import datasets

    from evalboard.submit import EvaluationInput, prepare

    root = data_root / f"text-paths-{next(_fresh)}"
    root.mkdir()
    images, _ = factories.digits_images("test", limit=2)
    images[0].save(root / "a.png")
    for paths, refused in (([str(root / "a.png")], False), (["/etc/hostname"], True)):
        rows = {"file": paths, "label": [0], "image": [images[1]]}
        datasets.Dataset.from_dict(rows).to_parquet(str(root / "test.parquet"))
        request = EvaluationInput(str(model), str(root), columns={"image": "file"})
        if refused:
            error = failure_of(lambda r=request: prepare(r))
            assert error.category == FailureCategory.REFUSED
            assert "column 'file' row 0 names an image outside the dataset folder" in str(error)
        else:
            assert prepare(request).column_mapping["image"] == "file"


def _outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except EvalboardError as error:
        assert error.category != FailureCategory.INTERNAL, error
        return error.category.value
    return "ok"


# ---- point 1, in the worker: a split whose images lie outside is refused before any is read ----


def test_the_worker_refuses_a_split_naming_images_outside_before_reading_one(
    evalboard_home: Path, area: Path, good_model: Path
) -> None:
    """The outside file is a FIFO: reading it would block forever. Submit is bypassed (the
    dataset is built after it would have been checked), so the worker's own check must hold."""
    from worker.evaluation.engine import EvaluationRequest, run_evaluation

    fifo = area / "outside" / f"fifo-{next(_fresh)}.png"
    os.mkfifo(fifo)
    dataset = fresh(area, "fifo")
    factories.write_image_paths_parquet(dataset, [str(fifo)], [0])
    local = ResolvedDataset("local", str(dataset), "default", None, "unchecked", "parquet")
    model = resolve_model(str(good_model), None, Settings(allowed_paths=[area / "allowed"]))
    started = time.monotonic()
    error = failure_of(lambda: run_evaluation(EvaluationRequest(model, local)))
    assert error.category == FailureCategory.REFUSED
    assert "split 'test', column 'image' row 0 names an image outside" in str(error)
    assert time.monotonic() - started < 60


def test_a_hub_datasets_images_must_lie_in_its_own_cache_folder(evalboard_home: Path) -> None:
    import datasets
    from huggingface_hub import constants

    from worker.evaluation.sources import check_images_stay_inside

    hub = ResolvedDataset("hub", "someone/data", "default", None, "a" * 40)
    inside = Path(constants.HF_HUB_CACHE) / "datasets--someone--data" / "blobs" / "1.png"
    features = datasets.Features({"image": datasets.Image(decode=False)})
    other = Path(constants.HF_HUB_CACHE) / "datasets--other--x" / "1.png"
    for path, refused in ((str(inside), False), ("/etc/hostname", True), (str(other), True)):
        rows = datasets.Dataset.from_dict({"image": [{"bytes": None, "path": path}]}, features)
        if refused:
            error = failure_of(lambda r=rows: check_images_stay_inside(r, "image", hub, "test"))
            assert error.category == FailureCategory.REFUSED
        else:
            check_images_stay_inside(rows, "image", hub, "test")


# ---- point 3: bounds, checked before anything allocates -----------------------------------------

PROCESSOR_BOMBS: dict[str, Callable[[dict], object]] = {
    "size height and width": lambda p: p.update(size={"height": 10**6, "width": 10**6}),
    "shortest edge": lambda p: p.update(size={"shortest_edge": 10**6}),
    "longest edge": lambda p: p.update(size={"shortest_edge": 224, "longest_edge": 10**9}),
    "crop size": lambda p: p.update(crop_size={"height": 224, "width": 10**6}),
    "size as a number": lambda p: p.update(size=10**7),
    "size as a list": lambda p: p.update(size=[224, 10**6]),
    "a zero side": lambda p: p.update(size={"height": 0, "width": 224}),
    "an infinite side": lambda p: p.update(size={"height": float("inf"), "width": 224}),
    "a negative side": lambda p: p.update(crop_size={"height": -5, "width": 224}),
}


@pytest.mark.parametrize("bomb", list(PROCESSOR_BOMBS))
def test_processor_sizes_are_bounded(
    bomb: str, area: Path, config: Settings, good_model: Path
) -> None:
    model = copy_model(good_model, fresh(area, "processor"))
    factories.edit_json(model / "preprocessor_config.json", PROCESSOR_BOMBS[bomb])
    error = failure_of(lambda: resolve_model(str(model), None, config))
    assert error.category == FailureCategory.BAD_INPUT
    assert "EVALBOARD_MAX_IMAGE_SIDE" in str(error) and str(config.max_image_side) in str(error)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c.update(num_labels=10**9),
        lambda c: c.update(id2label={str(i): str(i) for i in range(100_001)}),
    ],
    ids=["num_labels", "id2label"],
)
def test_label_counts_are_bounded(
    change: Callable[[dict], object], area: Path, config: Settings, good_model: Path
) -> None:
    model = copy_model(good_model, fresh(area, "labels"))
    factories.edit_json(model / "config.json", change)
    error = failure_of(lambda: resolve_model(str(model), None, config))
    assert error.category == FailureCategory.BAD_INPUT
    assert "EVALBOARD_MAX_LABELS" in str(error)


def test_declared_weight_bytes_are_bounded_without_reading_them(
    area: Path, config: Settings, good_model: Path
) -> None:
    model = copy_model(good_model, fresh(area, "big-weights"))
    size = config.max_weight_bytes + 4  # under the hash limit, over the weights one
    header = {"w": {"dtype": "F32", "shape": [size // 4], "data_offsets": [0, size]}}
    encoded = json.dumps(header).encode()
    prefix = len(encoded).to_bytes(8, "little") + encoded
    factories.sparse_file(model / "model.safetensors", len(prefix) + size, prefix=prefix)
    started = time.monotonic()
    error = failure_of(lambda: resolve_model(str(model), None, config))
    assert error.category == FailureCategory.BAD_INPUT
    assert "EVALBOARD_MAX_WEIGHT_BYTES" in str(error)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("kind", ["model", "dataset"])
def test_a_16_gb_sparse_file_is_refused_by_its_size_before_hashing(
    kind: str, area: Path, config: Settings, good_model: Path
) -> None:
    if kind == "model":
        folder = copy_model(good_model, fresh(area, "sparse-model"))
        call = lambda: resolve_model(str(folder), None, config)  # noqa: E731
    else:
        folder = factories.write_digits_parquet(fresh(area, "sparse-data"), limit=4)
        call = lambda: resolve_dataset(str(folder), None, None, config)  # noqa: E731
    factories.sparse_file(folder / "huge.bin", 16 * 10**9)
    started = time.monotonic()
    error = failure_of(call)
    assert error.category == FailureCategory.BAD_INPUT
    assert "EVALBOARD_MAX_HASH_BYTES" in str(error)
    assert time.monotonic() - started < 5


def test_the_model_a_config_describes_is_bounded_before_it_is_built(
    area: Path, config: Settings, good_model: Path
) -> None:
    from worker.preload import check_model_build

    model = copy_model(good_model, fresh(area, "huge-config"))
    factories.edit_json(model / "config.json", lambda c: c.update(hidden_sizes=[16, 10**8]))
    started = time.monotonic()
    error = failure_of(lambda: check_model_build(model, config, weights_must_fit=True))
    assert error.category == FailureCategory.BAD_INPUT
    assert "config.json describes" in str(error) and "EVALBOARD_MAX_WEIGHT_BYTES" in str(error)
    assert time.monotonic() - started < 30


def test_the_labels_of_a_dataset_are_bounded(
    evalboard_home: Path, monkeypatch: pytest.MonkeyPatch, data_root: Path
) -> None:
    from evalboard.settings import reset_settings_cache
    from worker.evaluation.sources import load_split

    path = factories.write_digits_parquet(data_root / f"many-labels-{next(_fresh)}", limit=12,
                                          string_labels=True)  # fmt: skip
    monkeypatch.setenv("EVALBOARD_MAX_LABELS", "3")
    reset_settings_cache()
    local = ResolvedDataset("local", str(path), "default", None, "x", "parquet")
    error = failure_of(lambda: load_split(local, split="test"))
    assert error.category == FailureCategory.BAD_INPUT
    assert "EVALBOARD_MAX_LABELS" in str(error)


# ---- point 4: every bad value named ------------------------------------------------------------

SAFETENSORS_DEFECTS: dict[str, Callable[[Path], object]] = {
    "shorter than its length": lambda p: p.write_bytes(b"\x01\x02"),
    "a header longer than safetensors allows": lambda p: p.write_bytes(
        (10**9).to_bytes(8, "little")),
    "a header longer than the file": lambda p: p.write_bytes((500).to_bytes(8, "little") + b"{}"),
    "a header that is not JSON": lambda p: p.write_bytes((4).to_bytes(8, "little") + b"\xff{[x"),
    "a header that is a list": lambda p: factories.write_raw_safetensors(p, [1, 2]),
    "an unknown dtype": lambda p: factories.write_raw_safetensors(
        p, {"w": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, b"\x00" * 4),
    "a negative shape": lambda p: factories.write_raw_safetensors(
        p, {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\x00" * 4),
    "offsets past the end": lambda p: factories.write_raw_safetensors(
        p, {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4000]}}, b"\x00" * 4),
    "a shape the offsets do not hold": lambda p: factories.write_raw_safetensors(
        p, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\x00" * 4),
    "a huge declared shape": lambda p: factories.write_raw_safetensors(
        p, {"w": {"dtype": "F32", "shape": [10**12, 10**12], "data_offsets": [0, 4]}}, b"\x00" * 4),
    "overlapping tensors": lambda p: factories.write_raw_safetensors(
        p, {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\x00" * 4),
    "a gap before the last tensor": lambda p: factories.write_raw_safetensors(
        p, {"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\x00" * 8),
}  # fmt: skip


@pytest.mark.parametrize("defect", list(SAFETENSORS_DEFECTS))
def test_a_malformed_safetensors_header_is_named(
    defect: str, area: Path, config: Settings, good_model: Path
) -> None:
    model = copy_model(good_model, fresh(area, "safetensors"))
    SAFETENSORS_DEFECTS[defect](model / "model.safetensors")
    error = failure_of(lambda: resolve_model(str(model), None, config))
    assert error.category == FailureCategory.BAD_INPUT, error
    assert "model weights model.safetensors" in str(error)


CONFIG_DEFECTS: dict[str, tuple[Callable[[dict], object], str]] = {
    "id2label with a word as a key": (
        lambda c: c.update(id2label={"zero": "a", "1": "b"}), "not a label id"),
    "id2label with a gap": (lambda c: c.update(id2label={"0": "a", "5": "b"}), "0 to 1"),
    "id2label with a list as a name": (lambda c: c.update(id2label={"0": ["a"]}), "not a name"),
    "id2label as a list": (lambda c: c.update(id2label=["a", "b"]), "object of label ids"),
    "id2label larger than the head": (
        lambda c: c.update(id2label={str(i): f"c{i}" for i in range(1000)}),
        "classification head classifier.1.weight has 10 outputs"),
    "num_labels disagreeing with id2label": (lambda c: c.update(num_labels=3), "num_labels is 3"),
    "num_labels as text": (lambda c: c.update(num_labels="ten"), "whole number"),
    "label2id as a list": (lambda c: c.update(label2id=[1]), "label2id"),
}  # fmt: skip


@pytest.mark.parametrize("defect", list(CONFIG_DEFECTS))
def test_a_bad_label_config_is_named(
    defect: str, area: Path, config: Settings, good_model: Path
) -> None:
    change, fragment = CONFIG_DEFECTS[defect]
    model = copy_model(good_model, fresh(area, "labels"))
    factories.edit_json(model / "config.json", change)
    error = failure_of(lambda: resolve_model(str(model), None, config))
    assert error.category == FailureCategory.BAD_INPUT
    assert fragment in str(error)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'{"a": ' * 200_000 + b"1" + b"}" * 200_000, "nested too deeply"),
        (b"[1, 2]", "not a JSON object"),
        (b"\x00" * (33 * 2**20), "larger than"),
    ],
    ids=["non-utf8", "deep list", "deep object", "a list", "oversized"],
)
@pytest.mark.parametrize("name", ["config.json", "preprocessor_config.json"])
def test_a_config_file_that_is_no_config_is_named(
    content: bytes, fragment: str, name: str, area: Path, config: Settings, good_model: Path
) -> None:
    model = copy_model(good_model, fresh(area, "config"))
    (model / name).write_bytes(content)
    error = failure_of(lambda: resolve_model(str(model), None, config))
    assert error.category == FailureCategory.BAD_INPUT
    assert name in str(error) and fragment in str(error)


@pytest.mark.parametrize("kind", ["model", "dataset"])
def test_symlink_loops_are_named(kind: str, area: Path, config: Settings, good_model: Path) -> None:
    loop = fresh(area, "loop")
    loop.symlink_to(loop.with_name(loop.name + "-back"))
    loop.with_name(loop.name + "-back").symlink_to(loop)
    error = failure_of(resolving(kind, str(loop), config))
    assert error.category == FailureCategory.BAD_INPUT and "symlink loop" in str(error)
    folder = copy_model(good_model, fresh(area, "inner-loop"))
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    error = failure_of(resolving(kind, str(folder), config))
    assert error.category == FailureCategory.BAD_INPUT and "symlink loop at '" in str(error)


def test_special_files_in_a_folder_are_named(area: Path, config: Settings) -> None:
    dataset = factories.write_digits_parquet(fresh(area, "fifo-data"), limit=4)
    os.mkfifo(dataset / "train-00001.parquet")
    error = failure_of(lambda: resolve_dataset(str(dataset), None, None, config))
    assert error.category == FailureCategory.BAD_INPUT and "FIFO" in str(error)


@pytest.mark.parametrize(
    "reference",
    ["x" * 5000, "a/" * 600, "модель/имя", "a..b/c", "--x/y", "a/b/", "a\x00b", "\udcff/x",
     "org/" + "n" * 100, "~nobody-here-at-all/x"],
    ids=["5000 chars", "deep", "cyrillic", "dot-dot", "dashes", "trailing slash", "nul",
         "non-utf8", "over 96", "unknown home"],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["model", "dataset"])
def test_an_oddly_formed_reference_is_bad_input(
    kind: str, reference: str, config: Settings
) -> None:
    error = failure_of(resolving(kind, reference, config))
    assert error.category == FailureCategory.BAD_INPUT, error
    assert len(str(error)) < 600


@pytest.mark.parametrize("revision", ["../../../etc", "a b", "x" * 300, "/main", "main.lock"])
def test_an_oddly_formed_revision_is_bad_input(revision: str, config: Settings) -> None:
    error = failure_of(lambda: resolve_model("someone/model", revision, config))
    assert error.category == FailureCategory.BAD_INPUT, error
