"""The metric registry: each metric is a local ``evaluate`` module plus how to call it.

Importing this module is cheap (no torch, no evaluate); modules load on first compute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from evalboard.registry import Registry

MODULES_DIR = Path(__file__).parent / "metric_modules"


@dataclass(frozen=True)
class MetricSpec:
    """A named metric: which module computes it, with what arguments, and its direction."""

    name: str
    module: str
    output_key: str
    higher_is_better: bool
    kwargs: dict[str, Any] = field(default_factory=dict)
    uses_scores: bool = False  # needs per-class scores, not only the argmax
    min_classes: int = 1  # skipped when the dataset has fewer classes
    pass_labels: bool = False  # averaged metrics get the list of class ids


METRICS: Registry[MetricSpec] = Registry("metric")
for _spec in (
    MetricSpec("accuracy", "accuracy", "accuracy", True),
    MetricSpec("f1_macro", "f1", "f1", True, {"average": "macro"}, pass_labels=True),
    MetricSpec("f1_micro", "f1", "f1", True, {"average": "micro"}, pass_labels=True),
    MetricSpec("f1_weighted", "f1", "f1", True, {"average": "weighted"}, pass_labels=True),
    MetricSpec(
        "precision_macro", "precision", "precision", True, {"average": "macro"}, pass_labels=True
    ),
    MetricSpec("recall_macro", "recall", "recall", True, {"average": "macro"}, pass_labels=True),
    MetricSpec(
        "top5_accuracy",
        "top_k_accuracy",
        "top_k_accuracy",
        True,
        {"k": 5},
        uses_scores=True,
        min_classes=5,
    ),
):
    METRICS.register(_spec.name, _spec)


@cache
def _load_module(module: str) -> Any:
    import evaluate

    return evaluate.load(str(MODULES_DIR / module))


def compute_metric(
    spec: MetricSpec, *, references: np.ndarray, predictions: np.ndarray, scores: np.ndarray
) -> float:
    """One metric value over the whole split."""
    kwargs = dict(spec.kwargs)
    if spec.pass_labels:
        kwargs["labels"] = list(range(scores.shape[1]))
    inputs = scores if spec.uses_scores else predictions
    result = _load_module(spec.module).compute(
        predictions=inputs.tolist(), references=references.tolist(), **kwargs
    )
    return float(result[spec.output_key])
