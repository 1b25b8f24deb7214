"""Batch size and memory format per model and device, chosen by a short timed probe.

A few forward passes on random inputs of the model's input shape, for growing batch sizes in
both memory formats; the fastest (images/s) wins. On 2 CPU cores a ResNet-50 runs about twice
as fast at batch 4 in channels-last as at batch 32, and a GPU wants hundreds: the probe finds
such things instead of a fixed default. The choice is kept in ``HOME/cache/probes.json``,
keyed by model revision, device, precision, input shape and torch version.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalboard.errors import is_no_space

if TYPE_CHECKING:
    from worker.evaluation.adapter import ImageClassifier

CPU_BATCHES = (4, 8, 16, 32, 64)
GPU_BATCHES = (32, 64, 128, 256, 512)
# A split smaller than this is done before a probe would pay for itself: a default batch.
PROBE_FROM_IMAGES = 512
SLOWEST_FORWARD_S = 1.5  # larger batches are not tried once one forward takes this long
BUDGET_S = 6.0


@dataclass(frozen=True)
class Choice:
    batch_size: int
    channels_last: bool
    images_per_s: float  # in the probe, on random inputs
    probed: bool  # False: taken from the cache or fixed by the caller


def _key(revision: str, device: str, precision: str, shape: tuple[int, ...]) -> str:
    import torch

    return f"{revision}|{device}|{precision}|{'x'.join(map(str, shape))}|torch {torch.__version__}"


def _time(classifier: ImageClassifier, batch: int, shape: tuple[int, ...]) -> float:
    """Images per second of the forward pass at ``batch`` (after one warm-up pass)."""
    import torch

    pixels = torch.randn((batch, *shape), device=classifier.device)
    classifier.forward(pixels)  # warm-up: kernels chosen, memory allocated
    runs, started = 0, time.perf_counter()
    while runs < 3 and (runs == 0 or time.perf_counter() - started < 0.5):
        classifier.forward(pixels)
        runs += 1
    if classifier.device.type == "cuda":
        torch.cuda.synchronize()
    return batch * runs / (time.perf_counter() - started)


def probe(classifier: ImageClassifier, shape: tuple[int, ...]) -> Choice:
    """Try growing batches in both memory formats; keep the fastest."""
    import torch

    batches = GPU_BATCHES if classifier.device.type == "cuda" else CPU_BATCHES
    best = Choice(batches[0], True, 0.0, True)
    started = time.perf_counter()
    for channels_last in (True, False):
        classifier.set_channels_last(channels_last)
        for batch in batches:
            if time.perf_counter() - started > BUDGET_S:
                break
            try:
                begun = time.perf_counter()
                speed = _time(classifier, batch, shape)
            except torch.OutOfMemoryError:
                if classifier.device.type == "cuda":
                    torch.cuda.empty_cache()
                break
            if speed > best.images_per_s:
                best = Choice(batch, channels_last, round(speed, 1), True)
            if time.perf_counter() - begun > SLOWEST_FORWARD_S * 4:
                break
    classifier.set_channels_last(best.channels_last)
    return best


def choose(
    classifier: ImageClassifier,
    shape: tuple[int, ...],
    *,
    revision: str,
    requested_batch: int | None,
    cache_file: Path | None,
    images: int,
) -> Choice:
    """The batch size and memory format for this model on this device: the caller's batch if
    given, else the cached probe, else a new probe (kept for the next evaluation); a small
    split takes a default batch instead of a probe."""
    if requested_batch:
        classifier.set_channels_last(True)
        return Choice(requested_batch, True, 0.0, False)
    if images < PROBE_FROM_IMAGES:
        classifier.set_channels_last(True)
        default = GPU_BATCHES[1] if classifier.device.type == "cuda" else CPU_BATCHES[2]
        return Choice(default, True, 0.0, False)
    key = _key(revision, str(classifier.device), classifier.precision, shape)
    known = _read(cache_file)
    if key in known:
        cached = known[key]
        classifier.set_channels_last(bool(cached["channels_last"]))
        return Choice(int(cached["batch_size"]), bool(cached["channels_last"]),
                      float(cached["images_per_s"]), False)  # fmt: skip
    choice = probe(classifier, shape)
    if cache_file is not None:
        known[key] = asdict(choice)
        _write(cache_file, known)
    return choice


def _read(cache_file: Path | None) -> dict[str, Any]:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        loaded = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _write(cache_file: Path, known: dict[str, Any]) -> None:
    """Write the whole file atomically (two workers may probe at once: the last one wins); a
    disk too full to keep it only costs the next evaluation a probe."""
    temporary = cache_file.with_suffix(f".{time.monotonic_ns()}.tmp")
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(known, indent=1, sort_keys=True))
        temporary.replace(cache_file)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if not is_no_space(error):
            raise
