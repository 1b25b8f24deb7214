"""The catalog: tasks, evaluation specs and metrics, registered by name.

The single source of truth for what a task reads, which spec version is current, which metrics
exist, their direction and their interval method. The service, db queries, CLI, dashboard and
worker all read it; nothing else declares a version or a metric name. Import-light (no torch):
a task names the worker adapter that runs it as ``"module:attribute"``, imported by workers only.

A second task is a registration, not a rewrite: a module listed in ``EVALBOARD_PLUGINS`` calls
``register_task`` / ``register_metric`` / ``register_spec`` when it is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from evalboard.errors import BadInputError
from evalboard.registry import Registry

IntervalMethod = Literal["wilson", "bootstrap", "none"]
Precision = Literal["fp32", "bf16"]
BadImagePolicy = Literal["skip", "fail"]

IMAGE_CLASSIFICATION = "image-classification"


@dataclass(frozen=True)
class Column:
    """One input a task reads: its role, the column it defaults to, and what it holds."""

    role: str
    default: str
    description: str


@dataclass(frozen=True)
class Task:
    """A kind of evaluation: the columns it reads and the worker adapter that runs it."""

    name: str
    description: str
    columns: tuple[Column, ...]
    # "module:attribute" of a callable (request, spec, progress) -> predictions; workers only.
    adapter: str

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(column.role for column in self.columns)

    def column_mapping(self, given: Mapping[str, str | None] | None = None) -> dict[str, str]:
        """Role → column name: the given names over the defaults; every role, distinct names."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.roles))
        if unknown:
            raise BadInputError(
                f"task {self.name!r} has no column role {', '.join(map(repr, unknown))}; "
                f"its roles are {', '.join(self.roles)}"
            )
        mapping: dict[str, str] = {}
        for column in self.columns:
            value = given.get(column.role)
            name = column.default if value is None else str(value).strip()
            if not name:
                raise BadInputError(f"{column.role} column is empty")
            mapping[column.role] = name
        names = list(mapping.values())
        if len(set(names)) != len(names):
            raise BadInputError(
                f"{' and '.join(mapping)} columns must be different columns (got {names})"
            )
        return mapping


@dataclass(frozen=True)
class Metric:
    """A named metric: direction, interval method, and the local ``evaluate`` module behind it."""

    name: str
    higher_is_better: bool
    interval: IntervalMethod
    description: str
    module: str  # folder under worker/evaluation/metric_modules
    output_key: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    uses_scores: bool = False  # needs per-class scores, not only the argmax
    min_classes: int = 1  # skipped when the dataset has fewer classes
    pass_labels: bool = False  # averaged metrics get the list of class ids

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


@dataclass(frozen=True)
class Spec:
    """A standardized evaluation: versioned; change anything that moves a number, bump it."""

    name: str
    version: str
    task: str
    metrics: tuple[str, ...]
    preprocessing: str
    split_preference: tuple[str, ...] = ("test", "validation", "train")
    primary_metric: str = "accuracy"
    # Numeric precision on a GPU; "fp32" forbids bf16 autocast (CPUs always run fp32).
    gpu_precision: Precision = "fp32"
    on_bad_image: BadImagePolicy = "skip"
    # Interval settings: confidence level and the bootstrap's resamples and seed.
    confidence_level: float = 0.95
    bootstrap_resamples: int = 1000
    bootstrap_seed: int = 0

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def precision_on(self, device: str) -> Precision:
        """The precision this spec runs at on ``device`` ("cpu", "cuda", "cuda:1", …)."""
        return self.gpu_precision if device.startswith("cuda") else "fp32"


TASKS: Registry[Task] = Registry("task")
SPECS: Registry[Spec] = Registry("evaluation spec")
METRICS: Registry[Metric] = Registry("metric")
_DEFAULT_SPECS: dict[str, str] = {}  # task → the spec its submissions use by default
_plugins_loaded: set[str] = set()


def register_task(task: Task, *, replace: bool = False) -> Task:
    return TASKS.register(task.name, task, replace=replace)


def register_metric(metric: Metric, *, replace: bool = False) -> Metric:
    return METRICS.register(metric.name, metric, replace=replace)


def register_spec(spec: Spec, *, default: bool = False, replace: bool = False) -> Spec:
    """Add a spec; its task and metrics must be registered first. ``default`` makes it the
    task's default (the first spec of a task is its default anyway)."""
    if spec.task not in TASKS:
        raise ValueError(f"spec {spec.name!r} names an unregistered task {spec.task!r}")
    for name in (*spec.metrics, spec.primary_metric):
        if name not in METRICS:
            raise ValueError(f"spec {spec.name!r} names an unregistered metric {name!r}")
    if spec.primary_metric not in spec.metrics:
        raise ValueError(f"spec {spec.name!r}: primary metric is not among its metrics")
    SPECS.register(spec.name, spec, replace=replace)
    if default or spec.task not in _DEFAULT_SPECS:
        _DEFAULT_SPECS[spec.task] = spec.name
    return spec


