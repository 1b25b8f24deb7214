"""The standardized evaluation: one split, one model, the spec's metrics, full provenance.

Task-agnostic. The catalog names the spec, its task and the task's adapter; the adapter loads
the data and the model and returns per-sample scores (``Predictions``); the engine computes
the spec's metrics with their intervals and assembles the provenance.
"""

from __future__ import annotations

import importlib
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

import numpy as np

from db.schemas import MetricResult
from evalboard import catalog
from evalboard.catalog import Spec
from evalboard.references import ResolvedDataset, ResolvedModel
from worker.evaluation.intervals import interval_of
from worker.evaluation.metrics import compute_metric

# Called with (samples done, samples in total); raise to stop (e.g. on cancel).
ProgressCallback = Callable[[int, int], None]
TOP_K_STORED = 5


@dataclass
class EvaluationRequest:
    model: ResolvedModel
    dataset: ResolvedDataset
    split: str | None = None
    task: str = catalog.IMAGE_CLASSIFICATION
    spec_name: str | None = None  # None: the task's default spec
    columns: dict[str, str] = field(default_factory=dict)  # role → column; defaults filled in
    batch_size: int | None = None
    device: str | None = None
    num_workers: int | None = None

    @property
    def spec(self) -> Spec:
        return catalog.spec(self.spec_name) if self.spec_name else catalog.default_spec(self.task)

    def column(self, role: str) -> str:
        return catalog.task(self.spec.task).column_mapping(self.columns)[role]


@dataclass
class Predictions:
    """What a task adapter returns: per-sample class scores over the dataset's classes."""

    split: str
    class_names: list[str]
    references: np.ndarray  # int64 [n]: class ids in the dataset's order
    scores: np.ndarray  # float32 [n, classes]
    provenance: dict[str, Any]  # the adapter's own: device, precision, batch size, speed, …


class TaskAdapter(Protocol):
    def __call__(
        self, request: EvaluationRequest, spec: Spec, progress: ProgressCallback | None
    ) -> Predictions: ...


@dataclass
class EvaluationOutcome:
    split: str
    n_samples: int
    metrics: list[MetricResult]
    provenance: dict[str, Any]
    references: np.ndarray = field(repr=False)
    predictions: np.ndarray = field(repr=False)
    top_k: np.ndarray = field(repr=False)  # the highest-scored classes per sample, best first
    class_names: list[str] = field(default_factory=list)

    def metric_values(self) -> dict[str, float]:
        return {m.metric: m.value for m in self.metrics}


def load_adapter(task: catalog.Task) -> TaskAdapter:
    """The worker function a task names in the catalog (``"module:attribute"``)."""
    module_name, _, attribute = task.adapter.partition(":")
    adapter: TaskAdapter = getattr(importlib.import_module(module_name), attribute)
    return adapter


def run_evaluation(
    request: EvaluationRequest, progress: ProgressCallback | None = None
) -> EvaluationOutcome:
    """Run the request's spec: the task's adapter predicts, then metrics and intervals."""
    spec = request.spec
    adapter = load_adapter(catalog.task(spec.task))
    predictions = adapter(request, spec, progress)
    references, scores = predictions.references, predictions.scores
    top_k = top_k_classes(scores, TOP_K_STORED)
    predicted = top_k[:, 0]
    metrics = compute_spec_metrics(spec, references, predicted, scores)
    provenance = {
        "task": spec.task,
        "model": request.model.name,
        "model_source": request.model.source,
        "model_revision": request.model.resolved_revision,
        "dataset": request.dataset.name,
        "dataset_config": request.dataset.config,
        "dataset_fingerprint": request.dataset.fingerprint,
        "split": predictions.split,
        "columns": catalog.task(spec.task).column_mapping(request.columns),
        "class_names": predictions.class_names,
        "spec_name": spec.name,
        "spec_version": spec.version,
        "preprocessing": spec.preprocessing,
        "n_samples": len(references),
        "packages": package_versions(),
        **predictions.provenance,
    }
    return EvaluationOutcome(
        split=predictions.split,
        n_samples=len(references),
        metrics=metrics,
        provenance=provenance,
        references=references,
        predictions=predicted,
        top_k=top_k,
        class_names=predictions.class_names,
    )


def top_k_classes(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` highest-scored classes per row, best first; ties go to the lower class id, so
    column 0 is ``argmax``."""
    k = min(k, scores.shape[1])
    if k == 0 or len(scores) == 0:
        return np.zeros((len(scores), k), dtype=np.int64)
    candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    # argpartition may leave out a tied class with a lower id: widen to every class tied with
    # the k-th score before sorting by (score descending, class id).
    kth = np.take_along_axis(scores, candidates, axis=1).min(axis=1, keepdims=True)
    if int((scores >= kth).sum(axis=1).max()) > k:
        candidates = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return candidates.astype(np.int64)
    values = np.take_along_axis(scores, candidates, axis=1)
    order = np.lexsort((candidates, -values), axis=1)
    return np.take_along_axis(candidates, order, axis=1).astype(np.int64)


def compute_spec_metrics(
    spec: Spec, references: np.ndarray, predictions: np.ndarray, scores: np.ndarray
) -> list[MetricResult]:
    """Every metric of the spec that applies to this many classes, with its interval."""
    results: list[MetricResult] = []
    n_classes = scores.shape[1]
    for name in spec.metrics:
        metric = catalog.metric(name)
        if n_classes < metric.min_classes:
            continue
        value = compute_metric(
            metric, references=references, predictions=predictions, scores=scores
        )
        low, high = interval_of(
            metric,
            spec,
            value,
            references=references,
            predictions=predictions,
            n_classes=n_classes,
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


def package_versions() -> dict[str, str]:
    versions = {}
    for name in (
        "evalboard", "torch", "torchvision", "transformers", "datasets", "evaluate",
        "scikit-learn", "pillow",
    ):  # fmt: skip
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    return versions
