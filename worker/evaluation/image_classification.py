"""The image-classification adapter: load the split and the model, align labels, infer.

Registered in the catalog as the ``image-classification`` task's adapter; the engine calls it
and computes the metrics from the scores it returns.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from evalboard.catalog import Spec
from evalboard.errors import BadInputError, EvalboardError, FailureCategory
from evalboard.settings import get_settings
from worker.evaluation.engine import (
    EvaluationRequest,
    Predictions,
    ProgressCallback,
    pick_device,
    quiet_libraries,
)
from worker.evaluation.labels import align_labels
from worker.evaluation.pipeline import Batch, cpu_geometry, decode_jpegs_on_gpu, decoded_batches
from worker.evaluation.preprocess import (
    PREPROCESSING,
    Plan,
    ProcessorGeometry,
    plan_of,
    values,
)
from worker.evaluation.probe import choose
from worker.evaluation.sources import BadImage, LoadedSplit, decode_image, load_split
from worker.evaluation.tensor_cache import Entry, TensorCache, Writer, cache_key, default_cache


def default_threads() -> int:
    """Decoding threads (EVALBOARD_EVAL_NUM_WORKERS unset): every core but one for the model,
    at least one, at most 16."""
    return max(1, min(16, (os.cpu_count() or 2) - 1))


def _gpu_jpegs(device: Any, plan: Plan) -> bool:
    """nvjpeg decoding: on CUDA, where torchvision is installed, for the torch plan."""
    if device.type != "cuda" or plan.geometry != "torch":
        return False
    try:
        import torchvision.io  # noqa: F401
    except ImportError:
        return False
    return True


def run_image_classification(
    request: EvaluationRequest, spec: Spec, progress: ProgressCallback | None
) -> Predictions:
    """Scores over the dataset's classes for every readable image of the split."""
    import torch

    from worker.evaluation.adapter import ImageClassifier

    quiet_libraries()
    settings = get_settings()
    loading_started = time.perf_counter()
    loaded = load_split(
        request.dataset,
        split=request.split,
        image_column=request.column("image"),
        label_column=request.column("label"),
        preference=spec.split_preference,
        decode=False,
    )
    device_name = pick_device(request.device)
    device = torch.device(device_name)
    precision = spec.precision_on(device_name)
    classifier = ImageClassifier.load(
        request.model.load_path,
        request.model.resolved_revision if request.model.source == "hub" else None,
        device,
        precision=precision,
    )
    columns = align_labels(classifier.labels, loaded.class_names)
    try:
        plan = plan_of(classifier.processor)
    except (TypeError, ValueError, AttributeError) as error:
        raise BadInputError(
            f"the model's image processor configuration cannot be used: {error}"
        ) from None
    processor_geometry = (
        ProcessorGeometry(classifier.processor) if plan.geometry != "torch" else None
    )
    stage1 = cpu_geometry(plan, processor_geometry)
    shape = _input_shape(plan, loaded, stage1, settings.max_image_pixels)
    choice = choose(
        classifier, shape, revision=request.model.resolved_revision,
        requested_batch=request.batch_size, cache_file=settings.home / "cache" / "probes.json",
        images=len(loaded.dataset),
    )  # fmt: skip

    cache = default_cache()
    key = cache_key(
        dataset=request.dataset.fingerprint, config=request.dataset.config, split=loaded.split,
        image=loaded.image_column, label=loaded.label_column, classes=loaded.class_names,
        rows=len(loaded.dataset), plan=plan.key(), spec=[spec.name, spec.version],
    )  # fmt: skip
    fixed = plan.fixed_shape if plan.geometry == "torch" else (shape[1:] if shape else None)
    entry = cache.open(key) if fixed else None
    writer = None
    if entry is not None:
        batches: Iterator[Batch] = _cached(entry, choice.batch_size)
    else:
        writer = cache.writer(key, len(loaded.dataset), (3, *fixed)) if fixed else None
        batches = decoded_batches(
            loaded, stage1, batch_size=choice.batch_size,
            threads=max(1, request.num_workers) if request.num_workers is not None
            else default_threads(), max_pixels=settings.max_image_pixels,
            pin=device.type == "cuda", gpu_jpegs=_gpu_jpegs(device, plan),
        )  # fmt: skip

    load_seconds = time.perf_counter() - loading_started
    inference_started = time.perf_counter()
    cache_state = "hit" if entry is not None else ("written" if writer else cache.skipped)
    decode_seconds = None
    if writer is not None and device.type == "cpu":
        # On a CPU the decoders and the model share the same cores, and threads that fight
        # for them slow both (ResNet-50 ran at 0.71× its bound overlapped): every core decodes
        # the split into the cache first, then every core runs the model on the cached tensors.
        batches = decoded_batches(
            loaded, stage1, batch_size=choice.batch_size,
            threads=max(1, request.num_workers or (os.cpu_count() or 1)),
            max_pixels=settings.max_image_pixels,
        )  # fmt: skip
        entry = _decode_into_cache(writer, batches, loaded.class_names, cache, key)
        writer = None
        decode_seconds = time.perf_counter() - inference_started
        if entry is not None:
            batches = _cached(entry, choice.batch_size)
        else:  # dropped (no space) or unreadable (another writer's damaged entry): again
            cache_state = cache.skipped
            batches = decoded_batches(
                loaded, stage1, batch_size=choice.batch_size, threads=default_threads(),
                max_pixels=settings.max_image_pixels,
            )  # fmt: skip
    total = len(loaded.dataset)
    scores = np.empty((total, len(columns)), dtype=np.float32)
    references = np.empty(total, dtype=np.int64)
    bad_images: list[dict[str, Any]] = list(entry.meta["bad_images"]) if entry else []
    done = len(bad_images)
    kept = 0
    timed_images, timed_seconds = 0, 0.0
    try:
        clock = time.perf_counter()
        for number, batch in enumerate(batches):
            if batch.jpegs:
                decode_jpegs_on_gpu(batch, plan, device)
            for positions, stack in batch.stacked or []:
                if writer is not None:
                    writer.add(stack.cpu().numpy(), batch.labels[positions])
                pixels = values(plan, stack.to(device, non_blocking=True))
                logits = _predict_halving_on_oom(classifier, pixels)
                count = len(positions)
                scores[kept : kept + count] = logits[:, columns]
                references[kept : kept + count] = batch.labels[positions]
                kept += count
            bad_images.extend(batch.bad)
            done += batch.size
            now = time.perf_counter()
            if number > 0:  # the first batch warms up: kernels, caches, threads
                timed_images += len(batch.labels)
                timed_seconds += now - clock
            clock = now
            if progress is not None:
                progress(done, total)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    inference_seconds = time.perf_counter() - inference_started
    if writer is not None and not writer.finish(
        {"bad_images": bad_images, "class_names": loaded.class_names}
    ):
        cache_state = cache.skipped
    _check_bad_images(bad_images, kept, spec.on_bad_image)
    return Predictions(
        split=loaded.split,
        class_names=loaded.class_names,
        references=references[:kept],
        scores=scores[:kept],
        provenance={
            "model_architecture": classifier.architecture,
            "model_parameters": classifier.num_parameters,
            "image_column": loaded.image_column,
            "label_column": loaded.label_column,
            "label_columns_in_model": columns.tolist(),
            "excluded_unlabelled": loaded.excluded_unlabelled,
            "device": device_name,
            "precision": precision,
            "preprocessing": plan.geometry if plan.geometry != "torch" else PREPROCESSING,
            "batch_size": choice.batch_size,
            "channels_last": choice.channels_last,
            "batch_probed": choice.probed,
            "tensor_cache": cache_state,
            # What a user waits for: every image over the whole pass, decoding (into the
            # cache, on a first CPU pass) included; the load (split, model, probe) is load_s.
            "images_per_s": round(kept / inference_seconds, 2) if inference_seconds else None,
            # The inference loop alone after its first (warm-up) batch: the model on cached
            # tensors where the pass decoded into the cache first (or read it).
            "model_images_per_s": (
                round(timed_images / timed_seconds, 2) if timed_seconds else None
            ),
            "duration_s": round(timed_seconds, 4),
            "load_s": round(load_seconds, 4),
            "inference_s": round(inference_seconds, 4),
            # Of which decoding into the cache before the model ran (a first pass on a CPU).
            "decode_s": round(decode_seconds, 4) if decode_seconds is not None else None,
            "bad_images": {"count": len(bad_images), "rows": bad_images[:100]},
        },
    )


