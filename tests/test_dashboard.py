"""The Streamlit dashboard, page by page, through streamlit.testing's AppTest."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.models import Submission
from db.results import complete_submission
from db.schemas import DatasetRefCreate, MetricResult, ModelRefCreate, SubmissionCreate
from db.session import session_scope
from db.submissions import claim_submission, create_submission
from tests import factories

pytestmark = pytest.mark.usefixtures("fresh_streamlit_caches")

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "dashboard"
TIMEOUT_S = 30
SCRIPT_TAG = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def local_model(data_root: Path) -> Path:
    """An untrained tiny classifier folder under an allowed path; nothing here runs it."""
    return factories.make_resnet(data_root / "dashboard-resnet")


def page(name: str) -> AppTest:
    return AppTest.from_file(str(DASHBOARD / "views" / name), default_timeout=TIMEOUT_S)


def new_submission(
    model: str, *, dataset: str = "digits", submitter: str = "tester", spec=factories.SPEC
) -> int:
    request = SubmissionCreate(
        submitter=submitter,
        model=ModelRefCreate(source="local", name=model, resolved_revision=f"rev-{model}"),
        dataset=DatasetRefCreate(source="local", name=dataset, fingerprint=f"fp-{dataset}"),
        task=spec.task,
        spec_name=spec.name,
        spec_version=spec.version,
    )
    with session_scope() as session:
        return create_submission(session, request).id


def record_result(
    model: str,
    value: float,
    *,
    dataset: str = "digits",
    split: str = "test",
    metric: str = "accuracy",
    higher_is_better: bool = True,
    spec=factories.SPEC,
) -> int:
    """A succeeded submission of ``model`` with one stored metric value."""
    submission_id = new_submission(model, dataset=dataset, spec=spec)
    with session_scope() as session:
        assert claim_submission(session, submission_id)
        assert complete_submission(
            session,
            submission_id,
            metrics=[MetricResult(metric=metric, value=value, higher_is_better=higher_is_better)],
            n_samples=359,
            provenance={"split": split},
        )
    return submission_id


def all_submissions() -> list[Submission]:
    with session_scope() as session:
        return list(session.scalars(select(Submission).order_by(Submission.id)).unique())


def fill_submit_form(at: AppTest, *, model: str, dataset: str, **fields: str) -> AppTest:
    at.text_input(key="submit_model").input(model)
    at.text_input(key="submit_dataset").input(dataset)
    for name, value in fields.items():
        at.text_input(key=f"submit_{name}").input(value)
    return at


# --- Submit ---------------------------------------------------------------------------------


def test_submit_form_queues_one_submission_and_shows_its_id(
    evalboard_home: Path, digits, local_model: Path
) -> None:
    at = page("submit.py").run()
    assert not at.exception
    fill_submit_form(
        at,
        model=str(local_model),
        dataset=str(digits.parquet),
        split="test",
        submitter="alice",
    )
    at.form_submit_button[0].click().run()

    assert not at.exception
    assert [error.value for error in at.error] == []
    submissions = all_submissions()
    assert len(submissions) == 1
    submission = submissions[0]
    assert submission.state == "queued"
    assert submission.kind == "evaluate"
    assert submission.model.name == str(local_model.resolve())
    assert submission.model.source == "local"
    assert submission.dataset.name == str(digits.parquet.resolve())
    assert submission.split == "test"
    assert submission.column_mapping == {"image": "image", "label": "label"}
    assert submission.submitter == "alice"
    assert submission.celery_task_id  # enqueued on the broker
    assert [message.value for message in at.success] == [
        f"Queued submission {submission.id}. Follow it on the Submissions page."
    ]


@pytest.mark.parametrize(
    ("dataset", "category", "problem"),
    [
        ("/etc", "refused", "outside the allowed folders"),
        ("{home}/missing-dataset", "not_found", "does not exist"),
    ],
)
def test_submit_with_bad_dataset_shows_the_problem_and_queues_nothing(
    evalboard_home: Path, local_model: Path, dataset: str, category: str, problem: str
) -> None:
    at = page("submit.py").run()
    fill_submit_form(at, model=str(local_model), dataset=dataset.format(home=evalboard_home))
    at.form_submit_button[0].click().run()

    assert not at.exception
    assert not at.success
    assert len(at.error) == 1
    message = at.error[0].value.replace("\\", "")  # markdown escapes are not part of the words
    assert message.startswith(f"**{category}**")
    assert problem in message
    assert all_submissions() == []


def test_submit_with_same_image_and_label_column_is_refused(
    evalboard_home: Path, digits, local_model: Path
) -> None:
    at = page("submit.py").run()
    fill_submit_form(at, model=str(local_model), dataset=str(digits.parquet), label_column="image")
    at.form_submit_button[0].click().run()

    assert len(at.error) == 1
    assert at.error[0].value.startswith("**bad_input**")
    assert "must be different columns" in at.error[0].value
    assert all_submissions() == []


def test_submit_error_shows_markdown_from_the_input_as_literal_text(
    evalboard_home: Path, digits
) -> None:
    at = page("submit.py").run()
    fill_submit_form(at, model="[x](javascript:alert(1))", dataset=str(digits.parquet))
    at.form_submit_button[0].click().run()

    assert len(at.error) == 1
    # Escaped, the link syntax renders as the characters typed, not as a link.
    assert r"\[x\]\(javascript\:alert\(1\)\)" in at.error[0].value
    assert all_submissions() == []


# --- Leaderboard ----------------------------------------------------------------------------


def test_leaderboard_without_results_invites_a_submission(evalboard_home: Path) -> None:
    at = page("leaderboard.py").run()

    assert not at.exception
    assert [info.value for info in at.info] == ["No results yet: submit an evaluation."]
    assert not at.dataframe


# --- Submissions ----------------------------------------------------------------------------


def test_submissions_page_shows_a_script_model_name_as_plain_text(evalboard_home: Path) -> None:
    new_submission(SCRIPT_TAG)

    at = page("submissions.py").run()

    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["model"]) == [SCRIPT_TAG]
    assert list(table["state"]) == ["queued"]
    assert list(table["queue_position"]) == ["1"]
    assert not at.get("html")
    markdown = [*at.markdown, *at.caption, *at.info, *at.success, *at.warning, *at.error]
    assert all("<script" not in element.value for element in markdown)
    assert not any(getattr(element.proto, "allow_html", False) for element in at.markdown)


def test_submissions_page_shows_progress_and_queue_positions(evalboard_home: Path) -> None:
    running = new_submission("running-model")
    first = new_submission("first-in-line")
    second = new_submission("second-in-line")
    with session_scope() as session:
        assert claim_submission(session, running)
        session.get(Submission, running).progress = 0.4

    at = page("submissions.py").run()

    table = at.dataframe[0].value.set_index("id")
    assert table.loc[first, "queue_position"] == "1"
    assert table.loc[second, "queue_position"] == "2"
    assert table.loc[running, "state"] == "running"
    assert table.loc[running, "queue_position"] == ""  # an empty cell, never "None"
    progress_bars = at.get("progress")
    assert len(progress_bars) == 1
    assert progress_bars[0].proto.value == 40


def test_submissions_page_shows_the_split_an_evaluation_measured(evalboard_home: Path) -> None:
    measured = record_result("left-to-the-spec", 0.9, split="validation")  # no split asked for
    waiting = new_submission("still-queued")

    at = page("submissions.py").run()

    table = at.dataframe[0].value.set_index("id")
    assert table.loc[measured, "split"] == "validation"
    assert table.loc[waiting, "split"] == ""  # not chosen yet: an empty cell


def test_cancel_marks_a_queued_submission_cancelled(evalboard_home: Path) -> None:
    keep = new_submission("keep-me")
    cancel = new_submission(SCRIPT_TAG)

    at = page("submissions.py").run()
    at.number_input(key="cancel_id").set_value(cancel)
    at.button(key="cancel").click().run()

    assert not at.exception
    states = {submission.id: submission.state for submission in all_submissions()}
    assert states == {keep: "queued", cancel: "cancelled"}
    assert [message.value for message in at.success] == [f"Cancelled submission {cancel}."]
    table = at.dataframe[0].value.set_index("id")
    assert table.loc[cancel, "state"] == "cancelled"
    assert table.loc[cancel, "failure_category"] == "cancelled"


def test_cancel_of_a_finished_submission_changes_nothing(evalboard_home: Path) -> None:
    finished = record_result("done-model", 0.5)

    at = page("submissions.py").run()
    at.number_input(key="cancel_id").set_value(finished)
    at.button(key="cancel").click().run()

    assert not at.success
    assert "nothing to cancel" in at.warning[0].value
    assert [submission.state for submission in all_submissions()] == ["succeeded"]


# --- The app as a whole ---------------------------------------------------------------------


def test_app_opens_on_the_leaderboard_and_reaches_every_page(evalboard_home: Path) -> None:
    record_result("model-a", 0.9)
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=TIMEOUT_S).run()

    assert not at.exception
    assert at.title[0].value == "Leaderboard"
    assert list(at.dataframe[0].value["model"]) == ["model-a"]
    for path, title in [
        ("views/submit.py", "Submit an evaluation"),
        ("views/submissions.py", "Submissions"),
        ("views/model.py", "Models"),
        ("views/train.py", "Fine-tune a model"),
        ("views/admin.py", "Admin"),
    ]:
        at.switch_page(path).run()
        assert not at.exception
        assert at.title[0].value == title
        assert at.sidebar.text_input  # the router drew the sidebar on every page


def test_dashboard_never_imports_model_or_dataset_libraries(
    evalboard_home: Path, digits, local_model: Path
) -> None:
    # A fresh interpreter: this test process already imported torch to build the fixtures.
    script = textwrap.dedent(
        f"""
        import json, sys
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file({str(DASHBOARD / "app.py")!r}, default_timeout=60).run()
        at.switch_page("views/submit.py").run()
        at.text_input(key="submit_model").input({str(local_model)!r})
        at.text_input(key="submit_dataset").input({str(digits.parquet)!r})
        at.form_submit_button[0].click().run()
        success = [s.value for s in at.success]
        errors = [e.value for e in at.error]
        at.switch_page("views/submissions.py").run()
        submissions = at.dataframe[0].value.to_dict("records")
        heavy = ("torch", "transformers", "datasets", "worker.evaluation", "worker.jobs")
        print(json.dumps({{
            "loaded": sorted(m for m in sys.modules if m.split(".")[0] in heavy[:3]
                             or m.startswith(heavy[3:])),
            "exceptions": [e.value for e in at.exception],
            "success": success,
            "errors": errors,
            "states": [submission["state"] for submission in submissions],
        }}))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    assert outcome["exceptions"] == []
    assert outcome["errors"] == []
    assert len(outcome["success"]) == 1
    assert outcome["states"] == ["queued"]
    assert outcome["loaded"] == []
