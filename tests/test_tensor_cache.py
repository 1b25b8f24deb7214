"""The preprocessed-tensor cache: identical logits, killed and damaged writers, the size cap."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evalboard.references import resolve_dataset, resolve_model
from evalboard.settings import get_settings, reset_settings_cache
from tests import factories
from tests.conftest import DigitsData, TinyModels
from tests.test_end_to_end import ROOT
from worker.evaluation.engine import EvaluationOutcome, EvaluationRequest, run_evaluation
from worker.evaluation.tensor_cache import TensorCache, cache_key, default_cache


def evaluate(model: Path, dataset: Path) -> EvaluationOutcome:
    settings = get_settings()
    return run_evaluation(
        EvaluationRequest(
            resolve_model(str(model), None, settings),
            resolve_dataset(str(dataset), None, None, settings),
            batch_size=32,
        )
    )


def entries() -> list[Path]:
    root = default_cache().root
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith("tmp-")]


def test_a_second_model_with_the_same_processor_reads_the_cache_and_gets_identical_logits(
    evalboard_home: Path, tiny_models: TinyModels, digits: DigitsData, data_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    first = evaluate(tiny_models.trained_resnet, digits.parquet)
    assert first.provenance["tensor_cache"] == "written"
    again = evaluate(tiny_models.trained_resnet, digits.parquet)
    assert again.provenance["tensor_cache"] == "hit"
    other = evaluate(tiny_models.resnet, digits.parquet)  # another model, the same processor
    assert other.provenance["tensor_cache"] == "hit"
    assert len(entries()) == 1
    np.testing.assert_array_equal(again.top_k, first.top_k)
    np.testing.assert_array_equal(again.references, first.references)
    assert again.metric_values() == first.metric_values()

    # Against no cache at all: the same predictions, bit for bit.
    monkeypatch.setenv("EVALBOARD_CACHE_MAX_GB", "0")
    reset_settings_cache()
    uncached = evaluate(tiny_models.trained_resnet, digits.parquet)
    monkeypatch.delenv("EVALBOARD_CACHE_MAX_GB")
    reset_settings_cache()
    assert uncached.provenance["tensor_cache"] == "off"
    np.testing.assert_array_equal(uncached.top_k, first.top_k)
    assert uncached.metric_values() == first.metric_values()

    # A processor of another size is another entry.
    bigger = factories.make_resnet(data_root / "resnet-48px", image_size=48)
    assert evaluate(bigger, digits.parquet).provenance["tensor_cache"] == "written"
    assert len(entries()) == 2


def test_a_killed_writer_leaves_nothing_that_is_read_and_a_damaged_entry_is_rebuilt(
    evalboard_home: Path, tiny_models: TinyModels, digits: DigitsData
) -> None:
    root = default_cache().root
    key = "k" * 64
    script = (
        "import os, signal, sys, numpy as np\n"
        "from pathlib import Path\n"
        "from worker.evaluation.tensor_cache import TensorCache\n"
        f"cache = TensorCache(Path({str(root)!r}), 1 << 30)\n"
        f"writer = cache.writer({key!r}, 100, (3, 8, 8))\n"
        "writer.add(np.ones((50, 3, 8, 8), np.uint8), np.zeros(50, np.int64))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=60)
    assert completed.returncode == -signal.SIGKILL
    assert [p.name[:4] for p in root.iterdir() if p.is_dir()] == ["tmp-"]  # never published
    assert TensorCache(root, 1 << 30).open(key) is None

    first = evaluate(tiny_models.trained_resnet, digits.parquet)
    (entry,) = entries()
    images = entry / "images.npy"
    data = bytearray(images.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    images.write_bytes(bytes(data))
    rebuilt = evaluate(tiny_models.trained_resnet, digits.parquet)
    assert rebuilt.provenance["tensor_cache"] == "written"  # not trusted: built again
    np.testing.assert_array_equal(rebuilt.top_k, first.top_k)

    (entry,) = entries()
    with (entry / "images.npy").open("r+b") as handle:  # a truncated file
        handle.truncate(1000)
    assert (
        evaluate(tiny_models.trained_resnet, digits.parquet).provenance["tensor_cache"] == "written"
    )
    meta = json.loads((entries()[0] / "meta.json").read_text())
    assert meta["count"] == len(first.references)


def test_the_cache_stays_under_its_cap_evicting_the_least_recently_used(tmp_path: Path) -> None:
    shape = (3, 32, 32)  # 3,072 bytes an image
    cache = TensorCache(tmp_path / "tensors", max_bytes=100 * 3072 * 3 + 50_000)

    def add(name: str, count: int = 100) -> str:
        key = cache_key(name=name)
        writer = cache.writer(key, count, shape)
        assert writer is not None
        writer.add(np.full((count, *shape), len(name), np.uint8), np.arange(count))
        writer.finish({"bad_images": []})
        return key

    first, second, third = add("a"), add("bb"), add("ccc")
    time.sleep(0.05)
    assert cache.open(first) is not None  # used again: now the most recent
    time.sleep(0.05)
    add("dddd")
    kept = {p.name for p in cache.root.iterdir() if p.is_dir()}
    assert second not in kept and {first, third} <= kept
    assert sum(size for _, size, _ in cache.entries()) <= cache.max_bytes
    assert cache.writer(cache_key(name="huge"), 10_000, shape) is None  # cannot fit: not cached
    entry = cache.open(first)
    assert entry is not None and int(entry.images[0, 0, 0, 0]) == 1


def test_two_writers_of_one_entry_publish_it_once(tmp_path: Path) -> None:
    cache = TensorCache(tmp_path / "tensors", max_bytes=1 << 30)
    key = cache_key(name="shared")
    writers = [cache.writer(key, 10, (3, 4, 4)) for _ in range(2)]
    for value, writer in enumerate(writers):
        assert writer is not None
        writer.add(np.full((10, 3, 4, 4), value, np.uint8), np.arange(10))
    for writer in writers:
        assert writer is not None
        writer.finish({"bad_images": []})
    assert [p.name for p in cache.root.iterdir() if p.is_dir()] == [key]
    entry = cache.open(key)
    assert entry is not None and int(entry.images.max()) == 0  # the first one's
