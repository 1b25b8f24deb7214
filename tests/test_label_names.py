"""Labels are matched by normalized name (Unicode form, case, separators); names that are one
name once normalized are refused by name, at submit and by the worker, never silently picked."""

from __future__ import annotations

import json
import shutil
import unicodedata
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from db.models import Submission
from db.session import session_scope
from evalboard.errors import BadInputError
from evalboard.model_files import label_collisions, normalize_label
from evalboard.output import UNSAFE_CATEGORIES, distinct_text
from tests import factories, servers
from tests.conftest import DigitsData, TinyModels
from tests.test_end_to_end import evalboard
from worker.evaluation.labels import LabelAlignmentError, align_labels

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FRENCH = ["zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"]
AMBIGUOUS = "ambiguous labels"
_fresh = count()


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


# Output 0 and output 9 of a model: one name once normalized, in every way it can be.
COLLIDING = {
    "exact duplicates": ("nine", "nine"),
    "case only": ("NINE", "nine"),
    "whitespace": (" nine\t", "nine"),
    "separators": ("_nine-", "nine"),
    "NFC and NFD": (nfd("zéro"), nfc("zéro")),
    "full-width (NFKC)": ("ｎｉｎｅ", "nine"),
    "no-break space": ("big\u00a0cat", "big cat"),
}


# ---- the matching rule itself ----------------------------------------------------------------


@pytest.mark.parametrize("case", list(COLLIDING))
def test_colliding_model_labels_are_refused_naming_both_outputs(case: str) -> None:
    first, last = COLLIDING[case]
    labels = [first, *WORDS[1:9], last]
    with pytest.raises(LabelAlignmentError) as failure:
        align_labels(labels, [*WORDS[:9], last])
    message = failure.value.message
    assert failure.value.category == "bad_input"
    assert AMBIGUOUS in message and "id2label" in message
    if first == last:
        assert f"'{first}' at outputs 0 and 9" in message
    else:
        assert f"'{distinct_text(first)}' (output 0)" in message
        assert f"'{distinct_text(last)}' (output 9)" in message


def test_a_repeated_model_label_no_class_asks_for_is_harmless() -> None:
    # ImageNet-1k's id2label names "crane" at outputs 134 and 517; a dataset without cranes
    # matches by name, and the same list in the same order matches by position.
    imagenet_like = [*WORDS[:5], "crane", *WORDS[5:], "Crane"]
    assert list(align_labels(imagenet_like, list(reversed(WORDS)))) == [10, 9, 8, 7, 6, 4, 3,
                                                                         2, 1, 0]  # fmt: skip
    assert list(align_labels(imagenet_like, imagenet_like)) == list(range(12))
    with pytest.raises(LabelAlignmentError, match="'crane' \\(output 5\\) and 'Crane'"):
        align_labels(imagenet_like, [*WORDS, "crane"])


# A dataset cannot list one class name twice: datasets refuses that itself (tested below).
@pytest.mark.parametrize("case", [case for case, (a, b) in COLLIDING.items() if a != b])
def test_colliding_dataset_class_names_are_refused_naming_both_classes(case: str) -> None:
    first, last = COLLIDING[case]
    with pytest.raises(LabelAlignmentError, match=AMBIGUOUS) as failure:
        align_labels([*WORDS[:9], "nine"], [first, *WORDS[1:9], last])
    assert "(class 0)" in failure.value.message and "(class 9)" in failure.value.message


def test_names_match_across_unicode_form_case_and_separators_in_any_order() -> None:
    model = [nfc(name) for name in FRENCH]
    dataset = [nfd(name).upper() for name in reversed(FRENCH)]
    dataset[3] = f"  {dataset[3]}_"
    assert list(align_labels(model, dataset)) == list(range(9, -1, -1))


def test_names_that_still_differ_are_shown_escaped() -> None:
    model = ["ze\u200bro", *FRENCH[1:]]  # a zero-width space: looks like "zero"
    dataset = [nfd("zéro").replace("\u0301", "\u034f"), *FRENCH[1:]]  # grapheme joiner
    with pytest.raises(LabelAlignmentError, match="do not match") as failure:
        align_labels(model, dataset)
    message = failure.value.message
    assert "'ze\\u034fro'" in message and "'ze\\u200bro'" in message
    assert not any(unicodedata.category(c) in UNSAFE_CATEGORIES for c in message)


_names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("Ee\u0301 _-É"),
    max_size=6,
)


