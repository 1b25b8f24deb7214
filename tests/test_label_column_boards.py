"""Two label columns of one dataset and split are two boards: ranked, listed, chosen,
re-evaluated, exported and shown apart, through the real CLI, worker and dashboard."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score
from sqlalchemy import insert, select
from streamlit.testing.v1 import AppTest

from db.identity import columns_key
from db.leaderboard import model_rank
from db.models import Result, Submission
from db.predictions import load_predictions
from db.session import session_scope
from evalboard import catalog
from tests import factories, servers
from tests.conftest import TinyModels
from tests.servers import wait_for
from tests.test_end_to_end import ROOT, evalboard, run_json
from tests.test_leaderboard_cli import result as leaderboard_result

SPEC = factories.SPEC
TASK = SPEC.task
VIEWS = ROOT / "dashboard" / "views"
LABELS = ("fine_label", "shifted_label")


def write_two_label_digits(root: Path) -> tuple[Path, dict[str, list[int]]]:
    """Digits parquet with ``label`` and ``fine_label`` (the digit) and ``shifted_label``
    ((digit + 1) % 10), every one a ClassLabel of the digit names; returns the test split's
    columns as written."""
    import datasets

    names = datasets.ClassLabel(names=factories.DIGIT_NAMES)
    features = datasets.Features({
        "image": datasets.Image(), "label": names, "fine_label": names, "shifted_label": names,
    })  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[int]] = {}
    for split in ("train", "test"):
        images, labels = factories.digits_images(split)
        columns = {
            "label": labels, "fine_label": list(labels),
            "shifted_label": [(label + 1) % 10 for label in labels],
        }  # fmt: skip
        datasets.Dataset.from_dict({"image": images, **columns}, features=features).to_parquet(
            str(root / f"{split}.parquet")
        )
        if split == "test":
            written = columns
    return root, written


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return evalboard(*args, timeout=300)


def board_json(dataset: Path, *options: str) -> list[dict[str, Any]]:
    completed = cli("leaderboard", "--dataset", str(dataset), "--split", "test",
                    "--format", "json", *options)  # fmt: skip
    assert completed.returncode == 0, completed.stderr + completed.stdout
    rows: list[dict[str, Any]] = json.loads(completed.stdout)
    return rows


def columns_of(submission_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    with session_scope() as session:
        submission = session.get(Submission, submission_id)
        assert submission is not None
        return dict(submission.column_mapping), dict(submission.parameters)


def sklearn_accuracy(submission_id: int, truth: list[int]) -> float:
    """scikit-learn's accuracy of the model's stored top-1 predictions against ``truth``."""
    with session_scope() as session:
        stored = load_predictions(session, submission_id)
    assert stored is not None and len(stored.predictions) == len(truth)
    return float(accuracy_score(truth, stored.predictions))


def test_two_label_columns_are_two_boards_end_to_end(
    backend, start_worker, data_root: Path, tiny_models: TinyModels, fresh_streamlit_caches
) -> None:
    root = data_root / f"two-labels-{backend.name}"
    dataset, truth = write_two_label_digits(root / "digits")
    model = root / "good-model"
    shutil.copytree(tiny_models.trained_resnet, model)
    start_worker()
    batch_sizes = {"fine_label": 7, "shifted_label": 16}
    first = {
        label: run_json("submit", "--model", str(model), "--dataset", str(dataset),
                        "--label-column", label, "--batch-size", str(batch_sizes[label]),
                        "--wait")
        for label in LABELS
    }  # fmt: skip
    assert all(report["state"] == "succeeded" for report in first.values()), first
    ids = {label: report["submission_id"] for label, report in first.items()}

    # Each board keeps its own value; scikit-learn agrees on the model's own predictions.
    fine = board_json(dataset, "--label-column", "fine_label")
    shifted = board_json(dataset, "--column", "label=shifted_label")
    assert [row["submission_id"] for row in fine] == [ids["fine_label"]]
    assert [row["submission_id"] for row in shifted] == [ids["shifted_label"]]
    assert fine[0]["value"] == pytest.approx(sklearn_accuracy(ids["fine_label"], truth["label"]))
    assert shifted[0]["value"] == pytest.approx(
        sklearn_accuracy(ids["shifted_label"], truth["shifted_label"])
    )
    assert fine[0]["value"] > 0.9 and shifted[0]["value"] < 0.1
    assert fine[0]["columns"] == {"image": "image", "label": "fine_label"}
    assert shifted[0]["columns"] == {"image": "image", "label": "shifted_label"}
    assert fine[0]["rank"] == shifted[0]["rank"] == 1
    with session_scope() as session:
        top1 = [load_predictions(session, ids[label]).predictions for label in LABELS]  # type: ignore[union-attr]
    assert np.array_equal(*top1)  # the same model on the same images: only the column differs

    # Not told which board, with no board of the default column: refused, listing both.
    ambiguous = cli("leaderboard", "--dataset", str(dataset), "--split", "test")
    assert ambiguous.returncode == 2
    assert "bad_input" in ambiguous.stderr
    assert "fine_label" in ambiguous.stderr and "shifted_label" in ambiguous.stderr
    assert "--label-column" in ambiguous.stderr
    csv_export = cli("leaderboard", "--dataset", str(dataset), "--split", "test",
                     "--label-column", "shifted_label", "--format", "csv")  # fmt: skip
    assert '"label"": ""shifted_label""' in csv_export.stdout  # the columns, as JSON in a cell

    history = run_json("history", "--model", str(model))
    assert [entry["submission_id"] for entry in history] == [ids[label] for label in LABELS]
    assert [entry["columns"]["label"] for entry in history] == list(LABELS)
    assert [entry["changed"] for entry in history] == [None, None]  # two boards, two firsts
    text = cli("history", "--model", str(model)).stdout
    assert "label=fine_label" in text and "label=shifted_label" in text

    # The model changes: each board's submission is re-run once, with its own parameters.
    factories.permute_labels(tiny_models.trained_resnet, model, [3, 1, 4, 0, 5, 9, 2, 6, 8, 7])
    only_fine = run_json("reevaluate", "--due", "--dry-run", "--label-column", "fine_label")
    assert [entry["columns"]["label"] for entry in only_fine["due"]] == ["fine_label"]
    checks = [
        subprocess.Popen(
            [sys.executable, "-m", "evalboard.cli", "reevaluate", "--due", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )  # fmt: skip
        for _ in range(2)
    ]
    outputs = [check.communicate(timeout=300) for check in checks]
    assert all(check.returncode == 0 for check in checks), outputs
    queued = [entry for out, _ in outputs for entry in json.loads(out)["due"]]
    reruns = {entry["columns"]["label"]: entry["submission_id"] for entry in queued}
    assert set(reruns) == set(LABELS)
    assert len({entry["submission_id"] for entry in queued}) == 2
    assert sum(not entry["duplicate"] for entry in queued) == 2  # exactly once each
    assert {entry["last_submission_id"] for entry in queued} == set(ids.values())

    def finished() -> bool:
        return all(
            run_json("status", str(i))["state"] in ("succeeded", "failed") for i in reruns.values()
        )

    wait_for(finished, 300, "the re-evaluations never finished")
    for label in LABELS:
        rerun = run_json("status", str(reruns[label]))
        assert rerun["state"] == "succeeded", rerun
        assert rerun["supersedes_submission_id"] == ids[label]
        assert rerun["spec_name"] == first[label]["spec_name"]
        assert rerun["split"] == "test"
        assert rerun["provenance"]["batch_size"] == batch_sizes[label]
        assert columns_of(reruns[label]) == columns_of(ids[label])
        assert columns_of(reruns[label])[0]["label"] == label
    with session_scope() as session:
        evaluations = session.scalars(select(Submission).order_by(Submission.id)).unique().all()
        assert sorted(s.column_mapping["label"] for s in evaluations) == sorted(LABELS * 2)

    fine, shifted = (board_json(dataset, "--label-column", label) for label in LABELS)
    assert [row["submission_id"] for row in fine] == [reruns["fine_label"]]
    assert [row["submission_id"] for row in shifted] == [reruns["shifted_label"]]
    assert fine[0]["value"] == pytest.approx(
        sklearn_accuracy(reruns["fine_label"], truth["fine_label"])
    )
    assert fine[0]["value"] > 0.9 and shifted[0]["value"] < 0.1
    assert board_json(dataset, "--label-column", "label") == []  # no board was made anew
    history = run_json("history", "--model", str(model), "--label-column", "shifted_label")
    assert [entry["submission_id"] for entry in history] == [
        ids["shifted_label"], reruns["shifted_label"],
    ]  # fmt: skip
    assert history[1]["changed"] == ["model revision"]
    assert run_json("reevaluate", "--due", "--dry-run")["due"] == []

    # The dashboard: a label-column selector, and the URL names the board.
    at = AppTest.from_file(str(VIEWS / "leaderboard.py"), default_timeout=60)
    at.query_params["label"] = "shifted_label"
    at.run()
    assert not at.exception
    assert at.selectbox(key="board_label").options == list(LABELS)
    assert at.selectbox(key="board_label").value == "shifted_label"
    assert list(at.dataframe[0].value["accuracy"]) == [pytest.approx(shifted[0]["value"])]


# ---- boards made directly in the database: the choice of a board, the dashboard, ranks ------


def result(
    model: str,
    accuracy: float,
    *,
    label: str | None = None,
    dataset: str = "/data/digits",
    image: str | None = None,
) -> int:
    """A succeeded evaluation of ``model`` read with ``label`` (None: no mapping stored)."""
    columns = {} if label is None else {"image": image or "image", "label": label}
    return leaderboard_result(model, accuracy, dataset=dataset, columns=columns)


def cli_board(*options: str) -> subprocess.CompletedProcess[str]:
    return cli("leaderboard", "--dataset", "/data/digits", "--split", "test", *options)


def test_an_unnamed_board_is_the_only_one_or_the_default_columns_one(
    evalboard_home: Path,
) -> None:
    default = result("/models/a", 0.9)  # stored as {}: the defaults, image and label
    explicit = result("/models/b", 0.8, label="label")  # the same board, spelled out
    shifted = result("/models/a", 0.1, label="shifted_label")

    rows = json.loads(cli_board("--format", "json").stdout)
    assert [row["submission_id"] for row in rows] == [default, explicit]
    assert rows[0]["columns"] == {"image": "image", "label": "label"}
    completed = cli_board()
    assert completed.returncode == 0
    assert "label column label" in completed.stdout
    # It says that another board exists, on stderr, so that the table stays a table.
    assert "shifted_label" in completed.stderr and "--label-column" in completed.stderr
    only = json.loads(cli_board("--format", "json", "--label-column", "shifted_label").stdout)
    assert [row["submission_id"] for row in only] == [shifted]

    typo = cli_board("--format", "json", "--label-column", "shifted_lable")
    assert typo.returncode == 0 and json.loads(typo.stdout) == []
    assert "shifted_label" in typo.stderr  # the boards that do exist


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_several_boards_and_none_the_default_are_refused_listing_the_label_columns(
    evalboard_home: Path, fmt: str
) -> None:
    result("/models/a", 0.98, label="fine_label")
    result("/models/a", 0.002, label="shifted_label")
    result("/models/a", 0.5, label="fine_label", image="img")

    completed = cli_board("--format", fmt)

    assert completed.returncode == 2
    shown = json.loads(completed.stdout)["error"]["message"] if fmt == "json" else completed.stderr
    assert "3 boards" in shown
    for name in ("fine_label, ", "shifted_label", "fine_label (image: img)", "--label-column"):
        assert name in shown
    # Naming the label column leaves two boards: the one on the default image column wins.
    rows = json.loads(cli_board("--format", "json", "--label-column", "fine_label").stdout)
    assert [row["value"] for row in rows] == [0.98]
    rows = json.loads(
        cli_board("--format", "json", "--label-column", "fine_label", "--column", "image=img")
        .stdout
    )  # fmt: skip
    assert [row["value"] for row in rows] == [0.5]


@pytest.mark.parametrize("role", ["colour", "labels", "Image", "ｌabel"])
def test_a_column_role_that_no_task_has_is_refused_by_name(evalboard_home: Path, role: str) -> None:
    commands = [
        ("leaderboard", "--dataset", "/d", "--split", "test"),
        ("history", "--model", "/m"),
        ("reevaluate", "--all", "--dry-run"),
    ]
    for command in commands:
        completed = cli(*command, "--column", f"{role}=x")
        assert completed.returncode == 2, completed
        assert "bad_input" in completed.stderr and "role" in completed.stderr


def test_a_rank_and_the_webhook_rank_are_those_of_the_result_own_board(
    evalboard_home: Path,
) -> None:
    result("/models/a", 0.9, label="fine_label")
    result("/models/b", 0.8, label="fine_label")
    result("/models/a", 0.1, label="shifted_label")
    result("/models/b", 0.2, label="shifted_label")

    with session_scope() as session:

        def rank(model: str, label: str) -> int | None:
            return model_rank(
                session, model=model, dataset="/data/digits", config="default", split="test",
                spec_name=SPEC.name, columns={"image": "image", "label": label},
            )  # fmt: skip

        assert [rank("/models/a", "fine_label"), rank("/models/b", "fine_label")] == [1, 2]
        assert [rank("/models/a", "shifted_label"), rank("/models/b", "shifted_label")] == [2, 1]


def test_the_dashboard_selects_the_board_by_label_column_from_and_into_the_url(
    evalboard_home: Path, fresh_streamlit_caches
) -> None:
    result("/models/good", 0.9819, label="fine_label")
    result("/models/good", 0.0020, label="shifted_label")
    result("/models/other", 0.5, label="shifted_label")

    at = AppTest.from_file(str(VIEWS / "leaderboard.py"), default_timeout=30)
    at.query_params["label"] = "shifted_label"
    at.run()

    assert not at.exception
    selector = at.selectbox(key="board_label")
    assert selector.options == ["fine_label", "shifted_label"]
    assert selector.value == "shifted_label"
    assert list(at.dataframe[0].value["accuracy"]) == [0.5, 0.002]
    assert r"label column shifted\_label" in at.caption[0].value  # escaped for markdown

    selector.select("fine_label").run()
    assert at.query_params["label"] in ("fine_label", ["fine_label"])
    assert list(at.dataframe[0].value["accuracy"]) == [0.9819]

    from dashboard import data

    exported = json.loads(data.leaderboard_export(
        SPEC.name, "/data/digits", "default", "test", "accuracy", data.BoardFilters(), "json",
        columns=json.dumps({"image": "image", "label": "shifted_label"}),
    ))  # fmt: skip
    assert [row["value"] for row in exported] == [0.5, 0.002]
    assert {row["columns"]["label"] for row in exported} == {"shifted_label"}

    model_page = AppTest.from_file(str(VIEWS / "model.py"), default_timeout=30)
    model_page.query_params["model"] = "/models/good"
    model_page.run()
    assert not model_page.exception
    results = model_page.dataframe[0].value
    assert sorted(results["label column"]) == ["fine_label", "shifted_label"]
    assert all("label=" in link and "split=test" in link for link in results["board"])


# ---- the choice of a board, by property -----------------------------------------------------

COLUMN = st.sampled_from(["image", "img", "label", "fine_label", "shifted_label", "x"])


@st.composite
def mappings(draw: st.DrawFn) -> dict[str, str]:
    image, label = draw(COLUMN), draw(COLUMN)
    return {"image": image, "label": label}


@settings(max_examples=300, deadline=None)
@given(
    available=st.lists(mappings().filter(lambda m: m["image"] != m["label"]), max_size=6),
    label=st.none() | COLUMN,
    image=st.none() | COLUMN,
)
def test_the_board_chosen_agrees_with_what_was_asked_or_none_is(
    available: list[dict[str, str]], label: str | None, image: str | None
) -> None:
    from db.board_choices import default_columns, matching_columns
    from evalboard.errors import BadInputError

    asked = {role: value for role, value in (("label", label), ("image", image)) if value}
    try:
        wanted = catalog.task(TASK).column_mapping(asked)
    except BadInputError:
        return  # the same column for two roles: refused before any board is chosen
    candidates = matching_columns(available, asked)
    chosen = default_columns(TASK, available, asked)
    if chosen is None:  # ambiguous: several boards match and none is the default one
        assert len({json.dumps(c, sort_keys=True) for c in candidates}) > 1
        assert wanted not in candidates
        return
    assert all(chosen[role] == value for role, value in asked.items())
    assert chosen in candidates or (chosen == wanted and not candidates)
    if wanted in candidates:
        assert chosen == wanted


def test_an_empty_mapping_and_the_spelled_out_defaults_are_one_board_two_labels_two() -> None:
    assert columns_key(TASK, {}) == columns_key(TASK, {"label": "label", "image": "image"})
    assert columns_key(TASK, {}) == columns_key(TASK, {"label": "label"})
    assert columns_key(TASK, {"label": "fine_label"}) != columns_key(
        TASK, {"label": "shifted_label"}
    )
    assert columns_key(TASK, {"label": "fine_label"}) != columns_key(TASK, {})


# ---- the migration: rows stored before it get their board --------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_migration_keys_older_results_on_their_column_mapping(
    database: str, tmp_path: Path
) -> None:
    from contextlib import nullcontext
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from db.migrate import upgrade
    from db.session import dispose_engines

    def table(name: str, *names: str, json_columns: tuple[str, ...] = ()) -> sa.TableClause:
        # The tables as they are at 0008, not as the models are now.
        return sa.table(name, *(sa.column(n) for n in names),
                        *(sa.column(n, sa.JSON) for n in json_columns))  # fmt: skip

    now = datetime.now(UTC)
    context = (
        nullcontext(f"sqlite:///{tmp_path / 'old.db'}")
        if database == "sqlite"
        else servers.postgres_database()
    )
    stored: dict[int, dict[str, str]] = {
        1: {}, 2: {"image": "image", "label": "label"},
        3: {"image": "image", "label": "shifted_label"},
    }  # fmt: skip
    with context as url:
        upgrade(url, "0008")
        with session_scope(url) as session:
            connection = session.connection()
            connection.execute(
                insert(table("model_refs", "id", "source", "name", "resolved_revision",
                             "created_at")),
                [{"id": 1, "source": "local", "name": "/m", "resolved_revision": "r",
                  "created_at": now}],
            )  # fmt: skip
            connection.execute(
                insert(table("dataset_refs", "id", "source", "name", "config", "fingerprint",
                             "created_at")),
                [{"id": 1, "source": "local", "name": "/d", "config": "default",
                  "fingerprint": "f", "created_at": now}],
            )  # fmt: skip
            connection.execute(
                insert(table("submissions", "id", "kind", "task", "submitter", "model_id",
                             "dataset_id", "spec_name", "spec_version", "trigger", "state",
                             "progress", "attempts", "created_at",
                             json_columns=("column_mapping", "parameters"))),
                [{"id": i, "kind": "evaluate", "task": TASK, "submitter": "t", "model_id": 1,
                  "dataset_id": 1, "column_mapping": mapping, "parameters": {},
                  "spec_name": SPEC.name, "spec_version": SPEC.version, "trigger": "submitted",
                  "state": "succeeded", "progress": 1.0, "attempts": 1, "created_at": now}
                 for i, mapping in stored.items()],
            )  # fmt: skip
            connection.execute(
                insert(table("results", "submission_id", "model_id", "model_name",
                             "dataset_id", "task", "split", "metric", "value",
                             "higher_is_better", "n_samples", "spec_name", "spec_version",
                             "model_revision", "dataset_fingerprint", "created_at",
                             json_columns=("provenance",))),
                [{"submission_id": i, "model_id": 1, "model_name": "/m", "dataset_id": 1,
                  "task": TASK, "split": "test", "metric": metric, "value": 0.5,
                  "higher_is_better": True, "n_samples": 1, "spec_name": SPEC.name,
                  "spec_version": SPEC.version, "model_revision": "r",
                  "dataset_fingerprint": "f", "provenance": {}, "created_at": now}
                 for i in stored for metric in ("accuracy", "f1_macro")],
            )  # fmt: skip
        upgrade(url)
        with session_scope(url) as session:
            keys = dict(session.execute(select(Result.submission_id, Result.columns_key)).all())
        dispose_engines()
    assert keys == {i: columns_key(TASK, mapping) for i, mapping in stored.items()}
    assert keys[1] == keys[2] != keys[3]
