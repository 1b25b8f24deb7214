"""User input cannot reach ``internal``: whatever a person types into any field of a submission,
and whatever a model folder's configs hold, submit ends in a named category or succeeds.

Hypothesis draws every user-typed field of ``evalboard.submit.prepare`` (paths, Hub ids,
revisions, numbers, free text with NUL bytes, lone surrogates and lengths the database refuses,
training hyperparameters) and the contents of ``config.json`` and ``preprocessor_config.json``.
``submit`` then runs the same on both real databases, SQLite and PostgreSQL, where a value that
slipped through would be refused by the database itself. In-process, no worker.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from evalboard.contents import printable
from evalboard.errors import EvalboardError, FailureCategory
from evalboard.settings import Settings
from evalboard.submit import EvaluationInput, prepare
from evalboard.training_params import TrainingParams
from tests import factories

_fresh = itertools.count()

# Text as people (and broken terminals) type it: any code point, lone surrogates (bytes that
# were not UTF-8), NUL bytes, control characters, and lengths past every column's limit.
any_text = st.text(st.characters(codec=None, categories=None), max_size=40)
awkward_text = st.one_of(
    any_text,
    st.text(st.sampled_from("\x00\udcff\u202e\n\t /.~-_aZ9é"), max_size=20),
    st.builds(lambda c, n: c * n, st.sampled_from("xé\x00/"),
              st.sampled_from([255, 256, 1025, 5000])),
)  # fmt: skip
hub_ids = st.from_regex(r"[A-Za-z0-9._-]{0,100}(/[A-Za-z0-9._-]{0,100}){0,2}", fullmatch=True)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
json_values = st.recursive(
    st.one_of(st.none(), numbers, any_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def label_configs(draw: st.DrawFn) -> Any:
    """config.json contents that look like a model's, with the label fields drawn."""
    config: dict[str, Any] = {"model_type": draw(st.sampled_from(["resnet", "vit", "nope", ""]))}
    if draw(st.booleans()):
        n = draw(st.integers(min_value=-2, max_value=12))
        keys = draw(st.one_of(st.just([str(i) for i in range(max(n, 0))]),
                              st.lists(any_text, max_size=5)))  # fmt: skip
        config["id2label"] = {key: draw(json_values) for key in keys}
    if draw(st.booleans()):
        config["num_labels"] = draw(numbers)
    if draw(st.booleans()):
        config.update(draw(st.dictionaries(any_text, json_values, max_size=3)))
    return config


@st.composite
def processor_configs(draw: st.DrawFn) -> Any:
    sides = st.one_of(numbers, st.none(), any_text, st.lists(numbers, max_size=3))
    size_keys = ["height", "width", "shortest_edge", "longest_edge", "max_size", "x"]
    processor: dict[str, Any] = {"image_processor_type": "ViTImageProcessor"}
    for key in draw(st.lists(st.sampled_from(["size", "crop_size", "pad_size"]), max_size=3)):
        processor[key] = draw(
            st.one_of(sides, st.dictionaries(st.sampled_from(size_keys), sides, max_size=3))
        )
    return processor


def file_contents(structured: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes | None]:
    """None (keep the file), raw bytes, any JSON, or a structured config."""
    return st.one_of(
        st.none(),
        st.binary(max_size=64),
        json_values.map(lambda value: json.dumps(value).encode()),
        structured.map(lambda value: json.dumps(value).encode()),
        st.integers(min_value=1, max_value=3000).map(lambda depth: b"[" * depth + b"]" * depth),
    )


training_values = st.one_of(numbers, awkward_text, st.none(), st.lists(numbers, max_size=2))
training_fields = st.one_of(
    st.none(),
    st.dictionaries(
        st.one_of(st.sampled_from(list(TrainingParams.model_fields)), any_text),
        training_values,
        max_size=5,
    ),
)


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "allowed").mkdir()
    factories.make_resnet(root / "allowed" / "model")
    factories.write_digits_parquet(root / "allowed" / "dataset", limit=4)
    factories.make_resnet(root / "outside-model")
    return root


def _model_with(area: Path, config: bytes | None, processor: bytes | None) -> str:
    if config is None and processor is None:
        return str(area / "allowed" / "model")
    folder = Path(
        shutil.copytree(area / "allowed" / "model", area / "allowed" / f"m{next(_fresh)}")
    )
    for name, content in (("config.json", config), ("preprocessor_config.json", processor)):
        if content is not None:
            (folder / name).write_bytes(content)
    return str(folder)


