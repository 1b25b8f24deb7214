"""Stored per-sample predictions: references and top-k classes of an evaluation, compressed.

Enough to recompute every classification metric, its interval, per-class scores and the
confusion matrix without running the model again. The caller owns the transaction.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from db.models import PredictionSet, utcnow


@dataclass(frozen=True)
class StoredPredictions:
    class_names: list[str]
    references: np.ndarray  # int64 [n]
    top_k: np.ndarray  # int64 [n, k], best first

    @property
    def predictions(self) -> np.ndarray:
        return self.top_k[:, 0]


def _pack(array: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(array, dtype="<i4").tobytes(), level=6)


def _unpack(blob: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(zlib.decompress(blob), dtype="<i4").reshape(shape).astype(np.int64)


def store_predictions(
    session: Session,
    submission_id: int,
    *,
    references: np.ndarray,
    top_k: np.ndarray,
    class_names: list[str],
) -> None:
    """Keep an evaluation's references and top-k predicted classes beside its results."""
    session.merge(
        PredictionSet(
            submission_id=submission_id,
            n_samples=int(len(references)),
            k=int(top_k.shape[1]) if top_k.ndim == 2 else 0,
            class_names=list(class_names),
            references=_pack(references),
            top_k=_pack(top_k),
            created_at=utcnow(),
        )
    )


def load_predictions(session: Session, submission_id: int) -> StoredPredictions | None:
    stored = session.get(PredictionSet, submission_id)
    if stored is None:
        return None
    return StoredPredictions(
        class_names=list(stored.class_names),
        references=_unpack(stored.references, (stored.n_samples,)),
        top_k=_unpack(stored.top_k, (stored.n_samples, stored.k)),
    )


def confusion_matrix(stored: StoredPredictions) -> np.ndarray:
    """Counts [true class, predicted class] over the dataset's classes."""
    n = len(stored.class_names)
    codes = stored.references * n + stored.predictions
    return np.bincount(codes, minlength=n * n).reshape(n, n)


def per_class(stored: StoredPredictions) -> list[dict[str, float | int | str]]:
    """Per class: samples, accuracy (recall), precision and F1, from the stored predictions."""
    matrix = confusion_matrix(stored)
    support, predicted, hits = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
    rows: list[dict[str, float | int | str]] = []
    for index, name in enumerate(stored.class_names):
        recall = hits[index] / support[index] if support[index] else 0.0
        precision = hits[index] / predicted[index] if predicted[index] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({
            "class": name, "samples": int(support[index]), "accuracy": float(recall),
            "precision": float(precision), "f1": float(f1),
        })  # fmt: skip
    return rows
