"""Validating and pinning model and dataset references before anything is queued."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from evalboard.errors import EvalboardError, FailureCategory
from evalboard.references import content_hash, resolve_dataset, resolve_model
from evalboard.settings import Settings
from tests import factories


@pytest.fixture()
def allowed(tmp_path: Path) -> Path:
    folder = tmp_path / "allowed"
    folder.mkdir()
    return folder


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture()
def settings(allowed: Path) -> Settings:
    return Settings(home=allowed / "home", allowed_paths=[allowed])


def failure_of(call: Callable[[], object]) -> EvalboardError:
    with pytest.raises(EvalboardError) as failure:
        call()
    return failure.value


def resolving(kind: str, reference: str, settings: Settings) -> Callable[[], object]:
    if kind == "model":
        return lambda: resolve_model(reference, None, settings)
    return lambda: resolve_dataset(reference, None, None, settings)


def small_dataset(path: Path) -> Path:
    return factories.write_digits_parquet(path, limit=4)


def small_model_or_dataset(kind: str, path: Path) -> Path:
    return factories.make_resnet(path) if kind == "model" else small_dataset(path)


@pytest.mark.parametrize("kind", ["model", "dataset"])
def test_local_path_outside_allowed_folders_is_refused(
    kind: str, outside: Path, settings: Settings
) -> None:
    target = small_model_or_dataset(kind, outside / kind)
    error = failure_of(resolving(kind, str(target), settings))
    assert error.category == FailureCategory.REFUSED
    assert "EVALBOARD_ALLOWED_PATHS" in str(error)


def test_sibling_folder_sharing_the_allowed_prefix_is_refused(
    allowed: Path, settings: Settings
) -> None:
    target = factories.make_resnet(allowed.with_name(allowed.name + "-evil") / "model")
    error = failure_of(resolving("model", str(target), settings))
    assert error.category == FailureCategory.REFUSED


@pytest.mark.parametrize("kind", ["model", "dataset"])
def test_path_with_dotdot_is_refused_even_when_it_lands_inside(
    kind: str, allowed: Path, settings: Settings
) -> None:
    small_model_or_dataset(kind, allowed / kind)
    reference = f"{allowed}/{kind}/../{kind}"
    error = failure_of(resolving(kind, reference, settings))
    assert error.category == FailureCategory.REFUSED
    assert "'..'" in str(error)


@pytest.mark.parametrize("kind", ["model", "dataset"])
def test_symlink_inside_allowed_folder_pointing_outside_is_refused(
    kind: str, allowed: Path, outside: Path, settings: Settings
) -> None:
    target = small_model_or_dataset(kind, outside / kind)
    link = allowed / "link"
    link.symlink_to(target, target_is_directory=True)
    error = failure_of(resolving(kind, str(link), settings))
    assert error.category == FailureCategory.REFUSED


def test_symlink_to_a_folder_inside_resolves_to_its_target(
    allowed: Path, settings: Settings
) -> None:
    target = factories.make_resnet(allowed / "model")
    link = allowed / "link"
    link.symlink_to(target, target_is_directory=True)
    resolved = resolve_model(str(link), None, settings)
    assert resolved.name == str(target.resolve())
    assert (
        resolved.resolved_revision == resolve_model(str(target), None, settings).resolved_revision
    )


def test_model_folder_with_a_file_linked_outside_is_refused(
    allowed: Path, outside: Path, settings: Settings
) -> None:
    model = factories.make_resnet(allowed / "model")
    weights = model / "model.safetensors"
    shutil.move(weights, outside / "model.safetensors")
    weights.symlink_to(outside / "model.safetensors")
    error = failure_of(resolving("model", str(model), settings))
    assert error.category == FailureCategory.REFUSED


def test_model_whose_config_asks_for_custom_code_is_refused(
    allowed: Path, settings: Settings
) -> None:
    model = factories.make_remote_code_model(allowed / "model")
    error = failure_of(resolving("model", str(model), settings))
    assert error.category == FailureCategory.REFUSED
    assert "auto_map" in str(error)


def test_model_with_only_pickle_weights_is_refused(allowed: Path, settings: Settings) -> None:
    model = factories.make_pickle_only_model(allowed / "model")
    error = failure_of(resolving("model", str(model), settings))
    assert error.category == FailureCategory.REFUSED
    assert "safetensors" in str(error)


@pytest.mark.parametrize("kind", ["model", "dataset"])
def test_missing_local_path_is_not_found(kind: str, allowed: Path, settings: Settings) -> None:
    error = failure_of(resolving(kind, str(allowed / "nothing-here"), settings))
    assert error.category == FailureCategory.NOT_FOUND


@pytest.mark.parametrize("kind", ["model", "dataset"])
@pytest.mark.parametrize("reference", ["a/b/c", "bad id!", "-starts-with-dash/x", "x" * 97])
def test_invalid_hub_id_is_bad_input(kind: str, reference: str, settings: Settings) -> None:
    error = failure_of(resolving(kind, reference, settings))
    assert error.category == FailureCategory.BAD_INPUT
    assert repr(reference) in str(error)


@pytest.mark.parametrize("kind", ["model", "dataset"])
def test_valid_hub_id_offline_and_not_cached_is_not_found(
    kind: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    error = failure_of(resolving(kind, "evalboard-tests/never-published", settings))
    assert error.category == FailureCategory.NOT_FOUND
    assert "offline" in str(error)


def test_content_hash_changes_when_one_byte_of_a_file_changes(allowed: Path) -> None:
    model = factories.make_resnet(allowed / "model")
    before = content_hash(model)
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    assert content_hash(model) != before


def test_content_hash_changes_when_a_file_is_renamed(allowed: Path) -> None:
    dataset = small_dataset(allowed / "dataset")
    before = content_hash(dataset)
    (dataset / "test.parquet").rename(dataset / "validation.parquet")
    assert content_hash(dataset) != before


def test_content_hash_does_not_depend_on_the_folder_location(allowed: Path, tmp_path: Path) -> None:
    model = factories.make_resnet(allowed / "model")
    copy = shutil.copytree(model, tmp_path / "elsewhere" / "deeper" / "copy")
    assert content_hash(copy) == content_hash(model)


def test_content_hash_ignores_hidden_caches(allowed: Path) -> None:
    dataset = small_dataset(allowed / "dataset")
    before = content_hash(dataset)
    (dataset / ".cache").mkdir()
    (dataset / ".cache" / "lock").write_text("pid 1")
    (dataset / ".DS_Store").write_bytes(b"\x00\x01")
    assert content_hash(dataset) == before


def test_content_hash_tells_one_file_from_two_files_with_the_same_bytes(allowed: Path) -> None:
    one, two = allowed / "one", allowed / "two"
    one.mkdir()
    two.mkdir()
    (one / "x").write_bytes(b"1\x00y\x002")
    (two / "x").write_bytes(b"1")
    (two / "y").write_bytes(b"2")
    assert content_hash(one) != content_hash(two)


def test_content_hash_of_a_single_hidden_file_follows_its_bytes(allowed: Path) -> None:
    dataset = factories.write_digits_parquet(allowed / "dataset", limit=4) / "test.parquet"
    hidden = dataset.rename(allowed / ".digits.parquet")
    before = content_hash(hidden)
    hidden.write_bytes(hidden.read_bytes() + b"\x00")
    assert content_hash(hidden) != before


DATASET_WRITERS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "imagefolder": (lambda path: factories.write_digits_imagefolder(path, limit=4), "imagefolder"),
    "parquet folder": (small_dataset, "parquet"),
    "parquet file": (lambda path: small_dataset(path) / "test.parquet", "parquet"),
    "save_to_disk": (lambda path: factories.write_digits_saved(path, limit=4), "save_to_disk"),
}


@pytest.mark.parametrize(
    ("write", "expected_format"), DATASET_WRITERS.values(), ids=DATASET_WRITERS.keys()
)
def test_local_dataset_format_is_detected(
    write: Callable[[Path], Path], expected_format: str, allowed: Path, settings: Settings
) -> None:
    path = write(allowed / "dataset")
    resolved = resolve_dataset(str(path), None, None, settings)
    assert resolved.source == "local"
    assert resolved.local_format == expected_format
    assert resolved.fingerprint == content_hash(path)
    assert resolved.config == "default"


def test_dataset_folder_with_a_python_script_is_refused(allowed: Path, settings: Settings) -> None:
    dataset = factories.write_digits_imagefolder(allowed / "dataset", limit=4)
    (dataset / "dataset.py").write_text("import os\nos.system('echo pwned')\n")
    error = failure_of(resolving("dataset", str(dataset), settings))
    assert error.category == FailureCategory.REFUSED


def test_dataset_file_that_is_not_parquet_is_bad_input(allowed: Path, settings: Settings) -> None:
    csv = allowed / "labels.csv"
    csv.write_text("image,label\na.png,1\n")
    error = failure_of(resolving("dataset", str(csv), settings))
    assert error.category == FailureCategory.BAD_INPUT


def test_pickle_weights_load_weights_only_when_the_operator_allows_them(
    evalboard_home: Path, monkeypatch: pytest.MonkeyPatch, data_root: Path, digits
) -> None:
    from evalboard.settings import get_settings, reset_settings_cache
    from worker.evaluation.engine import EvaluationRequest, run_evaluation

    folder = factories.make_pickle_only_model(data_root / "operator-allows-pickle")
    monkeypatch.setenv("EVALBOARD_ALLOW_PICKLE_WEIGHTS", "true")
    reset_settings_cache()
    settings = get_settings()
    model = resolve_model(str(folder), None, settings)
    dataset = resolve_dataset(str(digits.saved), None, None, settings)
    outcome = run_evaluation(EvaluationRequest(model, dataset))
    assert outcome.n_samples == 359
    assert 0.0 <= outcome.metric_values()["accuracy"] <= 1.0