def _respelled(name: str) -> str:
    """The same name spelled otherwise: decomposed, ASCII case swapped, separators around."""
    swapped = "".join(c.swapcase() if c.isascii() else c for c in nfd(name))
    return f" {swapped}_"


@hypothesis.settings(max_examples=300, deadline=None)
@given(st.lists(_names, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_alignment_is_a_bijection_on_normalized_names_or_a_named_refusal(
    names: list[str], random: Any
) -> None:
    dataset = [_respelled(name) for name in names]
    random.shuffle(dataset)
    try:
        columns = align_labels(names, dataset)
    except LabelAlignmentError as error:
        # Refused only where two names are one; then the message says so.
        assert label_collisions(names), error.message
        assert AMBIGUOUS in error.message
        return
    if label_collisions(names):
        # Repeats match only as the same list in the same order: by position.
        assert [normalize_label(n) for n in dataset] == [normalize_label(n) for n in names]
        assert list(columns) == list(range(len(names)))
        return
    assert sorted(columns) == list(range(len(names)))
    for name, column in zip(dataset, columns, strict=True):
        assert normalize_label(name) == normalize_label(names[column])


@hypothesis.settings(max_examples=300, deadline=None)
@given(_names)
def test_every_spelling_of_a_name_normalizes_alike(name: str) -> None:
    for variant in (nfd(name), nfc(name), _respelled(name), f"\t{name}\n", name.replace(" ", "_")):
        assert normalize_label(variant) == normalize_label(name)


# ---- at submit, through the real command line: nothing is queued -----------------------------


def _submissions() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Submission)) or 0)


def _model_with_labels(source: Path, root: Path, labels: list[str]) -> Path:
    """A copy of ``source`` (its trained weights) whose id2label names ``labels``."""
    folder = Path(shutil.copytree(source, root / f"model-{next(_fresh)}"))
    factories.edit_json(
        folder / "config.json",
        lambda config: config.update(
            id2label={str(i): name for i, name in enumerate(labels)},
            label2id={name: i for i, name in enumerate(labels)},
        ),
    )
    return folder


# The digit names, "9" at output 0 too (in place of "0").
DIGIT_WORDS_REPEATING = ["9", *[str(i) for i in range(1, 10)]]


def _string_digits(root: Path) -> Path:
    import datasets

    images, digits_of = factories.digits_images("test", limit=40)
    return factories.write_image_parquet(
        root,
        {"test": (images, [str(d) for d in digits_of])},
        label_feature=datasets.Value("string"),
    )


def _id2label(labels: list[str]) -> Callable[[Path], object]:
    def change(folder: Path) -> object:
        return factories.edit_json(
            folder / "config.json",
            lambda config: config.update(id2label={str(i): n for i, n in enumerate(labels)}),
        )

    return change


def _submit_json(*args: str) -> tuple[int, dict[str, Any]]:
    completed = evalboard("submit", *args, "--json")
    assert completed.stdout, completed.stderr
    return completed.returncode, json.loads(completed.stdout)


def test_ambiguous_model_labels_are_refused_at_submit_and_nothing_is_queued(
    backend, data_root: Path, digits: DigitsData, tiny_models: TinyModels
) -> None:
    root = data_root / f"label-names-{backend.name}-{next(_fresh)}"
    root.mkdir()
    words = _digits_with_class_names(root / "words", WORDS, list(range(10)))
    for case, (first, last) in COLLIDING.items():
        model = _model_with_labels(tiny_models.resnet, root, [first, *WORDS[1:9], last])
        # The dataset has a class of that name: either output could be the one meant.
        names = [*WORDS[:9], last]
        dataset = _digits_with_class_names(root / f"names-{next(_fresh)}", names, list(range(10)))
        code, report = _submit_json("--model", str(model), "--dataset", str(dataset))
        assert code == 2, (case, report)
        assert report["submission_id"] is None
        assert report["error"]["category"] == "bad_input", (case, report)
        message = report["error"]["message"]
        assert AMBIGUOUS in message and "config.json's id2label" in message, (case, message)
        if first == last:
            assert f"'{first}' at outputs 0 and 9" in message, (case, message)
        else:
            assert f"'{distinct_text(first)}' (output 0)" in message, (case, message)
            assert f"'{distinct_text(last)}' (output 9)" in message, (case, message)
    # A Hub model whose config.json is in the local cache: refused the same way.
    hub = factories.cached_hub_model(
        f"ambiguous-{backend.name}-{next(_fresh)}", _id2label(["nine", *WORDS[1:9], "Nine"])
    )
    code, report = _submit_json("--model", hub, "--dataset", str(words))
    assert (code, report["error"]["category"]) == (2, "bad_input"), report
    assert "'Nine' (output 9)" in report["error"]["message"]
    # Every local layout gives its class names at submit: an imagefolder's folders, a saved
    # dataset's features, a parquet file's string labels.
    model = _model_with_labels(tiny_models.resnet, root, [*DIGIT_WORDS_REPEATING])
    for dataset in (digits.imagefolder, digits.saved, _string_digits(root / "strings")):
        code, report = _submit_json("--model", str(model), "--dataset", str(dataset))
        assert (code, report["error"]["category"]) == (2, "bad_input"), (dataset, report)
        assert "'9' at outputs 0 and 9" in report["error"]["message"], (dataset, report)
    assert _submissions() == 0
    # A repeated label that no class of the dataset carries is harmless: queued.
    code, report = _submit_json("--model", str(model), "--dataset", str(words))
    assert (code, report["state"]) == (0, "queued"), report


