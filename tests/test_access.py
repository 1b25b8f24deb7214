"""Who may do what: tokens, the admin secret, ownership, quotas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from db import submissions as queries
from db.models import Submission
from db.session import session_scope
from evalboard.settings import reset_settings_cache
from tests import factories
from tests.test_end_to_end import evalboard

SECRET = "a-real-secret-that-is-long-enough-0123456789"


@pytest.fixture()
def production(evalboard_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVALBOARD_ENVIRONMENT", "production")
    monkeypatch.setenv("EVALBOARD_ADMIN_SECRET", SECRET)
    reset_settings_cache()
    return evalboard_home


@pytest.fixture()
def model_and_data(data_root: Path) -> tuple[str, str]:
    model = data_root / "access-model"
    if not model.exists():
        factories.make_resnet(model)
    data = data_root / "access-data"
    if not data.exists():
        factories.write_digits_parquet(data, limit=4)
    return str(model), str(data)


def _issue(name: str) -> str:
    completed = evalboard("token", "issue", name, "--admin-secret", SECRET)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip().splitlines()[-1]


def test_production_needs_a_token_and_records_the_token_holder(production, model_and_data) -> None:
    model, data = model_and_data
    anonymous = evalboard("submit", "--model", model, "--dataset", data, "--json")
    assert anonymous.returncode == 2
    assert json.loads(anonymous.stdout)["error"]["category"] == "refused"
    assert "needs a submitter token" in json.loads(anonymous.stdout)["error"]["message"]

    refused = evalboard("token", "issue", "alice")  # no admin secret given
    assert refused.returncode == 2 and "admin secret" in refused.stderr
    wrong = evalboard("token", "issue", "alice", "--admin-secret", "guess")
    assert wrong.returncode == 2

    token = _issue("alice")
    assert token.startswith("evb_")
    queued = evalboard("submit", "--model", model, "--dataset", data, "--submitter", "mallory",
                       "--token", token, "--json")  # fmt: skip
    report = json.loads(queued.stdout)
    assert queued.returncode == 0 and report["state"] == "queued"
    assert report["submitter"] == "alice"  # the token decides, not the form

    listing = evalboard("token", "list", "--admin-secret", SECRET).stdout
    assert "alice" in listing and token not in listing  # stored hashed, shown once
    token_id = listing.split()[0]
    assert evalboard("token", "revoke", token_id, "--admin-secret", SECRET).returncode == 0
    revoked = evalboard("submit", "--model", model, "--dataset", data, "--token", token, "--json")
    assert json.loads(revoked.stdout)["error"]["message"].endswith("was revoked")


def test_a_submitter_sees_and_cancels_only_their_own(production, model_and_data) -> None:
    model, data = model_and_data
    alice, bob = _issue("alice"), _issue("bob")
    submitted = evalboard("submit", "--model", model, "--dataset", data, "--token", alice, "--json")
    submission_id = str(json.loads(submitted.stdout)["submission_id"])

    assert evalboard("status", submission_id, "--token", bob).returncode == 2
    assert evalboard("cancel", submission_id, "--token", bob).returncode == 2
    with session_scope() as session:
        assert session.get(Submission, int(submission_id)).state == "queued"
    assert evalboard("status", submission_id, "--token", alice).returncode == 0
    assert evalboard("cancel", submission_id, "--admin-secret", SECRET).returncode == 0
    with session_scope() as session:
        assert session.get(Submission, int(submission_id)).state == "cancelled"


@pytest.mark.parametrize(
    "secret", ["changeme", "  ChangeMe ", "ADMIN", "\tsecret\n", "Password", "short-secret-1"]
)
def test_production_refuses_to_start_with_a_placeholder_secret(
    evalboard_home: Path, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("EVALBOARD_ENVIRONMENT", "production")
    monkeypatch.setenv("EVALBOARD_ADMIN_SECRET", secret)
    completed = evalboard("migrate")
    assert completed.returncode == 2
    assert "EVALBOARD_ADMIN_SECRET" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_anonymous_production_use_cancels_nothing_and_takes_no_token_holders_name(
    production: Path, monkeypatch: pytest.MonkeyPatch, model_and_data
) -> None:
    model, data = model_and_data
    monkeypatch.setenv("EVALBOARD_ALLOW_ANONYMOUS", "true")
    reset_settings_cache()
    token = evalboard("token", "issue", "alice", "--admin-secret", SECRET).stdout.split()[-1]
    alices = json.loads(evalboard("submit", "--model", model, "--dataset", data, "--token",
                                  token, "--json").stdout)["submission_id"]  # fmt: skip
    posing = json.loads(evalboard("submit", "--model", model, "--dataset", data, "--split",
                                  "train", "--submitter", "alice", "--json").stdout)  # fmt: skip
    assert posing["error"]["category"] == "refused"
    assert "token holder" in posing["error"]["message"]
    anonymous = evalboard("submit", "--model", model, "--dataset", data, "--split", "train",
                          "--json")  # fmt: skip
    assert json.loads(anonymous.stdout)["state"] == "queued", anonymous.stdout
    cancel = evalboard("cancel", str(alices), "--json")
    assert cancel.returncode == 2 and "another submitter" in cancel.stderr + cancel.stdout
    with session_scope() as session:
        assert session.get(Submission, alices).state == "queued"


def test_a_free_text_config_on_a_local_dataset_is_refused(production: Path, model_and_data) -> None:
    model, data = model_and_data
    token = evalboard("token", "issue", "bob", "--admin-secret", SECRET).stdout.split()[-1]
    completed = evalboard("submit", "--model", model, "--dataset", data, "--config", "other",
                          "--token", token, "--json")  # fmt: skip
    report = json.loads(completed.stdout)
    assert report["error"]["category"] == "bad_input"
    assert "no configuration 'other'" in report["error"]["message"]


def test_quotas_count_what_the_submitter_caused_only(
    evalboard_home: Path, monkeypatch: pytest.MonkeyPatch, model_and_data, data_root: Path
) -> None:
    monkeypatch.setenv("EVALBOARD_QUOTA_CONCURRENT", "1")
    model, data = model_and_data
    other = data_root / "access-data-2"
    if not other.exists():
        factories.write_digits_parquet(other, limit=5)
    first = json.loads(evalboard("submit", "--model", model, "--dataset", data, "--json").stdout)
    second = evalboard("submit", "--model", model, "--dataset", str(other), "--json")
    assert second.returncode == 2
    assert "quota reached" in json.loads(second.stdout)["error"]["message"]

    # A failure of ours frees the slot; so does a cancel.
    with session_scope() as session:
        queries.fail_submission(
            session, first["submission_id"], category="worker_lost", message="lost"
        )
    third = evalboard("submit", "--model", model, "--dataset", str(other), "--json")
    assert third.returncode == 0, third.stdout
