"""A throwaway second task, registered as a plugin (``EVALBOARD_PLUGINS=tests.toy_task``).

"parity": a number in, "even" or "odd" out. Its model is a folder with a ``config.json`` and a
``model.safetensors`` holding one tensor, ``offset``: it predicts the parity of number + offset.
Nothing in the service, db, queue or leaderboard code knows this task; registering it is all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from evalboard import catalog

TASK = "toy-parity"
CLASSES = ["even", "odd"]
HOG, KILLED = 666, 999  # model offsets that make the adapter misbehave, for the limits' tests

catalog.register_task(
    catalog.Task(
        name=TASK,
        description="a number in, its parity out",
        columns=(
            catalog.Column("number", "number", "an integer"),
            catalog.Column("label", "label", "'even' or 'odd'"),
        ),
        adapter="tests.toy_task:run_parity",
    ),
    replace=True,
)
SPEC = catalog.register_spec(
    catalog.Spec(
        name="toy-parity",
        version="1",
        task=TASK,
        metrics=("accuracy", "f1_macro"),
        preprocessing="none: integers as they are",
    ),
    replace=True,
)


def run_parity(request: Any, spec: catalog.Spec, progress: Any) -> Any:
    """The adapter: read the split, read the model's offset, predict, return scores."""
    from safetensors.numpy import load_file

    from worker.evaluation.engine import Predictions
    from worker.evaluation.sources import available_splits, choose_split

    splits = available_splits(request.dataset)
    split = choose_split(splits, request.split, spec.split_preference)
    rows = splits[split]
    numbers = np.asarray(rows[request.column("number")], dtype=np.int64)
    references = np.asarray([CLASSES.index(v) for v in rows[request.column("label")]])
    offset = int(load_file(str(Path(request.model.name) / "model.safetensors"))["offset"][0])
    if offset == HOG:  # a job that wants far more memory than a job may have
        hog = np.ones(8 * 1024**3, dtype=np.uint8)
        del hog
    if offset == KILLED:  # a job whose process the kernel kills (as its OOM killer would)
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    predicted = (numbers + offset) % 2
    scores = np.eye(2, dtype=np.float32)[predicted]
    if progress is not None:
        progress(len(numbers), len(numbers))
    return Predictions(
        split=split,
        class_names=CLASSES,
        references=references,
        scores=scores,
        provenance={"device": "cpu", "precision": "fp32", "offset": offset},
    )


def write_model(path: Path, offset: int) -> Path:
    from safetensors.numpy import save_file

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "toy-parity"}))
    save_file({"offset": np.asarray([offset], dtype=np.int64)}, str(path / "model.safetensors"))
    return path


def write_dataset(path: Path, n: int = 40) -> Path:
    import datasets

    path.mkdir(parents=True, exist_ok=True)
    for split, start in (("train", 0), ("test", 1000)):
        numbers = list(range(start, start + n))
        rows = {"number": numbers, "label": [CLASSES[x % 2] for x in numbers]}
        datasets.Dataset.from_dict(rows).to_parquet(str(path / f"{split}.parquet"))
    return path