# ---- by the worker: matching, and what it refuses --------------------------------------------


def _digits_with_class_names(root: Path, names: list[str], order: list[int]) -> Path:
    """The digits test split whose class ``j`` is digit ``order[j]``, named ``names[j]``."""
    import datasets

    images, digits_of = factories.digits_images("test")
    position = {digit: j for j, digit in enumerate(order)}
    return factories.write_image_parquet(
        root,
        {"test": (images, [position[d] for d in digits_of])},
        label_feature=datasets.ClassLabel(names=names),
    )


def _sklearn_accuracy(model: Path) -> float:
    """scikit-learn's accuracy of the model's own argmax on the digits test split."""
    import torch
    from sklearn.metrics import accuracy_score
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    images, labels = factories.digits_images("test", mode="RGB")
    processor = AutoImageProcessor.from_pretrained(model)
    classifier = AutoModelForImageClassification.from_pretrained(model).eval()
    with torch.inference_mode():
        logits = classifier(**processor(images=images, return_tensors="pt")).logits
    return float(accuracy_score(labels, logits.argmax(-1).numpy()))


def _wait_json(submission_id: int) -> dict[str, Any]:
    """The report ``evalboard status --json`` gives once the submission has ended."""
    from db.submissions import get_submission
    from tests.test_end_to_end import run_json

    def ended() -> bool:
        with session_scope() as session:
            row = get_submission(session, submission_id)
            return row is not None and row.state in ("succeeded", "failed", "cancelled")

    servers.wait_for(ended, 300, f"submission {submission_id} ends")
    return run_json("status", str(submission_id))


