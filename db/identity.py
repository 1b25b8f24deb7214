"""What a submission and a result measure, as one stable key (sha256 of canonical JSON).

A result is identified by (task, spec name and version, model and its content revision,
dataset fingerprint, config, split, column mapping); a submission adds its kind, its requested
split and, for a training, its hyperparameters. Equal keys are duplicates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from db.schemas import SubmissionCreate
from evalboard import catalog
from evalboard.errors import BadInputError


def _key(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def board_columns(task: str, column_mapping: Mapping[str, Any] | None) -> dict[str, str]:
    """Role → column as the engine read it: the task's defaults filled in, sorted by role.

    A stored mapping may leave roles out (older rows, ``{}``); the engine filled them with the
    task's defaults, so ``{}`` and ``{"image": "image", "label": "label"}`` are one board.
    """
    given = {str(role): str(column) for role, column in dict(column_mapping or {}).items()}
    if task in catalog.TASKS:
        try:
            given = catalog.task(task).column_mapping(given)
        except BadInputError:
            pass  # a row stored under another catalog: keep what it says
    return dict(sorted(given.items()))


def columns_key(task: str, column_mapping: Mapping[str, Any] | None) -> str:
    """sha256 of a result's full column mapping: the part of a board's identity that tells two
    label columns of one dataset and split apart (fixed size, so it fits the board index)."""
    return _key(board_columns(task, column_mapping))


def describe_columns(task: str, mapping: Mapping[str, str]) -> str:
    """A board's columns as a person names them: the label column, then every other role whose
    column is not the task's default (``fine_label``, ``fine_label (image: img)``)."""
    columns = board_columns(task, mapping)
    defaults = board_columns(task, {})
    others = [
        f"{role}: {column}"
        for role, column in columns.items()
        if role != "label" and defaults.get(role) != column
    ]
    label = columns.get("label")
    if label is None:
        return ", ".join(others) or ", ".join(f"{r}: {c}" for r, c in columns.items())
    return f"{label} ({', '.join(others)})" if others else label


def columns_text(mapping: Mapping[str, str]) -> str:
    """A column mapping as canonical JSON text: hashable, for caches and URLs."""
    return json.dumps(dict(sorted(mapping.items())), separators=(",", ":"), ensure_ascii=False)


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
