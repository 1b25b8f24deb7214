"""Who may do what on the dashboard: tokens, the admin secret and anonymous local use."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from dashboard.identity import (
    ANONYMOUS_ALLOWED,
    SECRET_INPUT_KEY,
    SECRET_KEY,
    TOKEN_INPUT_KEY,
    TOKEN_KEY,
)
from db.models import Submission
from db.results import complete_submission
from db.schemas import DatasetRefCreate, MetricResult, ModelRefCreate, SubmissionCreate
from db.session import session_scope
from db.submissions import claim_submission, create_submission
from db.tokens import issue_token, revoke_token
from evalboard.settings import reset_settings_cache
from tests import factories

pytestmark = pytest.mark.usefixtures("fresh_streamlit_caches")

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
TIMEOUT_S = 30


@pytest.fixture(scope="module")
def local_model(data_root: Path) -> Path:
    """An untrained tiny classifier folder under an allowed path; nothing here runs it."""
    return factories.make_resnet(data_root / "dashboard-access-resnet")


@pytest.fixture()
def admin_secret(evalboard_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Production rules: tokens needed to submit, this secret for the admin."""
    secret = secrets.token_urlsafe(32)
    monkeypatch.setenv("EVALBOARD_ENVIRONMENT", "production")
    monkeypatch.setenv("EVALBOARD_ADMIN_SECRET", secret)
    reset_settings_cache()
    st.cache_data.clear()
    return secret


def issue(submitter: str) -> tuple[int, str]:
    with session_scope() as session:
        return issue_token(session, submitter)


def revoke(token_id: int) -> None:
    with session_scope() as session:
        assert revoke_token(session, token_id)


def new_submission(model: str, *, submitter: str) -> int:
    request = SubmissionCreate(
        submitter=submitter,
        model=ModelRefCreate(source="local", name=model, resolved_revision=f"rev-{model}"),
        dataset=DatasetRefCreate(source="local", name="digits", fingerprint="fp-digits"),
        task=factories.SPEC.task,
        spec_name=factories.SPEC.name,
        spec_version=factories.SPEC.version,
    )
    with session_scope() as session:
        return create_submission(session, request).id


def states() -> dict[int, str]:
    with session_scope() as session:
        return {s.id: s.state for s in session.scalars(select(Submission)).unique()}


def all_submissions() -> list[Submission]:
    with session_scope() as session:
        return list(session.scalars(select(Submission).order_by(Submission.id)).unique())


def open_app(*, token: str | None = None, secret: str | None = None) -> AppTest:
    """The whole app, with the token and secret typed into its sidebar; the next run applies
    them (and, under AppTest, runs only the page: it reruns app.py on its first run alone)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert not at.exception
    if token is not None:
        at.sidebar.text_input(key=TOKEN_INPUT_KEY).input(token)
    if secret is not None:
        at.sidebar.text_input(key=SECRET_INPUT_KEY).input(secret)
    return at


def sidebar_of(*, token: str | None = None, secret: str | None = None) -> AppTest:
    """One run of the whole app for a session that already holds this token and secret."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    if token is not None:
        at.session_state[TOKEN_KEY] = token
    if secret is not None:
        at.session_state[SECRET_KEY] = secret
    at.run()
    assert not at.exception
    return at


def submit_form(at: AppTest, *, model: Path, dataset: Path, submitter: str) -> AppTest:
    at.switch_page("views/submit.py").run()
    at.text_input(key="submit_model").input(str(model))
    at.text_input(key="submit_dataset").input(str(dataset))
    at.text_input(key="submit_split").input("test")
    at.text_input(key="submit_submitter").input(submitter)
    at.form_submit_button[0].click().run()
    assert not at.exception
    return at


def submissions_page(at: AppTest) -> AppTest:
    at.switch_page("views/submissions.py").run()
    assert not at.exception
    return at


def cancel(at: AppTest, submission_id: int) -> AppTest:
    at.number_input(key="cancel_id").set_value(submission_id)
    at.button(key="cancel").click().run()
    assert not at.exception
    return at


def shown_models(at: AppTest) -> list[str]:
    return sorted(at.dataframe[0].value["model"]) if at.dataframe else []


def sidebar_text(at: AppTest) -> list[str]:
    return [element.value for element in [*at.sidebar.success, *at.sidebar.info]]


# --- Submitting in production ---------------------------------------------------------------


def test_production_submit_without_a_token_is_refused_and_queues_nothing(
    admin_secret: str, digits, local_model: Path
) -> None:
    at = submit_form(open_app(), model=local_model, dataset=digits.parquet, submitter="alice")

    assert not at.main.success
    assert len(at.main.error) == 1
    assert at.main.error[0].value.startswith("**refused**")
    assert "submitter token" in at.main.error[0].value.replace("\\", "")
    assert all_submissions() == []


def test_production_submit_with_a_token_records_the_tokens_submitter(
    admin_secret: str, digits, local_model: Path
) -> None:
    _, token = issue("alice")
    assert "Active identity: submitter alice." in sidebar_text(sidebar_of(token=token))

    at = submit_form(
        open_app(token=token), model=local_model, dataset=digits.parquet, submitter="mallory"
    )

    assert [error.value for error in at.main.error] == []
    [submission] = all_submissions()
    assert submission.state == "queued"
    assert submission.submitter == "alice"
    assert submission.celery_task_id
    assert [message.value for message in at.main.success] == [
        f"Queued submission {submission.id}. Follow it on the Submissions page."
    ]