def load_plugins(modules: str | None = None) -> None:
    """Import the catalog plugins named in ``EVALBOARD_PLUGINS`` (comma-separated modules).

    Plugins are chosen by the operator, like any installed package; a submission never names one.
    """
    if modules is None:
        from evalboard.settings import get_settings

        modules = get_settings().plugins
    names = modules
    for name in (part.strip() for part in names.split(",")):
        if name and name not in _plugins_loaded:
            importlib.import_module(name)
            _plugins_loaded.add(name)


def task(name: str) -> Task:
    load_plugins()
    return TASKS.get(name)


def spec(name: str) -> Spec:
    load_plugins()
    return SPECS.get(name)


def metric(name: str) -> Metric:
    load_plugins()
    return METRICS.get(name)


def default_spec(task_name: str) -> Spec:
    """The spec a task's submissions use when none is named."""
    task(task_name)  # "unknown task …; did you mean …" for a typo
    return SPECS.get(_DEFAULT_SPECS[task_name])


def specs_of(task_name: str) -> list[Spec]:
    load_plugins()
    return [entry for entry in SPECS if entry.task == task_name]


def task_names() -> list[str]:
    load_plugins()
    return TASKS.names()


def check_metric(spec_: Spec, name: str) -> Metric:
    """The metric ``name`` of ``spec_``; a name outside the spec lists the valid ones."""
    if name not in spec_.metrics:
        raise BadInputError(
            f"metric {name!r} is not part of spec {spec_.label}; valid metrics: "
            f"{', '.join(spec_.metrics)}"
        )
    return metric(name)


def current_versions() -> dict[str, str]:
    """Spec name → its current version (what the leaderboard ranks and re-evaluation keys on)."""
    load_plugins()
    return {entry.name: entry.version for entry in SPECS}


# The first task: image classification.
register_task(
    Task(
        name=IMAGE_CLASSIFICATION,
        description="An image in, one class out; labels are matched to the model's by name.",
        columns=(
            Column("image", "image", "the images (an Image column, or paths/bytes it can cast)"),
            Column("label", "label", "the class of each image: ClassLabel, strings or integers"),
        ),
        adapter="worker.evaluation.image_classification:run_image_classification",
    )
)
for _metric in (
    Metric("accuracy", True, "wilson", "share of correct top-1 predictions",
           "accuracy", "accuracy"),
    Metric("f1_macro", True, "bootstrap", "F1 averaged over classes with equal weight",
           "f1", "f1", {"average": "macro"}, pass_labels=True),
    Metric("f1_micro", True, "bootstrap", "F1 over all predictions (equals accuracy here)",
           "f1", "f1", {"average": "micro"}, pass_labels=True),
    Metric("f1_weighted", True, "bootstrap", "F1 averaged over classes weighted by support",
           "f1", "f1", {"average": "weighted"}, pass_labels=True),
    Metric("precision_macro", True, "bootstrap", "precision averaged over classes",
           "precision", "precision", {"average": "macro"}, pass_labels=True),
    Metric("recall_macro", True, "bootstrap", "recall averaged over classes (balanced accuracy)",
           "recall", "recall", {"average": "macro"}, pass_labels=True),
    Metric("top5_accuracy", True, "wilson", "share of samples whose class is among the top 5",
           "top_k_accuracy", "top_k_accuracy", {"k": 5}, uses_scores=True, min_classes=5),
):  # fmt: skip
    register_metric(_metric)
register_spec(
    Spec(
        name=IMAGE_CLASSIFICATION,
        version="3.0",
        task=IMAGE_CLASSIFICATION,
        metrics=(
            "accuracy",
            "f1_macro",
            "f1_micro",
            "f1_weighted",
            "precision_macro",
            "recall_macro",
            "top5_accuracy",
        ),
        preprocessing=(
            "torch-resize-1: images to RGB (palette through RGBA); the size, crop, resample, "
            "rescale, mean and std of the model's own image processor, applied by torch "
            "(antialiased resize of uint8 images, center crop, then rescale and normalize; "
            "within one uint8 step of the processor's PIL path); logits restricted to the "
            "dataset's classes, matched by name"
        ),
        # bf16 autocast moved predictions on a GPU: fp32 everywhere until a GPU run shows
        # ≥ 99.5% agreement (benchmarks/bench_precision.py).
        gpu_precision="fp32",
    )
)