def _input_shape(
    plan: Plan, loaded: LoadedSplit, stage1: Any, max_pixels: int
) -> tuple[int, int, int]:
    """The model's input shape, (3, H, W): the plan's fixed size, else the first image's."""
    if plan.geometry == "torch" and plan.fixed_shape:
        return (3, *plan.fixed_shape)
    for row in loaded.dataset.select(range(min(16, len(loaded.dataset)))):
        try:
            image = stage1(decode_image(row[loaded.image_column], max_pixels))
        except BadImage:
            continue
        return (3, int(image.shape[1]), int(image.shape[2]))
    return (3, 224, 224)


def _decode_into_cache(
    writer: Writer, batches: Iterator[Batch], class_names: list[str], cache: TensorCache, key: str
) -> Entry | None:
    """Decode every batch into a new cache entry, publish it and open it."""
    bad_images: list[dict[str, Any]] = []
    try:
        for batch in batches:
            for positions, stack in batch.stacked or []:
                writer.add(stack.numpy(), batch.labels[positions])
            bad_images.extend(batch.bad)
    except BaseException:
        writer.abort()
        raise
    writer.finish({"bad_images": bad_images, "class_names": class_names})
    return cache.open(key)


def _cached(entry: Entry, batch_size: int) -> Iterator[Batch]:
    """The cache entry's images in batches (read from the memory map as they are needed)."""
    import torch

    count = len(entry.labels)
    for start in range(0, count, batch_size):
        stack = torch.from_numpy(np.ascontiguousarray(entry.images[start : start + batch_size]))
        labels = entry.labels[start : start + batch_size]
        batch = Batch([], labels)
        batch.stacked = [(list(range(len(labels))), stack)]
        yield batch


