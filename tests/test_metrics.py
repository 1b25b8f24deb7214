"""The metric registry and its local evaluate modules, checked against scikit-learn."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    top_k_accuracy_score,
)

from evalboard import catalog
from evalboard.errors import BadInputError
from worker.evaluation.engine import compute_spec_metrics
from worker.evaluation.intervals import VECTORIZED, bootstrap_interval, wilson_interval
from worker.evaluation.metrics import compute_metric

METRICS = catalog.METRICS
SPEC = catalog.default_spec(catalog.IMAGE_CLASSIFICATION)

Reference = Callable[[np.ndarray, np.ndarray, np.ndarray, list[int]], float]


def _averaged(score: Callable, average: str) -> Reference:
    return lambda refs, preds, scores, labels: score(
        refs, preds, average=average, labels=labels, zero_division=0
    )


# What each registered metric must equal: scikit-learn over the dataset's class ids.
SKLEARN_REFERENCES: dict[str, Reference] = {
    "accuracy": lambda refs, preds, scores, labels: accuracy_score(refs, preds),
    "f1_macro": _averaged(f1_score, "macro"),
    "f1_micro": _averaged(f1_score, "micro"),
    "f1_weighted": _averaged(f1_score, "weighted"),
    "precision_macro": _averaged(precision_score, "macro"),
    "recall_macro": _averaged(recall_score, "macro"),
    "top5_accuracy": lambda refs, preds, scores, labels: top_k_accuracy_score(
        refs, scores, k=5, labels=labels
    ),
}


@dataclass(frozen=True)
class Predictions:
    references: np.ndarray
    predictions: np.ndarray
    scores: np.ndarray

    @property
    def labels(self) -> list[int]:
        return list(range(self.scores.shape[1]))


def random_predictions(
    seed: int,
    n_classes: int,
    *,
    n: int = 300,
    absent_class: int | None = None,
    unknown_fraction: float = 0.0,
) -> Predictions:
    """Half-right predictions; optionally a class nobody has and -1 ("not a dataset class")."""
    rng = np.random.default_rng(seed)
    classes = [c for c in range(n_classes) if c != absent_class]
    references = rng.choice(classes, size=n)
    guesses = rng.choice(classes, size=n)
    predictions = np.where(rng.random(n) < 0.5, references, guesses)
    predictions[rng.random(n) < unknown_fraction] = -1
    scores = rng.random((n, n_classes)).astype(np.float32)
    return Predictions(references.astype(np.int64), predictions.astype(np.int64), scores)


PREDICTION_CASES = {
    "10 classes": dict(seed=0, n_classes=10),
    "7 classes": dict(seed=1, n_classes=7),
    "class absent": dict(seed=2, n_classes=10, absent_class=3),
    "unknown label -1": dict(seed=3, n_classes=6, unknown_fraction=0.15),
    "absent and unknown": dict(seed=4, n_classes=12, absent_class=5, unknown_fraction=0.1),
}


@pytest.mark.parametrize("case", PREDICTION_CASES.values(), ids=PREDICTION_CASES.keys())
@pytest.mark.parametrize("name", METRICS.names())
def test_registered_metric_equals_scikit_learn(name: str, case: dict) -> None:
    sample = random_predictions(**case)
    value = compute_metric(
        METRICS.get(name),
        references=sample.references,
        predictions=sample.predictions,
        scores=sample.scores,
    )
    expected = SKLEARN_REFERENCES[name](
        sample.references, sample.predictions, sample.scores, sample.labels
    )
    assert value == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", METRICS.names())
def test_metric_direction_ranks_perfect_predictions_above_random_ones(name: str) -> None:
    metric = METRICS.get(name)
    sample = random_predictions(seed=5, n_classes=10)
    # Scores that put all their mass on the true class make every metric perfect.
    perfect_scores = np.eye(10, dtype=np.float32)[sample.references]
    perfect = compute_metric(
        metric,
        references=sample.references,
        predictions=sample.references,
        scores=perfect_scores,
    )
    # Scores whose top 5 never hold the true class make top-k accuracy zero too.
    worst_scores = perfect_scores * -1.0
    noisy = compute_metric(
        metric,
        references=sample.references,
        predictions=sample.predictions,
        scores=worst_scores,
    )
    assert isinstance(metric.higher_is_better, bool)
    assert (perfect > noisy) == metric.higher_is_better


def test_spec_metrics_skip_top5_when_fewer_than_five_classes() -> None:
    spec = SPEC
    for n_classes in (3, 4, 6, 10):
        sample = random_predictions(seed=6, n_classes=n_classes)
        results = compute_spec_metrics(spec, sample.references, sample.predictions, sample.scores)
        expected = set(spec.metrics) - (set() if n_classes >= 5 else {"top5_accuracy"})
        assert {result.metric for result in results} == expected


def test_every_spec_metric_carries_the_interval_its_catalog_entry_names() -> None:
    sample = random_predictions(seed=7, n_classes=10)
    results = compute_spec_metrics(SPEC, sample.references, sample.predictions, sample.scores)
    assert {result.metric for result in results} == set(SPEC.metrics)
    for result in results:
        metric = METRICS.get(result.metric)
        assert result.higher_is_better == metric.higher_is_better
        assert metric.interval in ("wilson", "bootstrap")
        assert result.ci_low is not None and result.ci_high is not None
        assert result.ci_low <= result.value <= result.ci_high
        if metric.interval == "wilson":
            assert (result.ci_low, result.ci_high) == wilson_interval(result.value, 300)


@pytest.mark.parametrize("case", PREDICTION_CASES.values(), ids=PREDICTION_CASES.keys())
@pytest.mark.parametrize(
    "name", [m.name for m in METRICS if m.interval == "bootstrap" or m.module in VECTORIZED]
)
def test_vectorized_statistic_equals_the_metric_module_on_the_sample(name: str, case: dict) -> None:
    """The bootstrap resamples a statistic that must equal the metric itself on any sample."""
    metric = METRICS.get(name)
    sample = random_predictions(**case)
    resampled = np.stack([np.arange(300), np.random.default_rng(9).integers(0, 300, 300)])
    for indices in resampled:
        references, predictions = sample.references[indices], sample.predictions[indices]
        expected = compute_metric(
            metric, references=references, predictions=predictions, scores=sample.scores
        )
        n_classes = sample.scores.shape[1]
        statistic = VECTORIZED[metric.module](
            references[None], predictions[None], n_classes, dict(metric.kwargs)
        )
        assert statistic[0] == pytest.approx(expected, abs=1e-12)


def test_bootstrap_interval_is_seeded_and_narrows_with_more_samples() -> None:
    metric = METRICS.get("f1_macro")
    widths = []
    for n in (100, 2000):
        sample = random_predictions(seed=11, n_classes=10, n=n)
        kwargs = dict(references=sample.references, predictions=sample.predictions, n_classes=10)
        first = bootstrap_interval(metric, SPEC, **kwargs)
        assert first == bootstrap_interval(metric, SPEC, **kwargs)  # same seed, same interval
        assert first is not None
        widths.append(first[1] - first[0])
    assert widths[1] < widths[0] / 2


@pytest.mark.parametrize("n", [1, 7, 50, 359, 10_000])
@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.5, 0.99])
def test_wilson_interval_contains_the_value_and_solves_the_score_equation(
    n: int, fraction: float
) -> None:
    proportion = round(fraction * n) / n
    z = 1.96
    low, high = wilson_interval(proportion, n, z=z)
    assert 0.0 <= low <= proportion <= high <= 1.0
    # Wilson's bounds are the p with (p_hat - p)^2 = z^2 p (1 - p) / n.
    for bound in (low, high):
        if 0.0 < bound < 1.0:
            assert (proportion - bound) ** 2 == pytest.approx(
                z * z * bound * (1 - bound) / n, rel=1e-9, abs=1e-15
            )


@pytest.mark.parametrize("proportion", [0.05, 0.5, 0.95])
def test_wilson_interval_narrows_as_samples_grow(proportion: float) -> None:
    widths = []
    for n in (20, 100, 1000, 100_000):
        low, high = wilson_interval(proportion, n)
        widths.append(high - low)
    assert widths == sorted(widths, reverse=True)
    assert len(set(widths)) == len(widths)


@pytest.mark.parametrize("proportion", [0.0, 1.0])
def test_wilson_interval_contains_a_perfect_or_zero_score(proportion: float) -> None:
    outside = []
    for n in range(1, 400):
        low, high = wilson_interval(proportion, n)
        if not low <= proportion <= high:
            outside.append(n)
    assert outside == []


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("f1_macr", "f1_macro"), ("acuracy", "accuracy"), ("top5_acc", "top5_accuracy")],
)
def test_unknown_metric_name_suggests_the_close_one(typo: str, meant: str) -> None:
    with pytest.raises(BadInputError, match="did you mean") as failure:
        METRICS.get(typo)
    assert repr(meant) in str(failure.value)
    assert failure.value.category == "bad_input"


def test_unknown_spec_and_task_names_suggest_the_close_one() -> None:
    with pytest.raises(BadInputError, match="did you mean") as failure:
        catalog.spec(SPEC.name.replace("ss", "s"))
    assert repr(SPEC.name) in str(failure.value)
    with pytest.raises(BadInputError, match="did you mean") as failure:
        catalog.task("image-clasification")
    assert repr(catalog.IMAGE_CLASSIFICATION) in str(failure.value)


def test_a_metric_outside_the_spec_lists_the_valid_ones() -> None:
    with pytest.raises(BadInputError) as failure:
        catalog.check_metric(SPEC, "top1")
    for name in SPEC.metrics:
        assert name in str(failure.value)