def test_production_submit_with_a_revoked_token_is_refused(
    admin_secret: str, digits, local_model: Path
) -> None:
    token_id, token = issue("alice")
    revoke(token_id)
    assert "unknown or was revoked" in sidebar_of(token=token).sidebar.error[0].value

    at = submit_form(
        open_app(token=token), model=local_model, dataset=digits.parquet, submitter="alice"
    )

    assert not at.main.success
    assert at.main.error[0].value.startswith("**refused**")
    assert all_submissions() == []


def test_production_train_without_a_token_is_refused(
    admin_secret: str, digits, local_model: Path
) -> None:
    at = open_app()
    at.switch_page("views/train.py").run()
    at.text_input(key="train_model").input(str(local_model))
    at.text_input(key="train_dataset").input(str(digits.parquet))
    at.form_submit_button[0].click().run()

    assert not at.exception
    assert not at.main.success
    assert at.main.error[0].value.startswith("**refused**")
    assert all_submissions() == []


# --- Seeing and cancelling submissions in production ----------------------------------------


def test_production_submitter_sees_only_their_own_submissions(admin_secret: str) -> None:
    new_submission("alice-model", submitter="alice")
    new_submission("bob-model", submitter="bob")
    _, alice = issue("alice")

    assert shown_models(submissions_page(open_app(token=alice))) == ["alice-model"]
    assert shown_models(submissions_page(open_app(secret=admin_secret))) == [
        "alice-model",
        "bob-model",
    ]


def test_production_submissions_are_hidden_without_a_token(admin_secret: str) -> None:
    new_submission("alice-model", submitter="alice")

    at = submissions_page(open_app())

    assert not at.dataframe
    assert "submitter token" in at.main.info[0].value


def test_production_wrong_admin_secret_sees_nothing_and_is_told(admin_secret: str) -> None:
    new_submission("alice-model", submitter="alice")

    wrong = "not-" + admin_secret

    assert "admin secret is wrong" in sidebar_of(secret=wrong).sidebar.error[0].value
    assert not submissions_page(open_app(secret=wrong)).dataframe


def test_production_submitter_cannot_cancel_someone_elses_submission(
    admin_secret: str,
) -> None:
    alices = new_submission("alice-model", submitter="alice")
    bobs = new_submission("bob-model", submitter="bob")
    _, alice = issue("alice")
    at = submissions_page(open_app(token=alice))

    cancel(at, bobs)

    assert states() == {alices: "queued", bobs: "queued"}
    assert not at.main.success
    assert at.main.error[0].value.startswith("**refused**")

    cancel(at, alices)

    assert states() == {alices: "cancelled", bobs: "queued"}
    assert [message.value for message in at.main.success] == [f"Cancelled submission {alices}."]


def test_production_admin_can_cancel_any_submission(admin_secret: str) -> None:
    alices = new_submission("alice-model", submitter="alice")
    bobs = new_submission("bob-model", submitter="bob")
    assert "Active identity: admin." in sidebar_text(sidebar_of(secret=admin_secret))
    at = submissions_page(open_app(secret=admin_secret))

    cancel(at, bobs)
    cancel(at, alices)

    assert states() == {alices: "cancelled", bobs: "cancelled"}


def test_production_leaderboard_needs_no_token(admin_secret: str) -> None:
    submission_id = new_submission("public-model", submitter="alice")
    with session_scope() as session:
        assert claim_submission(session, submission_id)
        assert complete_submission(
            session,
            submission_id,
            metrics=[MetricResult(metric="accuracy", value=0.9, higher_is_better=True)],
            n_samples=359,
            provenance={"split": "test"},
        )

    at = sidebar_of()

    assert at.title[0].value == "Leaderboard"
    assert list(at.dataframe[0].value["model"]) == ["public-model"]
    assert not at.main.error
    assert not at.sidebar.error


# --- Development: anonymous local use -------------------------------------------------------


def test_development_sidebar_says_anonymous_local_use_is_allowed(evalboard_home: Path) -> None:
    at = sidebar_of()

    assert f"Active identity: {ANONYMOUS_ALLOWED}." in sidebar_text(at)
    assert not at.sidebar.error


def test_development_same_form_twice_reports_the_identical_submission(
    evalboard_home: Path, digits, local_model: Path
) -> None:
    at = submit_form(open_app(), model=local_model, dataset=digits.parquet, submitter="alice")
    [submission] = all_submissions()
    assert submission.submitter == "alice"

    at.form_submit_button[0].click().run()

    assert not at.exception
    assert [error.value for error in at.main.error] == []
    assert not at.main.success
    assert [message.value for message in at.main.info] == [
        f"This is identical to submission {submission.id}; nothing new was queued. "
        "Follow it on the Submissions page."
    ]
    assert [s.id for s in all_submissions()] == [submission.id]


def test_sidebar_shows_a_markup_submitter_name_as_plain_text(admin_secret: str) -> None:
    _, token = issue("<script>alert(1)</script> [x](javascript:alert(1))")

    at = sidebar_of(token=token)

    [shown] = at.sidebar.success
    assert r"\<script\>alert\(1\)\</script\> \[x\]\(javascript\:alert\(1\)\)" in shown.value
    assert not at.get("html")
