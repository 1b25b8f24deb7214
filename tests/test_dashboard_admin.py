"""The dashboard's admin page: re-evaluation on demand, behind the admin secret."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.identity import SECRET_KEY
from db.results import complete_submission
from db.schemas import MetricResult
from db.session import session_scope
from db.submissions import claim_submission, create_submission
from evalboard.settings import get_settings, reset_settings_cache
from evalboard.submit import EvaluationInput, prepare
from tests import factories

pytestmark = pytest.mark.usefixtures("fresh_streamlit_caches")

ADMIN_PAGE = Path(__file__).resolve().parent.parent / "dashboard" / "views" / "admin.py"


@pytest.fixture()
def admin_secret(evalboard_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    secret = secrets.token_urlsafe(32)
    monkeypatch.setenv("EVALBOARD_ADMIN_SECRET", secret)
    reset_settings_cache()
    st.cache_data.clear()
    return secret


def evaluated(model: Path, dataset: Path) -> int:
    """A succeeded submission of ``model`` recorded at the revisions submit resolves now."""
    request = prepare(EvaluationInput(model=str(model), dataset=str(dataset)), None, get_settings())
    with session_scope() as session:
        submission_id = create_submission(session, request.model_copy(update={"split": "test"})).id
        assert claim_submission(session, submission_id)
        assert complete_submission(
            session, submission_id, n_samples=12, provenance={"split": "test"},
            metrics=[MetricResult(metric="accuracy", value=0.5, higher_is_better=True)],
        )  # fmt: skip
    return submission_id


def test_the_admin_page_needs_the_admin_secret(admin_secret: str) -> None:
    at = AppTest.from_file(str(ADMIN_PAGE)).run()
    assert not at.exception
    assert not at.button
    assert "admin secret" in at.info[0].value
    at.session_state[SECRET_KEY] = "wrong"
    at.run()
    assert not at.button


def test_the_admin_sees_what_is_due_and_why(admin_secret: str, evalboard_home: Path) -> None:
    root = evalboard_home / "admin-data"
    dataset = factories.write_digits_parquet(root / "digits", limit=12)
    changed = factories.make_resnet(root / "changed", seed=0)
    steady = factories.make_resnet(root / "steady", seed=1)
    last = evaluated(changed, dataset)
    evaluated(steady, dataset)
    factories.make_resnet(changed, seed=3)  # new weights in the folder

    at = AppTest.from_file(str(ADMIN_PAGE))
    at.session_state[SECRET_KEY] = admin_secret
    at.run()
    at.button(key="reevaluate_preview").click().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["model"]) == [str(changed)]
    assert "folder content changed" in table["why"][0]
    assert list(table["last submission"]) == [last]
