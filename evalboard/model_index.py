"""The ``model-index`` of a model card (Hugging Face's format for results in the YAML front
matter): built here for the trained models' cards and the dashboard's model page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class IndexedResult:
    task: str
    dataset: str
    config: str
    split: str
    metrics: Mapping[str, float]
    revision: str | None = None  # the dataset's revision or fingerprint


def model_index(name: str, results: Sequence[IndexedResult]) -> list[dict[str, Any]]:
    """One model-index entry with a result per (task, dataset, config, split)."""
    return [
        {
            "name": name,
            "results": [
                {
                    "task": {"type": result.task, "name": result.task.replace("-", " ").title()},
                    "dataset": {
                        "name": result.dataset,
                        "type": result.dataset,
                        "config": result.config,
                        "split": result.split,
                        **({"revision": result.revision} if result.revision else {}),
                    },
                    "metrics": [
                        {"type": metric, "value": float(value), "name": metric}
                        for metric, value in sorted(result.metrics.items())
                    ],
                }
                for result in results
            ],
        }
    ]


def front_matter(name: str, results: Sequence[IndexedResult], **extra: Any) -> str:
    """YAML to paste between the ``---`` lines at the top of a model card."""
    document = {**extra, "model-index": model_index(name, results)}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).rstrip()
