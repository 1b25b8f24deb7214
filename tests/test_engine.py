"""The evaluation engine on real tiny models and the digits dataset, in every local format."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

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
from evalboard.errors import BadInputError, NotFoundError
from evalboard.references import resolve_dataset, resolve_model
from evalboard.settings import Settings
from tests import factories
from worker.evaluation.engine import EvaluationOutcome, EvaluationRequest, run_evaluation
from worker.evaluation.labels import LabelAlignmentError

N_TEST = len(factories.digits_splits()["test"][1])


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Everything this session writes (data_root and each tmp_path) lies under the base temp."""
    base = tmp_path_factory.getbasetemp()
    return Settings(home=base / "engine-home", allowed_paths=[base])


def evaluate(settings: Settings, model: Path, dataset: Path, **options) -> EvaluationOutcome:
    columns = {
        role: options.pop(f"{role}_column") for role in ("image", "label")
        if f"{role}_column" in options
    }  # fmt: skip
    options["columns"] = columns
    request = EvaluationRequest(
        resolve_model(str(model), None, settings),
        resolve_dataset(str(dataset), None, None, settings),
        **options,
    )
    return run_evaluation(request)


@dataclass
class Baseline:
    """The trained ResNet on the digits test split (parquet), and the progress it reported."""

    outcome: EvaluationOutcome
    progress: list[tuple[int, int]]


@pytest.fixture(scope="module")
def baseline(settings: Settings, tiny_models, digits) -> Baseline:
    progress: list[tuple[int, int]] = []
    request = EvaluationRequest(
        resolve_model(str(tiny_models.trained_resnet), None, settings),
        resolve_dataset(str(digits.parquet), None, None, settings),
    )
    outcome = run_evaluation(request, progress=lambda done, total: progress.append((done, total)))
    return Baseline(outcome, progress)


