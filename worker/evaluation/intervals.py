"""Confidence intervals: Wilson for proportions, a seeded bootstrap for the other metrics.

The bootstrap is ``scipy.stats.bootstrap`` (percentile method) over resampled sample indices,
with vectorized statistics that equal the metric modules on any one resample, so 1,000
resamples cost milliseconds. Everything is computed from stored per-sample predictions and
references, so an interval can be recomputed without running the model again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from evalboard.catalog import Metric, Spec

# (references[b, n], predictions[b, n], n_classes, kwargs) -> values[b]
Statistic = Callable[[np.ndarray, np.ndarray, int, dict[str, Any]], np.ndarray]


def wilson_interval(proportion: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion measured on ``n`` samples."""
    if n == 0:
        return (0.0, 1.0)
    denominator = 1 + z * z / n
    centre = (proportion + z * z / (2 * n)) / denominator
    half = z * math.sqrt(proportion * (1 - proportion) / n + z * z / (4 * n * n)) / denominator
    # Clamped so that rounding never leaves the value outside its own interval (at 0 or 1).
    return (max(0.0, min(proportion, centre - half)), min(1.0, max(proportion, centre + half)))


def _counts(references: np.ndarray, predictions: np.ndarray, n_classes: int) -> tuple[Any, ...]:
    """Per resample and class: true positives, predicted counts, true counts (each [b, C]).

    A prediction outside the classes (-1) counts as a miss only, as in scikit-learn with
    ``labels`` given: it goes to an extra column that is dropped.
    """
    rows, width = references.shape[0], n_classes + 1
    predictions = np.where((predictions >= 0) & (predictions < n_classes), predictions, n_classes)
    offsets = (np.arange(rows) * width)[:, None]
    size = rows * width
    hits = references == predictions
    tp = np.bincount((offsets + references)[hits], minlength=size).reshape(rows, width)
    predicted = np.bincount((offsets + predictions).ravel(), minlength=size).reshape(rows, width)
    actual = np.bincount((offsets + references).ravel(), minlength=size).reshape(rows, width)
    return tp[:, :n_classes], predicted[:, :n_classes], actual[:, :n_classes]


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), 0.0)


def _averaged(kind: str) -> Statistic:
    """Vectorized F1, precision or recall with macro, micro or weighted averaging."""

    def statistic(
        references: np.ndarray, predictions: np.ndarray, n_classes: int, kwargs: dict[str, Any]
    ) -> np.ndarray:
        tp, predicted, actual = _counts(references, predictions, n_classes)
        average = kwargs.get("average", "macro")
        if average == "micro":
            tp, predicted, actual = (x.sum(axis=1, keepdims=True) for x in (tp, predicted, actual))
        precision, recall = _divide(tp, predicted), _divide(tp, actual)
        if kind == "precision":
            per_class = precision
        elif kind == "recall":
            per_class = recall
        else:
            per_class = _divide(2 * tp, predicted + actual)
        if average == "weighted":
            return _divide((per_class * actual).sum(axis=1), actual.sum(axis=1))
        return per_class.mean(axis=1)

    return statistic


def _accuracy(
    references: np.ndarray, predictions: np.ndarray, n_classes: int, kwargs: dict[str, Any]
) -> np.ndarray:
    return (references == predictions).mean(axis=1)


VECTORIZED: dict[str, Statistic] = {
    "accuracy": _accuracy,
    "f1": _averaged("f1"),
    "precision": _averaged("precision"),
    "recall": _averaged("recall"),
}


def bootstrap_interval(
    metric: Metric,
    spec: Spec,
    *,
    references: np.ndarray,
    predictions: np.ndarray,
    n_classes: int,
) -> tuple[float, float] | None:
    """The spec's seeded percentile-bootstrap interval of ``metric``; None for a metric with
    no vectorized statistic or fewer than two samples."""
    from scipy.stats import bootstrap

    statistic = VECTORIZED.get(metric.module)
    n = len(references)
    if statistic is None or n < 2:
        return None
    kwargs = dict(metric.kwargs)

    def resampled(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        indices = np.atleast_2d(indices)
        return statistic(references[indices], predictions[indices], n_classes, kwargs)

    result = bootstrap(
        (np.arange(n),),
        resampled,
        vectorized=True,
        n_resamples=spec.bootstrap_resamples,
        confidence_level=spec.confidence_level,
        method="percentile",
        # Resamples per call: keeps memory near 16 MB whatever the split's size.
        batch=max(1, 2_000_000 // n),
        rng=np.random.default_rng(spec.bootstrap_seed),
    )
    low, high = result.confidence_interval
    return (float(low), float(high))


def interval_of(
    metric: Metric,
    spec: Spec,
    value: float,
    *,
    references: np.ndarray,
    predictions: np.ndarray,
    n_classes: int,
) -> tuple[float | None, float | None]:
    """The interval the catalog names for ``metric``: Wilson, bootstrap, or none."""
    if metric.interval == "wilson":
        return wilson_interval(value, len(references))
    if metric.interval == "bootstrap":
        interval = bootstrap_interval(
            metric, spec, references=references, predictions=predictions, n_classes=n_classes
        )
        if interval is not None:
            return interval
    return (None, None)