def _check_bad_images(bad_images: list[dict[str, Any]], kept: int, policy: str) -> None:
    """Skipped and reported by default; the spec's policy may fail the run instead."""
    if not bad_images:
        return
    rows = ", ".join(str(bad["row"]) for bad in bad_images[:20])
    more = f" and {len(bad_images) - 20} more" if len(bad_images) > 20 else ""
    if kept == 0:
        raise BadInputError(f"no readable image in the split; unreadable rows: {rows}{more}")
    if policy == "fail":
        first = bad_images[0]["reason"]
        raise BadInputError(
            f"{len(bad_images)} unreadable image(s) at rows {rows}{more} (first: {first})"
        )


def _predict_halving_on_oom(classifier: Any, pixel_values: Any) -> np.ndarray:
    """Predict a batch; on out-of-memory, split it in halves and retry (timm's _try_run)."""
    import torch

    try:
        return classifier.predict(pixel_values)
    except torch.OutOfMemoryError:
        if len(pixel_values) <= 1:
            raise EvalboardError(
                "out of memory even at batch size 1", FailureCategory.OUT_OF_MEMORY
            ) from None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(pixel_values) // 2
        return np.concatenate(
            [
                _predict_halving_on_oom(classifier, pixel_values[:half]),
                _predict_halving_on_oom(classifier, pixel_values[half:]),
            ]
        )
    except (RuntimeError, ValueError) as error:
        # The images its own processor makes do not fit the model (an image_size that does
        # not match, a channel count …): the submitted model is at fault, not evalboard.
        shape = "x".join(str(d) for d in pixel_values.shape[1:])
        raise BadInputError(
            f"the model cannot take the images its image processor makes ({shape}): "
            f"{str(error)[:300]}"
        ) from None
