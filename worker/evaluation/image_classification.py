"""The image-classification adapter: load the split and the model, align labels, infer.

Registered in the catalog as the ``image-classification`` task's adapter; the engine calls it
and computes the metrics from the scores it returns.
"""

from __future__ import annotations

import multiprocessing
import os
import time
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
from worker.evaluation.sources import ROW_ID, BadImage, LoadedSplit, decode_image, load_split


class _RGBImages:
    """Map-style dataset of (RGB image or None, label, row id, reason it was unusable)."""

    def __init__(self, loaded: LoadedSplit, max_pixels: int) -> None:
        self.rows = loaded.dataset
        self.image_column = loaded.image_column
        self.label_column = loaded.label_column
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[Any, int, int, str | None]:
        row = self.rows[int(index)]
        label, row_id = int(row[self.label_column]), int(row[ROW_ID])
        try:
            return decode_image(row[self.image_column], self.max_pixels), label, row_id, None
        except BadImage as error:
            return None, label, row_id, str(error)


def default_batch_size(device: str) -> int:
    # On 2 CPU cores small batches win (cache-resident activations); GPUs want big ones.
    return 64 if device.startswith("cuda") else 16


def default_num_workers(device: str) -> int:
    # Celery's prefork children are daemonic and may not fork DataLoader workers.
    if multiprocessing.current_process().daemon:
        return 0
    cpus = os.cpu_count() or 1
    return min(4, cpus // 2) if device.startswith("cuda") else 0


def run_image_classification(
    request: EvaluationRequest, spec: Spec, progress: ProgressCallback | None
) -> Predictions:
    """Scores over the dataset's classes for every readable image of the split."""
    import torch
    from torch.utils.data import DataLoader

    from worker.evaluation.adapter import ImageClassifier

    quiet_libraries()
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

    batch_size = request.batch_size or default_batch_size(device_name)
    num_workers = (
        request.num_workers if request.num_workers is not None else default_num_workers(device_name)
    )
    images = _RGBImages(loaded, get_settings().max_image_pixels)
    loader: DataLoader[Any] = DataLoader(
        images,  # type: ignore[arg-type]
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=device.type == "cuda",
        collate_fn=lambda batch: _collate(classifier, batch),
    )
    total = len(images)
    scores = np.empty((total, len(columns)), dtype=np.float32)
    references = np.empty(total, dtype=np.int64)
    bad_images: list[dict[str, Any]] = []
    done = kept = 0
    started = time.perf_counter()
    for pixel_values, labels, bad in loader:
        bad_images.extend(bad)
        if pixel_values is not None:
            logits = _predict_halving_on_oom(classifier, pixel_values)
            scores[kept : kept + len(labels)] = logits[:, columns]
            references[kept : kept + len(labels)] = labels
            kept += len(labels)
        done += len(labels) + len(bad)
        if progress is not None:
            progress(done, total)
    inference_seconds = time.perf_counter() - started
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
            "batch_size": batch_size,
            "duration_s": round(inference_seconds, 4),
            "images_per_s": round(kept / inference_seconds, 2) if inference_seconds > 0 else None,
            "bad_images": {"count": len(bad_images), "rows": bad_images[:100]},
        },
    )


def _collate(classifier: Any, batch: list[tuple[Any, int, int, str | None]]) -> tuple[Any, ...]:
    """Preprocess the readable images; set the unreadable ones aside with their row ids."""
    good = [(image, label) for image, label, _, reason in batch if reason is None]
    bad = [{"row": row_id, "reason": reason} for _, _, row_id, reason in batch if reason]
    pixel_values = classifier.preprocess([image for image, _ in good]) if good else None
    return pixel_values, np.asarray([label for _, label in good], dtype=np.int64), bad


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