def test_nfc_model_labels_match_nfd_dataset_names_with_scikit_learns_accuracy(
    backend, start_worker, data_root: Path, tiny_models: TinyModels
) -> None:
    root = data_root / f"unicode-forms-{backend.name}-{next(_fresh)}"
    root.mkdir()
    model = _model_with_labels(tiny_models.trained_resnet, root, [nfc(n) for n in FRENCH])
    order = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7]  # the dataset lists its classes in another order
    names = [nfd(FRENCH[digit]).upper() for digit in order]
    assert nfd("ZÉRO") in names and nfc("ZÉRO") not in names
    dataset = _digits_with_class_names(root / "nfd-names", names, order)
    start_worker()
    code, report = _submit_json("--model", str(model), "--dataset", str(dataset), "--wait")
    assert (code, report["state"], report["error"]) == (0, "succeeded", None), report
    expected = _sklearn_accuracy(model)
    assert expected > 0.5  # a trained model: a wrong alignment would show
    assert report["metrics"]["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert report["n_samples"] == len(factories.digits_images("test")[1])


def _string_labels(root: Path, spell: Callable[[int, int], str]) -> Path:
    """The digits test split with string labels: row ``i`` of digit ``d`` is ``spell(i, d)``."""
    import datasets

    images, digits_of = factories.digits_images("test", limit=40)
    labels = [spell(i, d) for i, d in enumerate(digits_of)]
    return factories.write_image_parquet(
        root, {"test": (images, labels)}, label_feature=datasets.Value("string")
    )


def _duplicated_class_label(root: Path) -> Path:
    """A parquet file whose features declare a ClassLabel with one name twice."""
    import pyarrow.parquet as pq

    folder = _digits_with_class_names(root, WORDS, list(range(10)))
    table = pq.read_table(folder / "test.parquet")
    metadata = json.loads(table.schema.metadata[b"huggingface"])
    metadata["info"]["features"]["label"]["names"][0] = "nine"
    pq.write_table(table.replace_schema_metadata({"huggingface": json.dumps(metadata)}),
                   folder / "test.parquet")  # fmt: skip
    return folder


def test_the_worker_refuses_ambiguous_names_and_shows_names_that_differ_escaped(
    backend, data_root: Path, digits: DigitsData, tiny_models: TinyModels, start_worker
) -> None:
    root = data_root / f"worker-labels-{backend.name}-{next(_fresh)}"
    root.mkdir()
    words = _model_with_labels(tiny_models.trained_resnet, root, WORDS)
    plain = _digits_with_class_names(root / "plain", WORDS, list(range(10)))
    hub = factories.cached_hub_model(f"changed-{backend.name}-{next(_fresh)}")
    cases: dict[str, tuple[str, str, list[str]]] = {
        # Clean at submit; its cached config.json names "one" twice before the worker runs.
        "Hub config changed after submit": (
            hub, str(plain), [AMBIGUOUS, "id2label", "'ONE' (output 0)", "(output 1)"]
        ),
        "dataset classes one by case and spaces": (
            str(words),
            str(_string_labels(root / "case", lambda i, d: f"{WORDS[d].title()} " if i % 2
                               else WORDS[d])),
            [AMBIGUOUS, "class names", "'One ' (class", "'one' (class"],
        ),
        "dataset classes one by Unicode form": (
            str(words),
            str(_string_labels(root / "forms", lambda i, d: nfd("zéro") if i % 2 else "zéro")),
            [AMBIGUOUS, "'ze\\u0301ro' (class", "'zéro' (class"],
        ),
        "a ClassLabel naming one class twice": (
            str(words), str(_duplicated_class_label(root / "dup-classlabel")), ["duplicated"]
        ),
        "names that differ invisibly": (
            str(_model_with_labels(tiny_models.trained_resnet, root, ["ze\u200bro", *WORDS[1:]])),
            str(plain),
            ["do not match", "'ze\\u200bro'"],
        ),
    }  # fmt: skip
    submitted = {}
    for case, (model, dataset, _) in cases.items():
        code, report = _submit_json("--model", model, "--dataset", dataset)
        assert code == 0 and report["state"] == "queued", (case, report)
        submitted[case] = report["submission_id"]
    from huggingface_hub import constants

    snapshot = next((Path(constants.HF_HUB_CACHE) / f"models--{hub.replace('/', '--')}").glob(
        "snapshots/*"))  # fmt: skip
    _id2label(["ONE", *WORDS[1:]])(snapshot)
    start_worker()
    for case, (_, _, fragments) in cases.items():
        report = _wait_json(submitted[case])
        assert report["state"] == "failed", (case, report)
        assert report["error"]["category"] == "bad_input", (case, report)
        message = report["error"]["message"]
        for fragment in fragments:
            assert fragment in message, (case, fragment, message)
        assert "\u200b" not in message


# ---- the training path matches and refuses names the same way --------------------------------


def _training_splits(root: Path, train: list[str], validation: list[str]) -> Path:
    import datasets

    images, _ = factories.digits_images("train", limit=max(len(train), len(validation)))
    splits = {"train": (images[: len(train)], train),
              "validation": (images[: len(validation)], validation)}  # fmt: skip
    return factories.write_image_parquet(root, splits, label_feature=datasets.Value("string"))


def test_training_matches_validation_names_by_normal_form_and_refuses_colliding_train_names(
    tmp_path: Path,
) -> None:
    from evalboard.references import resolve_dataset
    from evalboard.settings import Settings
    from evalboard.training_params import TrainingParams
    from worker.training.data import load_training_data

    bounds = Settings(home=tmp_path / "home", allowed_paths=[tmp_path])
    params = TrainingParams(validation_split="validation")
    train = ["cat", "dog"] * 4
    folder = _training_splits(tmp_path / "ok", train, [nfd("DOG "), "Cat"] * 2)
    loaded = load_training_data(
        resolve_dataset(str(folder), None, None, bounds), params,
        image_column="image", label_column="label",
    )  # fmt: skip
    assert loaded.class_names == ["cat", "dog"]
    assert loaded.validation["label"] == [1, 0, 1, 0]
    folder = _training_splits(tmp_path / "colliding", ["cat", "Cat ", "dog", "dog"], ["dog"])
    with pytest.raises(BadInputError, match=AMBIGUOUS) as failure:
        load_training_data(
            resolve_dataset(str(folder), None, None, bounds), params,
            image_column="image", label_column="label",
        )  # fmt: skip
    assert (
        "'Cat ' (class 0)" in failure.value.message and "'cat' (class 1)" in failure.value.message
    )
