"""Registered, versioned evaluation specs: preprocessing and metrics that everyone shares.

A stored result records its spec's name and version; re-evaluation keys on them. Change
anything that can move a number, and bump the version.
"""

from __future__ import annotations

from dataclasses import dataclass

from evalboard.registry import Registry

DEFAULT_SPEC = "image-classification"


@dataclass(frozen=True)
class EvaluationSpec:
    name: str
    version: str
    task: str
    metrics: tuple[str, ...]
    # Preprocessing is the model's own image processor on RGB images; predictions are
    # restricted to the classes the dataset has (labels aligned by name).
    preprocessing: str
    # Split order tried when a submission names none (as evaluate's evaluator does).
    split_preference: tuple[str, ...] = ("test", "validation", "train")
    # Primary metric, shown first and used by default on the leaderboard.
    primary_metric: str = "accuracy"
    # Unreadable or oversized images: "skip" (counted, their rows reported) or "fail".
    on_bad_image: str = "skip"


SPECS: Registry[EvaluationSpec] = Registry("evaluation spec")
SPECS.register(
    DEFAULT_SPEC,
    EvaluationSpec(
        name=DEFAULT_SPEC,
        version="1.0",
        task="image-classification",
        metrics=(
            "accuracy",
            "f1_macro",
            "f1_micro",
            "f1_weighted",
            "precision_macro",
            "recall_macro",
            "top5_accuracy",
        ),
        preprocessing="RGB; AutoImageProcessor of the model; logits restricted to dataset classes",
    ),
)
