"""Computing the catalog's metrics with their local ``evaluate`` modules.

Names, directions and interval methods live in the catalog (``evalboard.catalog``); this module
only runs the modules, loaded from their local path so nothing is fetched.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from evalboard.catalog import Metric

MODULES_DIR = Path(__file__).parent / "metric_modules"


@cache
def _load_module(module: str) -> Any:
    import evaluate

    # In memory: no Arrow cache file written and read back for every call.
    return evaluate.load(str(MODULES_DIR / module), keep_in_memory=True)


def compute_metric(
    metric: Metric, *, references: np.ndarray, predictions: np.ndarray, scores: np.ndarray
) -> float:
    """One metric value over the whole split."""
    kwargs = dict(metric.kwargs)
    if metric.pass_labels:
        kwargs["labels"] = list(range(scores.shape[1]))
    inputs = scores if metric.uses_scores else predictions
    result = _load_module(metric.module).compute(
        predictions=inputs.tolist(), references=references.tolist(), **kwargs
    )
    return float(result[metric.output_key])
