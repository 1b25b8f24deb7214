"""The standardized evaluation: one split, one model, the spec's metrics, full provenance."""

from __future__ import annotations

import math
import multiprocessing
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

from db.schemas import MetricResult
from evalboard.errors import BadInputError, EvalboardError, FailureCategory
from evalboard.references import ResolvedDataset, ResolvedModel
from evalboard.settings import get_settings
from worker.evaluation.labels import align_labels
from worker.evaluation.metrics import METRICS, compute_metric
from worker.evaluation.sources import ROW_ID, BadImage, LoadedSplit, decode_image, load_split
from worker.evaluation.specs import DEFAULT_SPEC, SPECS, EvaluationSpec

# Called with (images done, images in total); raise to stop (e.g. on cancel).
ProgressCallback = Callable[[int, int], None]
PROPORTION_METRICS = {"accuracy", "top5_accuracy"}


@dataclass
class EvaluationRequest:
    model: ResolvedModel
    dataset: ResolvedDataset
    split: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    spec_name: str = DEFAULT_SPEC
    batch_size: int | None = None
    device: str | None = None
    num_workers: int | None = None


@dataclass
class EvaluationOutcome:
    split: str
    n_samples: int
    metrics: list[MetricResult]
    provenance: dict[str, Any]
    references: np.ndarray = field(repr=False)
    predictions: np.ndarray = field(repr=False)

    def metric_values(self) -> dict[str, float]:
        return {m.metric: m.value for m in self.metrics}


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


def quiet_libraries() -> None:
    """No progress bars or advice from the libraries: our own progress goes to the database."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def pick_device(requested: str | None) -> str:
    import torch

    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_batch_size(device: str) -> int:
    # On 2 CPU cores small batches win (cache-resident activations); GPUs want big ones.
    return 64 if device.startswith("cuda") else 16


def default_num_workers(device: str) -> int:
    # Celery's prefork children are daemonic and may not fork DataLoader workers.
    if multiprocessing.current_process().daemon:
        return 0
    cpus = os.cpu_count() or 1
    return min(4, cpus // 2) if device.startswith("cuda") else 0


def run_evaluation(
    request: EvaluationRequest, progress: ProgressCallback | None = None
) -> EvaluationOutcome:
    """Load the split and the model, align labels by name, infer in batches, compute metrics."""
    import torch
    from torch.utils.data import DataLoader

    from worker.evaluation.adapter import ImageClassifier

    quiet_libraries()
    spec = SPECS.get(request.spec_name)
    loaded = load_split(
        request.dataset,
        split=request.split,
        image_column=request.image_column,
        label_column=request.label_column,
        preference=spec.split_preference,
        decode=False,
    )
    device_name = pick_device(request.device)
    device = torch.device(device_name)
    classifier = ImageClassifier.load(
        request.model.load_path,
        request.model.resolved_revision if request.model.source == "hub" else None,
        device,
    )
    columns = align_labels(classifier.labels, loaded.class_names)

    batch_size = request.batch_size or default_batch_size(device_name)
    num_workers = (
        request.num_workers if request.num_workers is not None else default_num_workers(device_name)
    )
    settings = get_settings()
    images = _RGBImages(loaded, settings.max_image_pixels)
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
    scores, references = scores[:kept], references[:kept]
    predictions = scores.argmax(axis=1)

    metrics = compute_spec_metrics(spec, references, predictions, scores)
    provenance = _provenance(
        request, spec, loaded, classifier, columns, device_name, batch_size, inference_seconds
    )
    provenance["n_samples"] = kept
    provenance["bad_images"] = {"count": len(bad_images), "rows": bad_images[:100]}
    return EvaluationOutcome(loaded.split, kept, metrics, provenance, references, predictions)


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


def compute_spec_metrics(
    spec: EvaluationSpec, references: np.ndarray, predictions: np.ndarray, scores: np.ndarray
) -> list[MetricResult]:
    """Every metric of the spec that applies to this many classes, with Wilson 95% intervals."""
    results: list[MetricResult] = []
    n_classes = scores.shape[1]
    for name in spec.metrics:
        metric = METRICS.get(name)
        if n_classes < metric.min_classes:
            continue
        value = compute_metric(
            metric, references=references, predictions=predictions, scores=scores
        )
        low, high = (
            wilson_interval(value, len(references)) if name in PROPORTION_METRICS else (None, None)
        )
        results.append(
            MetricResult(
                metric=name,
                value=value,
                higher_is_better=metric.higher_is_better,
                ci_low=low,
                ci_high=high,
            )
        )
    return results


def wilson_interval(proportion: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion measured on ``n`` samples."""
    if n == 0:
        return (0.0, 1.0)
    denominator = 1 + z * z / n
    centre = (proportion + z * z / (2 * n)) / denominator
    half = z * math.sqrt(proportion * (1 - proportion) / n + z * z / (4 * n * n)) / denominator
    # Clamped so that rounding never leaves the value outside its own interval (at 0 or 1).
    return (max(0.0, min(proportion, centre - half)), min(1.0, max(proportion, centre + half)))


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


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("evalboard", "torch", "transformers", "datasets", "evaluate", "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    versions["python"] = platform.python_version()
    return versions


def _provenance(
    request: EvaluationRequest,
    spec: EvaluationSpec,
    loaded: LoadedSplit,
    classifier: Any,
    columns: np.ndarray,
    device: str,
    batch_size: int,
    inference_seconds: float,
) -> dict[str, Any]:
    n = len(loaded.dataset)
    return {
        "model": request.model.name,
        "model_source": request.model.source,
        "model_revision": request.model.resolved_revision,
        "model_architecture": classifier.architecture,
        "model_parameters": classifier.num_parameters,
        "dataset": request.dataset.name,
        "dataset_config": request.dataset.config,
        "dataset_fingerprint": request.dataset.fingerprint,
        "split": loaded.split,
        "image_column": loaded.image_column,
        "label_column": loaded.label_column,
        "class_names": loaded.class_names,
        "label_columns_in_model": columns.tolist(),
        "excluded_unlabelled": loaded.excluded_unlabelled,
        "spec_name": spec.name,
        "spec_version": spec.version,
        "n_samples": n,
        "device": device,
        "batch_size": batch_size,
        "duration_s": round(inference_seconds, 4),
        "images_per_s": round(n / inference_seconds, 2) if inference_seconds > 0 else None,
        "packages": package_versions(),
    }