@pytest.fixture(scope="module")
def independent_logits(tiny_models) -> tuple[np.ndarray, np.ndarray]:
    """Logits of the trained ResNet on the RGB test images, columns in digit-name order."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(tiny_models.trained_resnet).eval()
    processor = AutoImageProcessor.from_pretrained(tiny_models.trained_resnet)
    images, labels = factories.digits_images("test", mode="RGB")
    with torch.no_grad():
        logits = model(**processor(images=images, return_tensors="pt")).logits.numpy()
    columns = [model.config.label2id[name] for name in factories.DIGIT_NAMES]
    return logits[:, columns], np.asarray(labels)


def unlabelled_every(step: int, labels: list[int]) -> list[int]:
    return [-1 if index % step == 0 else label for index, label in enumerate(labels)]


@pytest.mark.parametrize("model_name", ["vit", "trained_resnet"])
def test_metrics_are_identical_in_every_local_format(
    model_name: str, settings: Settings, tiny_models, digits
) -> None:
    model = getattr(tiny_models, model_name)
    outcomes = {
        name: evaluate(settings, model, path)
        for name, path in (
            ("imagefolder", digits.imagefolder),
            ("parquet", digits.parquet),
            ("save_to_disk", digits.saved),
        )
    }
    first = outcomes["parquet"]
    for name, outcome in outcomes.items():
        assert outcome.split == "test", name
        assert outcome.n_samples == N_TEST, name
        assert np.array_equal(np.sort(outcome.references), np.sort(first.references)), name
        assert outcome.metric_values() == pytest.approx(first.metric_values(), abs=1e-12), name


def test_metrics_equal_scikit_learn_on_independent_predictions(
    baseline: Baseline, independent_logits: tuple[np.ndarray, np.ndarray]
) -> None:
    logits, labels = independent_logits
    predictions = logits.argmax(axis=1)
    expected = {
        "accuracy": accuracy_score(labels, predictions),
        "f1_macro": f1_score(labels, predictions, average="macro"),
        "f1_micro": f1_score(labels, predictions, average="micro"),
        "f1_weighted": f1_score(labels, predictions, average="weighted"),
        "precision_macro": precision_score(labels, predictions, average="macro"),
        "recall_macro": recall_score(labels, predictions, average="macro"),
        "top5_accuracy": top_k_accuracy_score(labels, logits, k=5),
    }
    outcome = baseline.outcome
    assert np.array_equal(outcome.references, labels)
    assert np.array_equal(outcome.predictions, predictions)
    assert outcome.metric_values() == pytest.approx(expected, abs=1e-9)


def test_permuted_label_order_gives_the_same_accuracy(
    settings: Settings, tiny_models, digits, baseline: Baseline
) -> None:
    permuted = evaluate(settings, tiny_models.permuted_resnet, digits.parquet)
    assert baseline.outcome.metric_values()["accuracy"] > 0.9
    assert permuted.metric_values() == pytest.approx(baseline.outcome.metric_values(), abs=1e-12)
    assert np.array_equal(permuted.predictions, baseline.outcome.predictions)

    from transformers import AutoConfig

    id2label = AutoConfig.from_pretrained(tiny_models.permuted_resnet).id2label
    columns = permuted.provenance["label_columns_in_model"]
    assert [id2label[column] for column in columns] == permuted.provenance["class_names"]
    assert columns != list(range(len(columns)))


@pytest.mark.parametrize(
    ("model_labels", "missing"),
    [
        ([f"animal {i}" for i in range(10)], factories.DIGIT_NAMES),
        ([*factories.DIGIT_NAMES[:8], "eight", "nine"], ["8", "9"]),
    ],
    ids=["no name in common", "two names differ"],
)
def test_model_whose_labels_miss_dataset_classes_fails_with_label_alignment_error(
    model_labels: list[str], missing: list[str], settings: Settings, digits, tmp_path: Path
) -> None:
    model = factories.make_resnet(tmp_path / "model", labels=model_labels)
    with pytest.raises(LabelAlignmentError) as failure:
        evaluate(settings, model, digits.parquet)
    error = failure.value
    assert isinstance(error, BadInputError)
    assert error.category == "bad_input"
    listed = str(error).split("are not among")[0]
    for name in factories.DIGIT_NAMES:
        assert (repr(name) in listed) == (name in missing), name


def test_model_with_only_default_label_names_is_told_to_set_id2label(
    settings: Settings, digits, tmp_path: Path
) -> None:
    model = factories.make_resnet(tmp_path / "model", labels=[f"LABEL_{i}" for i in range(10)])
    with pytest.raises(LabelAlignmentError, match="id2label"):
        evaluate(settings, model, digits.parquet)


def test_string_labels_give_the_same_class_names_and_metrics(
    settings: Settings, tiny_models, tmp_path: Path, baseline: Baseline
) -> None:
    dataset = factories.write_digits_parquet(tmp_path / "strings", string_labels=True)
    outcome = evaluate(settings, tiny_models.trained_resnet, dataset)
    assert outcome.provenance["class_names"] == baseline.outcome.provenance["class_names"]
    assert outcome.provenance["class_names"] == factories.DIGIT_NAMES
    assert np.array_equal(outcome.references, baseline.outcome.references)
    assert outcome.metric_values() == pytest.approx(baseline.outcome.metric_values(), abs=1e-12)


@pytest.mark.parametrize("layout", ["parquet", "imagefolder"])
@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_grayscale_rgba_and_palette_images_evaluate_like_rgb(
    mode: str, layout: str, settings: Settings, tiny_models, tmp_path: Path, baseline: Baseline
) -> None:
    splits = {"test": factories.digits_images("test", mode=mode)}
    assert splits["test"][0][0].mode == mode
    write = factories.write_image_parquet if layout == "parquet" else factories.write_image_folder
    dataset = write(tmp_path / f"{mode}-{layout}", splits)
    outcome = evaluate(settings, tiny_models.trained_resnet, dataset)
    assert outcome.n_samples == N_TEST
    assert outcome.metric_values() == pytest.approx(baseline.outcome.metric_values(), abs=1e-12)


@pytest.mark.parametrize("label_kind", ["ClassLabel", "int64"])
def test_unlabelled_rows_are_excluded_and_counted(
    label_kind: str, settings: Settings, tiny_models, tmp_path: Path, baseline: Baseline
) -> None:
    import datasets

    images, labels = factories.digits_images("test")
    labels_with_holes = unlabelled_every(7, labels)
    feature = None if label_kind == "ClassLabel" else datasets.Value("int64")
    dataset = factories.write_image_parquet(
        tmp_path / "holes", {"test": (images, labels_with_holes)}, label_feature=feature
    )
    outcome = evaluate(settings, tiny_models.trained_resnet, dataset)

    keep = np.asarray(labels_with_holes) >= 0
    assert outcome.provenance["excluded_unlabelled"] == int((~keep).sum()) > 0
    assert outcome.n_samples == outcome.provenance["n_samples"] == int(keep.sum())
    assert np.array_equal(outcome.references, np.asarray(labels)[keep])
    expected_accuracy = accuracy_score(np.asarray(labels)[keep], baseline.outcome.predictions[keep])
    assert outcome.metric_values()["accuracy"] == pytest.approx(expected_accuracy, abs=1e-12)


def test_whole_number_float_labels_with_nan_gaps_are_class_ids(
    settings: Settings, tiny_models, tmp_path: Path
) -> None:
    import datasets

    images, labels = factories.digits_images("test")
    labels_with_gaps = [
        float("nan") if label < 0 else float(label) for label in unlabelled_every(7, labels)
    ]
    dataset = factories.write_image_parquet(
        tmp_path / "floats",
        {"test": (images, labels_with_gaps)},
        label_feature=datasets.Value("float64"),
    )
    outcome = evaluate(settings, tiny_models.trained_resnet, dataset)
    assert outcome.provenance["class_names"] == factories.DIGIT_NAMES
    assert outcome.provenance["excluded_unlabelled"] == sum(np.isnan(labels_with_gaps))
    assert outcome.metric_values()["accuracy"] > 0.9


def test_split_defaults_to_test(settings: Settings, tiny_models, digits) -> None:
    outcome = evaluate(settings, tiny_models.resnet, digits.saved)
    assert outcome.split == outcome.provenance["split"] == "test"
    assert outcome.n_samples == N_TEST


@pytest.mark.parametrize(
    ("split_names", "expected"),
    [(["train"], "train"), (["train", "validation"], "validation")],
)
def test_split_falls_back_in_preference_order(
    split_names: list[str], expected: str, settings: Settings, tiny_models, tmp_path: Path
) -> None:
    sizes = {name: 10 + index for index, name in enumerate(split_names)}
    splits = {name: factories.digits_images("train", limit=size) for name, size in sizes.items()}
    dataset = factories.write_image_parquet(tmp_path / "splits", splits)
    outcome = evaluate(settings, tiny_models.resnet, dataset)
    assert outcome.split == expected
    assert outcome.n_samples == sizes[expected]


def test_missing_split_is_not_found_and_lists_the_available_ones(
    settings: Settings, tiny_models, digits
) -> None:
    with pytest.raises(NotFoundError) as failure:
        evaluate(settings, tiny_models.resnet, digits.parquet, split="validation")
    message = str(failure.value)
    assert "'validation'" in message
    assert "test" in message and "train" in message


@pytest.mark.parametrize(
    "mapping", [{"image_column": "picture"}, {"label_column": "target"}], ids=["image", "label"]
)
def test_wrong_column_mapping_is_bad_input_naming_the_column(
    mapping: dict[str, str], settings: Settings, tiny_models, digits
) -> None:
    with pytest.raises(BadInputError) as failure:
        evaluate(settings, tiny_models.resnet, digits.parquet, **mapping)
    assert failure.value.category == "bad_input"
    (column,) = mapping.values()
    assert repr(column) in str(failure.value)


def test_custom_image_and_label_columns_work_when_mapped(
    settings: Settings, tiny_models, tmp_path: Path, baseline: Baseline
) -> None:
    dataset = factories.write_image_parquet(
        tmp_path / "custom",
        {"test": factories.digits_images("test")},
        image_column="pixels",
        label_column="digit",
    )
    with pytest.raises(BadInputError):
        evaluate(settings, tiny_models.trained_resnet, dataset)
    outcome = evaluate(
        settings, tiny_models.trained_resnet, dataset, image_column="pixels", label_column="digit"
    )
    assert outcome.provenance["image_column"] == "pixels"
    assert outcome.provenance["label_column"] == "digit"
    assert outcome.metric_values() == pytest.approx(baseline.outcome.metric_values(), abs=1e-12)


def test_provenance_records_what_the_result_depends_on(
    settings: Settings, tiny_models, digits, baseline: Baseline
) -> None:
    import datasets
    import evaluate as evaluate_library
    import PIL
    import sklearn
    import torch
    import transformers

    provenance = baseline.outcome.provenance
    model = resolve_model(str(tiny_models.trained_resnet), None, settings)
    dataset = resolve_dataset(str(digits.parquet), None, None, settings)
    spec = catalog.default_spec(catalog.IMAGE_CLASSIFICATION)

    assert provenance["model_revision"] == model.resolved_revision
    assert len(provenance["model_revision"]) == 64
    assert provenance["dataset_fingerprint"] == dataset.fingerprint
    assert provenance["dataset_fingerprint"] != provenance["model_revision"]
    assert (provenance["spec_name"], provenance["spec_version"]) == (spec.name, spec.version)
    assert provenance["n_samples"] == N_TEST
    assert provenance["device"] == "cpu"
    assert provenance["precision"] == "fp32"
    assert provenance["duration_s"] > 0
    # The model alone after the first (warm-up) batch; images_per_s is the whole pass.
    first = provenance["batch_size"]
    assert provenance["model_images_per_s"] == pytest.approx(
        (N_TEST - first) / provenance["duration_s"], rel=1e-2
    )
    assert provenance["images_per_s"] == pytest.approx(N_TEST / provenance["inference_s"], rel=1e-2)
    assert provenance["preprocessing"] == "torch-resize-1"
    assert provenance["tensor_cache"] in ("written", "hit")
    assert provenance["packages"] == {
        "evalboard": provenance["packages"]["evalboard"],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "evaluate": evaluate_library.__version__,
        "scikit-learn": sklearn.__version__,
        "pillow": PIL.__version__,
        "torchvision": provenance["packages"]["torchvision"],
        "python": platform.python_version(),
    }
    assert provenance["packages"]["evalboard"] != "not installed"


def test_progress_reports_every_image_in_order(baseline: Baseline) -> None:
    done = [count for count, _ in baseline.progress]
    assert {total for _, total in baseline.progress} == {N_TEST}
    assert done == sorted(set(done))
    assert done[-1] == N_TEST
