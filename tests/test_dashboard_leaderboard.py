"""The leaderboard and model pages: every metric, intervals, stale rows, baselines, filters in
the URL, pages of rows, exports, and a model's provenance, per-class scores and card snippet."""

from __future__ import annotations

import csv
import io
import json
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from db.predictions import store_predictions
from db.results import complete_submission
from db.schemas import DatasetRefCreate, MetricResult, ModelRefCreate, SubmissionCreate
from db.session import session_scope
from db.submissions import claim_submission, create_submission, get_or_create_model_ref
from evalboard.moderation import moderate
from evalboard.settings import reset_settings_cache
from tests import factories

pytestmark = pytest.mark.usefixtures("fresh_streamlit_caches")
VIEWS = Path(__file__).resolve().parent.parent / "dashboard" / "views"
SPEC = factories.SPEC


def view(name: str, **query: Any) -> AppTest:
    at = AppTest.from_file(str(VIEWS / name), default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def result(
    model: str,
    accuracy: float,
    *,
    interval: float = 0.01,
    dataset: str = "digits",
    split: str = "test",
    spec=SPEC,
    revision: str | None = None,
    provenance: dict[str, Any] | None = None,
    submitter: str = "tester",
) -> int:
    """A succeeded evaluation of ``model`` with every metric of the spec."""
    request = SubmissionCreate(
        task=spec.task, submitter=submitter, spec_name=spec.name, spec_version=spec.version,
        model=ModelRefCreate(source="local", name=model,
                             resolved_revision=revision or f"rev-{model}"),
        dataset=DatasetRefCreate(source="local", name=dataset, fingerprint=f"fp-{dataset}"),
    )  # fmt: skip
    metrics = [
        MetricResult(
            metric=name,
            value=accuracy - 0.01 * index,
            higher_is_better=True,
            ci_low=accuracy - 0.01 * index - interval,
            ci_high=accuracy - 0.01 * index + interval,
        )  # fmt: skip
        for index, name in enumerate(spec.metrics)
    ]
    with session_scope() as session:
        submission_id = create_submission(session, request).id
        assert claim_submission(session, submission_id)
        assert complete_submission(
            session, submission_id, metrics=metrics, n_samples=359,
            provenance={"split": split, "model_architecture": "ResNetForImageClassification",
                        "model_parameters": 22_000, **(provenance or {})},
        )  # fmt: skip
    return submission_id


def param(at: AppTest, key: str) -> list[str]:
    """A URL parameter as the list of its values (one value comes back as a plain string)."""
    value = at.query_params[key]
    return [value] if isinstance(value, str) else list(value)


def grid(at: AppTest) -> Any:
    return at.dataframe[0].value


def test_every_metric_side_by_side_with_the_interval_and_ties_sharing_a_rank(
    evalboard_home: Path,
) -> None:
    result("model-b", 0.80)
    result("model-a", 0.90)
    result("model-c", 0.90)
    result("/data/models/model-d", 0.60)

    at = view("leaderboard.py")

    assert not at.exception
    table = grid(at)
    assert list(table["model"]) == ["model-a", "model-c", "model-b", "model-d"]  # folder names
    assert list(table["rank"]) == [1, 1, 3, 4]
    assert list(table["accuracy"]) == [0.90, 0.90, 0.80, 0.60]
    assert set(SPEC.metrics) <= set(table.columns)
    assert table["f1_macro"][0] == pytest.approx(0.89)
    assert list(table["95% interval"])[0] == "0.890 – 0.910"
    # Overlapping intervals: not significantly different from the row above.
    assert list(table["≈"]) == ["", "≈", "", ""]
    assert list(table["source"]) == ["submitted"] * 4
    assert list(table["parameters"]) == ["22k"] * 4
    assert list(table["page"])[3] == "model?model=%2Fdata%2Fmodels%2Fmodel-d"
    caption = at.caption[0].value
    assert "accuracy" in caption and "higher is better" in caption and "4 ranked" in caption


def test_a_lower_is_better_spec_ranks_the_smallest_first(evalboard_home: Path) -> None:
    from tests.catalog_plugins import LOWER_IS_BETTER

    result("model-a", 0.30, spec=LOWER_IS_BETTER)
    result("model-b", 0.10, spec=LOWER_IS_BETTER)

    at = view("leaderboard.py")

    assert list(grid(at)["model"]) == ["model-b", "model-a"]
    assert "lower is better" in at.caption[0].value


def test_the_view_and_every_filter_come_from_and_go_to_the_url(evalboard_home: Path) -> None:
    result("digits-model", 0.9, dataset="digits")
    result("fashion-alpha", 0.6, dataset="fashion", split="validation", submitter="alice")
    result("fashion-beta", 0.7, dataset="fashion", split="validation", submitter="bob")

    at = view("leaderboard.py", dataset="fashion", q="ALPHA", submitter="alice")

    assert not at.exception
    assert at.selectbox(key="board_dataset").value == "fashion"
    assert at.selectbox(key="board_split").options == ["validation"]
    assert list(grid(at)["model"]) == ["fashion-alpha"]
    assert param(at, "q") == ["ALPHA"]
    assert param(at, "submitter") == ["alice"]
    assert param(at, "split") == ["validation"]

    at.selectbox(key="board_metric").select("f1_macro").run()
    assert param(at, "metric") == ["f1_macro"]
    at.text_input(key="board_search").input("").run()
    at.multiselect(key="board_submitters").set_value([]).run()
    assert list(grid(at)["model"]) == ["fashion-beta", "fashion-alpha"]
    assert "q" not in at.query_params and "submitter" not in at.query_params


def test_stale_rows_are_shown_unranked_and_baselines_shown_never_ranked(
    evalboard_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = secrets.token_urlsafe(24)
    monkeypatch.setenv("EVALBOARD_ADMIN_SECRET", secret)
    reset_settings_cache()
    result("current", 0.8)
    moved = result("moved", 0.95)
    baseline = result("paper-baseline", 0.85)
    hidden = result("spam", 0.99)
    with session_scope() as session:  # "moved" was seen since with new weights
        get_or_create_model_ref(
            session, ModelRefCreate(source="local", name="moved", resolved_revision="new")
        )
    moderate(baseline, "baseline", secret=secret)
    moderate(hidden, "hide", secret=secret, reason="duplicate of another entry")

    at = view("leaderboard.py")

    table = grid(at)
    assert list(table["model"]) == ["paper-baseline", "current", "moved"]
    assert list(table["rank"].astype(object).where(table["rank"].notna(), None)) == [
        None, 1, None,
    ]  # fmt: skip
    assert list(table["source"]) == ["baseline", "submitted", "submitted"]
    assert list(table["status"]) == ["baseline", "ranked", "stale: model changed since"]
    assert "1 ranked, 1 stale, 1 baseline" in at.caption[0].value
    assert moved not in {int(x) for x in table["rank"].dropna()}


def test_a_big_board_is_sent_one_page_at_a_time(evalboard_home: Path) -> None:
    for index in range(120):
        result(f"model-{index:03d}", 0.5 + index / 1000)

    first = view("leaderboard.py")
    assert len(grid(first)) == 50
    assert list(grid(first)["rank"])[:2] == [1, 2]
    assert "Page 1 of 3 · 120 rows match" in [c.value for c in first.caption]

    last = view("leaderboard.py", page="3")
    assert len(grid(last)) == 20
    assert list(grid(last)["rank"])[-1] == 120
    last.button(key="board_previous").click().run()
    assert param(last, "page") == ["2"]
    assert list(grid(last)["rank"])[0] == 51


def test_the_downloads_hold_the_filtered_view_as_csv_and_json(
    evalboard_home: Path, served_files
) -> None:
    result("=cmd|' /C calc'!A0", 0.9)
    result("alpha", 0.8)
    result("beta", 0.7)

    at = view("leaderboard.py", q="a")  # =cmd… and alpha and beta all hold an "a"
    csv_button, json_button = at.get("download_button")
    del csv_button, json_button
    manager = served_files[-1]
    contents = {}
    for button in at.get("download_button"):
        url = manager.execute_deferred(button.proto.deferred_file_id)
        served = manager.read_file(url.rsplit("/", 1)[-1].split(".")[0])
        contents[str(served.filename).rsplit(".", 1)[1]] = served.content
    rows = json.loads(contents["json"])
    assert [row["rank"] for row in rows] == [1, 2, 3]
    assert set(rows[0]) >= {
        "rank", "model", "display_name", "revision", "source", "value", "ci_low", "ci_high",
        "metric", "metrics", "n_samples", "submission_id",
    }  # fmt: skip
    table = list(csv.DictReader(io.StringIO(contents["csv"].decode())))
    assert table[0]["model"].startswith("'=cmd")  # a spreadsheet will not run it
    assert float(table[1]["metric_f1_macro"]) == pytest.approx(rows[1]["metrics"]["f1_macro"])
    assert json.loads(table[0]["stale_reasons"]) == []


def test_a_model_page_has_its_history_provenance_classes_and_card_snippet(
    evalboard_home: Path,
) -> None:
    first = result("/models/resnet", 0.5, revision="aaa")
    latest = result(
        "/models/resnet", 0.75, revision="bbb",
        provenance={"precision": "fp32", "device": "cpu", "images_per_s": 512.0,
                    "packages": {"torch": "2.13.0"}, "dataset_fingerprint": "fp-digits"},
    )  # fmt: skip
    references = np.array([0, 0, 1, 1, 2, 2, 2, 1])
    predicted = np.array([0, 1, 1, 1, 2, 0, 2, 1])
    top_k = np.stack([predicted, (predicted + 1) % 3], axis=1)
    with session_scope() as session:
        store_predictions(
            session, latest, references=references, top_k=top_k, class_names=["cat", "dog", "owl"]
        )

    at = view("model.py", model="/models/resnet")

    assert not at.exception
    history = at.dataframe[0].value
    assert list(history["submission"]) == [first, latest]
    assert list(history["changed"]) == ["first result", "model revision"]
    metrics, classes, provenance = (frame.value for frame in at.dataframe[1:4])
    assert list(metrics["metric"])[:2] == ["accuracy", "f1_macro"]
    assert list(classes["class"]) == ["cat", "dog", "owl"]
    assert list(classes["samples"]) == [2, 3, 3]
    assert list(classes["accuracy"]) == pytest.approx([0.5, 1.0, 2 / 3])
    facts = dict(zip(provenance[""], provenance["value"], strict=True))
    assert facts["model revision (sha)"] == "bbb"
    assert facts["precision"] == "fp32" and facts["device"] == "cpu"
    assert facts["spec"] == SPEC.label
    assert "torch 2.13.0" in facts["packages"]
    assert len(at.get("vega_lite_chart")) == 2  # score over time, confusion matrix
    card = yaml.safe_load(at.code[0].value)
    (entry,) = card["model-index"][0]["results"]
    assert entry["dataset"]["split"] == "test"
    values = {m["type"]: m["value"] for m in entry["metrics"]}
    assert values["accuracy"] == pytest.approx(0.75)
