"""A local dataset's class names at submit, where they are cheap to read, for label checks.

Only metadata is read: ClassLabel names from a parquet file's or a saved dataset's features, a
parquet string label column's distinct values, an imagefolder's class folder names. The union
over splits is returned (a check on it can only be stricter than one on a single split), or
None where the names are not known before the worker loads the dataset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Files past this are left to the worker: reading their label column is no longer cheap.
MAX_LABEL_ROWS = 5_000_000
_IMAGEFOLDER_METADATA = ("metadata.jsonl", "metadata.csv", "metadata.parquet")


def class_names(path: Path, local_format: str | None, label_column: str) -> list[str] | None:
    """The class names a local dataset declares for ``label_column``, or None if unknown."""
    try:
        if local_format == "parquet":
            return _parquet_names(path, label_column)
        if local_format == "save_to_disk":
            return _saved_names(path, label_column)
        if local_format == "imagefolder" and label_column == "label":
            return _imagefolder_names(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # the worker reads the dataset and names what is wrong
    return None


def _union(groups: list[list[str] | None]) -> list[str] | None:
    if not groups or any(group is None for group in groups):
        return None
    names: dict[str, None] = {}
    for group in groups:
        names.update(dict.fromkeys(group or []))
    return list(names)


def _feature_names(features: Any, label_column: str) -> list[str] | None:
    feature = features.get(label_column) if isinstance(features, dict) else None
    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel":
        names = feature.get("names")
        if isinstance(names, list):
            return [str(name) for name in names]
    return None


def _parquet_names(path: Path, label_column: str) -> list[str] | None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    groups: list[list[str] | None] = []
    for file in files:
        parquet = pq.ParquetFile(file)
        metadata = parquet.schema_arrow.metadata or {}
        if b"huggingface" in metadata:
            info = json.loads(metadata[b"huggingface"])
            names = _feature_names(info.get("info", {}).get("features"), label_column)
            if names is not None:
                groups.append(names)
                continue
        field = parquet.schema_arrow.field(label_column)
        if not pa.types.is_string(field.type) and not pa.types.is_large_string(field.type):
            return None  # integer ids: their names come from the model
        if parquet.metadata.num_rows > MAX_LABEL_ROWS:
            return None
        column = parquet.read(columns=[label_column]).column(0)
        groups.append([str(v) for v in pc.unique(column).to_pylist() if v is not None])
    return _union(groups)


def _saved_names(path: Path, label_column: str) -> list[str] | None:
    infos = sorted(path.glob("dataset_info.json")) or sorted(path.glob("*/dataset_info.json"))
    groups: list[list[str] | None] = []
    for info in infos:
        groups.append(_feature_names(json.loads(info.read_text()).get("features"), label_column))
    return _union(groups)


def _imagefolder_names(path: Path) -> list[str] | None:
    if any(next(path.rglob(name), None) for name in _IMAGEFOLDER_METADATA):
        return None  # labels may come from the metadata
    splits = [child for child in sorted(path.iterdir()) if child.is_dir()]
    groups: list[list[str] | None] = []
    for split in splits:
        classes = [child.name for child in sorted(split.iterdir()) if child.is_dir()]
        if not classes:
            return None  # a flat layout: the folder names are splits or classes
        groups.append(classes)
    return _union(groups)