def references(area: Path, kind: str) -> st.SearchStrategy[str]:
    good = str(area / "allowed" / kind)
    return st.one_of(
        st.just(good),
        st.just(str(area / "outside-model")),
        awkward_text,
        hub_ids,
        st.sampled_from(["/", ".", "~", "..", "/etc/passwd", "/proc/self/environ", "~root/x",
                         f"{good}/..", f"{good}/../{kind}", good + "\x00", "./" + "x" * 300]),
    )  # fmt: skip


FIELDS = ("model", "model files", "dataset", "revision", "config", "split", "dataset_revision",
          "task", "spec", "columns", "submitter", "parameters", "webhook", "training")  # fmt: skip


@st.composite
def submissions(draw: st.DrawFn, area: Path) -> tuple[EvaluationInput, dict[str, Any] | None]:
    """A submission with one to three fields drawn wild and the others valid, so every field's
    check is reached (all wild at once, the first check would answer for all)."""
    wild = draw(st.sets(st.sampled_from(FIELDS), min_size=1, max_size=3))

    def pick(name: str, valid: st.SearchStrategy[Any], wild_values: st.SearchStrategy[Any]) -> Any:
        return draw(wild_values if name in wild else valid)

    optional_text = st.one_of(st.none(), awkward_text)
    model = pick("model", st.just(str(area / "allowed" / "model")), references(area, "model"))
    if "model files" in wild:
        model = _model_with(area, draw(file_contents(label_configs())),
                            draw(file_contents(processor_configs())))  # fmt: skip
    evaluation = EvaluationInput(
        model=model,
        dataset=pick("dataset", st.just(str(area / "allowed" / "dataset")),
                     references(area, "dataset")),
        revision=pick("revision", st.none(), st.one_of(optional_text, hub_ids)),
        config=pick("config", st.none(), optional_text),
        split=pick("split", st.sampled_from([None, "test"]), optional_text),
        dataset_revision=pick("dataset_revision", st.none(), optional_text),
        task=pick("task", st.just("image-classification"), awkward_text),
        spec=pick("spec", st.none(), optional_text),
        columns=pick("columns", st.just({}), st.dictionaries(
            st.one_of(st.sampled_from(["image", "label"]), any_text), awkward_text, max_size=3)),
        submitter=pick("submitter", st.just("someone"), awkward_text),
        parameters=pick("parameters", st.just({}), st.dictionaries(
            st.sampled_from(["batch_size", "x"]), training_values, max_size=2)),
        webhook=pick("webhook", st.none(),
                     st.one_of(awkward_text, st.just("http://localhost:9/h"))),
    )  # fmt: skip
    return evaluation, pick("training", st.sampled_from([None, {}]), training_fields)


def ends_in_a_named_category(call: Any) -> object:
    """Run ``call``: it succeeds, or fails with an EvalboardError that is not ``internal``;
    any other exception fails the test with its traceback."""
    try:
        outcome = call()
    except EvalboardError as error:
        assert error.category != FailureCategory.INTERNAL, error
        assert error.message and "Traceback" not in error.message
        # Storable and printable as it is: no NUL byte, nothing that is not UTF-8.
        assert printable(error.message) == error.message, error.message
        event(error.category.value)  # --hypothesis-show-statistics shows the mix
        return error
    event("succeeded")
    return outcome


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(data=st.data())
def test_any_input_to_prepare_ends_in_a_named_category_or_succeeds(
    data: st.DataObject, area: Path
) -> None:
    evaluation, training = data.draw(submissions(area))
    config = Settings(home=area / "allowed" / "home", allowed_paths=[area / "allowed"])
    outcome = ends_in_a_named_category(lambda: prepare(evaluation, training, config))
    if not isinstance(outcome, EvalboardError):
        assert outcome.model.name.startswith(str(area / "allowed"))  # type: ignore[attr-defined]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(data=st.data())
def test_any_input_to_submit_ends_in_a_named_category_on_both_databases(
    data: st.DataObject, backend, area: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is the last judge: PostgreSQL refuses NUL bytes and text that is not UTF-8;
    none may reach it as an unnamed error."""
    from evalboard.settings import reset_settings_cache
    from evalboard.submit import submit

    monkeypatch.setenv("EVALBOARD_ALLOWED_PATHS", str(area / "allowed"))
    reset_settings_cache()
    evaluation, training = data.draw(submissions(area))
    # Tokens are drawn without lone surrogates: db.tokens.hash_token encodes a token before
    # anything checks it (a UnicodeEncodeError), in access code outside this change.
    token = data.draw(st.one_of(st.none(), st.text(st.characters(exclude_categories=["Cs"]))))
    outcome = ends_in_a_named_category(lambda: submit(evaluation, training, token=token))
    if not isinstance(outcome, EvalboardError):
        assert outcome.submission_id > 0  # type: ignore[attr-defined]
