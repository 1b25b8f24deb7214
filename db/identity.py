"""What a submission and a result measure, as one stable key (sha256 of canonical JSON).

A result is identified by (task, spec name and version, model and its content revision,
dataset fingerprint, config, split, column mapping); a submission adds its kind, its requested
split and, for a training, its hyperparameters. Equal keys are duplicates.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from db.schemas import SubmissionCreate


def _key(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def result_identity(
    *,
    task: str,
    spec_name: str,
    spec_version: str,
    model_name: str,
    model_revision: str,
    dataset_source: str,
    dataset_name: str,
    dataset_config: str,
    dataset_fingerprint: str,
    split: str | None,
    column_mapping: dict[str, str],
) -> dict[str, Any]:
    return {
        "task": task,
        "spec": [spec_name, spec_version],
        # The model's name and content revision; where it came from (local, trained) is not
        # part of what was measured.
        "model": [model_name, model_revision],
        "dataset": [dataset_source, dataset_name, dataset_config, dataset_fingerprint],
        "split": split,
        "columns": dict(sorted(column_mapping.items())),
    }


def result_key(**identity: Any) -> str:
    return _key(result_identity(**identity))


def submission_key(request: SubmissionCreate) -> str:
    """The identity of a request: its result identity (with the requested split), its kind,
    and a training's hyperparameters. Evaluation knobs such as the batch size are not part."""
    identity = result_identity(
        task=request.task,
        spec_name=request.spec_name,
        spec_version=request.spec_version,
        model_name=request.model.name,
        model_revision=request.model.resolved_revision,
        dataset_source=request.dataset.source,
        dataset_name=request.dataset.name,
        dataset_config=request.dataset.config,
        dataset_fingerprint=request.dataset.fingerprint,
        split=request.split,
        column_mapping=request.column_mapping,
    )
    identity["kind"] = request.kind
    if request.kind == "train":
        identity["training"] = request.parameters.get("training", {})
    return _key(identity)
