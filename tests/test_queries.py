"""Submission lifecycle and leaderboard queries on the real database engines."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from db import submissions as queries
from db.board_rows import leaderboard_rows
from db.models import Submission, utcnow
from db.results import complete_submission
from db.schemas import DatasetRefCreate, MetricResult, ModelRefCreate, SubmissionCreate
from db.session import session_scope
from evalboard import catalog
from tests.catalog_plugins import LOWER_IS_BETTER as LOWER_SPEC
from tests.servers import Backend

SPEC = catalog.default_spec(catalog.IMAGE_CLASSIFICATION)


def _request(
    model: str, *, dataset: str = "/data/digits", revision: str = "r1",
    spec: catalog.Spec = SPEC, fingerprint: str = "fp1",
) -> SubmissionCreate:  # fmt: skip
    return SubmissionCreate(
        task=spec.task,
        model=ModelRefCreate(source="local", name=model, resolved_revision=revision),
        dataset=DatasetRefCreate(source="local", name=dataset, fingerprint=fingerprint),
        split="test",
        spec_name=spec.name,
        spec_version=spec.version,
    )


def _finished(
    model: str, value: float, *, metric: str = "accuracy", higher: bool = True,
    revision: str = "r1", spec: catalog.Spec = SPEC, fingerprint: str = "fp1",
) -> int:  # fmt: skip
    request = _request(model, revision=revision, spec=spec, fingerprint=fingerprint)
    with session_scope() as session:
        submission_id = queries.create_submission(session, request).id
        assert queries.claim_submission(session, submission_id)
        assert complete_submission(
            session,
            submission_id,
            metrics=[MetricResult(metric=metric, value=value, higher_is_better=higher)],
            n_samples=100,
            provenance={"split": "test"},
        )
    return submission_id


@pytest.fixture()
def database(backend: Backend) -> Iterator[Backend]:
    yield backend


def test_leaderboard_ranks_in_the_metric_direction_and_ties_share_a_rank(database) -> None:
    ids = {name: _finished(name, value) for name, value in
           [("a", 0.9), ("b", 0.7), ("c", 0.9), ("d", 0.5)]}  # fmt: skip
    with session_scope() as session:
        rows = leaderboard_rows(session, dataset="/data/digits", split="test")
    assert [(row.model, row.rank) for row in rows] == [("a", 1), ("c", 1), ("b", 3), ("d", 4)]
    assert rows[0].submission_id == ids["a"]

    for name, loss in [("a", 0.3), ("b", 0.1)]:
        _finished(name, loss, metric="mean_error", higher=False, spec=LOWER_SPEC)
    with session_scope() as session:
        rows = leaderboard_rows(
            session, dataset="/data/digits", split="test", spec_name=LOWER_SPEC.name,
            metric="mean_error",
        )  # fmt: skip
    assert [(row.model, row.rank) for row in rows] == [("b", 1), ("a", 2)]


def test_only_current_spec_dataset_and_model_revisions_are_ranked_the_rest_is_stale(
    database,
) -> None:
    old_spec = replace(SPEC, version="0.9")
    _finished("old-spec", 0.99, spec=old_spec)
    _finished("current", 0.5)
    _finished("model-moved", 0.8, revision="r1")
    with session_scope() as session:  # the model was seen with another revision since
        queries.get_or_create_model_ref(
            session, ModelRefCreate(source="local", name="model-moved", resolved_revision="r2")
        )
    with session_scope() as session:
        rows = leaderboard_rows(session, dataset="/data/digits", split="test")
    assert [(row.model, row.rank, row.status) for row in rows] == [
        ("current", 1, "ranked"),
        ("old-spec", None, "stale"),
        ("model-moved", None, "stale"),
    ]
    assert "spec version 0.9" in rows[1].stale_reasons[0]
    assert rows[2].stale_reasons == ["model changed since"]
    # New content in the dataset: every earlier result is stale until it is re-evaluated.
    _finished("newcomer", 0.1, fingerprint="fp2")
    with session_scope() as session:
        rows = leaderboard_rows(session, dataset="/data/digits", split="test")
    assert [(row.model, row.rank) for row in rows if row.rank] == [("newcomer", 1)]
    assert {row.model: row.stale_reasons for row in rows}["current"] == ["dataset changed since"]


def test_an_unknown_metric_is_refused_naming_the_valid_ones(database) -> None:
    from evalboard.errors import BadInputError

    with session_scope() as session, pytest.raises(BadInputError) as failure:
        leaderboard_rows(session, dataset="/data/digits", split="test", metric="top1")
    assert "accuracy" in str(failure.value) and "f1_macro" in str(failure.value)


def test_leaderboard_shows_the_latest_result_per_model(database) -> None:
    _finished("a", 0.9, revision="old")
    newest = _finished("a", 0.6, revision="new")
    _finished("b", 0.8)
    with session_scope() as session:
        rows = leaderboard_rows(session, dataset="/data/digits", split="test")
    assert [(row.model, row.value, row.revision) for row in rows] == [
        ("b", 0.8, "r1"),
        ("a", 0.6, "new"),
    ]
    assert rows[1].submission_id == newest


def test_only_one_of_many_concurrent_claims_wins(database) -> None:
    with session_scope() as session:
        ids = [queries.create_submission(session, _request(f"m{i}")).id for i in range(20)]
    wins: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def claim_all() -> None:
        barrier.wait()
        for submission_id in ids:
            with session_scope() as session:
                won = queries.claim_submission(session, submission_id)
            if won:
                with lock:
                    wins.append(submission_id)

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == ids  # every submission claimed exactly once
    with session_scope() as session:
        attempts = [session.get(Submission, i).attempts for i in ids]
    assert attempts == [1] * len(ids)


def test_a_finished_submission_cannot_be_completed_or_failed_again(database) -> None:
    submission_id = _finished("a", 0.9)
    with session_scope() as session:
        assert not queries.claim_submission(session, submission_id)
        assert not queries.fail_submission(
            session, submission_id, category="internal", message="late"
        )
        assert not complete_submission(
            session, submission_id, metrics=[], n_samples=1, provenance={}
        )
        submission = session.get(Submission, submission_id)
        assert submission.state == "succeeded"
        assert len(submission.results) == 1


def test_reaper_requeues_lost_work_and_fails_it_after_the_last_attempt(database) -> None:
    from worker.scheduling.reaper import MAX_ATTEMPTS, reap_stale

    with session_scope() as session:
        stale = queries.create_submission(session, _request("stale")).id
        exhausted = queries.create_submission(session, _request("exhausted")).id
        fresh = queries.create_submission(session, _request("fresh")).id
        for submission_id in (stale, exhausted, fresh):
            queries.claim_submission(session, submission_id)
    with session_scope() as session:
        session.get(Submission, stale).heartbeat_at = utcnow() - timedelta(minutes=10)
        session.get(Submission, exhausted).heartbeat_at = utcnow() - timedelta(minutes=10)
        session.get(Submission, exhausted).attempts = MAX_ATTEMPTS
    assert reap_stale(limit_seconds=60) == 2
    with session_scope() as session:
        assert session.get(Submission, stale).state == "queued"  # sent again
        assert session.get(Submission, stale).celery_task_id is not None
        lost = session.get(Submission, exhausted)
        assert (lost.state, lost.failure_category) == ("failed", "worker_lost")
        assert "attempt" in lost.failure_message
        assert session.get(Submission, fresh).state == "running"


def test_queue_position_counts_earlier_queued_submissions(database, tmp_path: Path) -> None:
    with session_scope() as session:
        first, second, third = (
            queries.create_submission(session, _request(name)).id for name in "xyz"
        )
        queries.claim_submission(session, first)
        positions = [
            queries.queue_position(session, session.get(Submission, i))
            for i in (first, second, third)
        ]
    assert positions == [None, 1, 2]


def test_a_run_that_lost_its_submission_to_another_attempt_writes_nothing(database) -> None:
    with session_scope() as session:
        submission_id = queries.create_submission(session, _request("taken-over")).id
    with session_scope() as session:
        first = queries.claim_submission(session, submission_id)
    with session_scope() as session:  # the first worker stopped beating; another takes over
        session.get(Submission, submission_id).heartbeat_at = utcnow() - timedelta(minutes=5)
    with session_scope() as session:
        second = queries.claim_submission(
            session, submission_id, stale_before=utcnow() - timedelta(minutes=1)
        )
    assert (first, second) == (1, 2)
    metrics = [MetricResult(metric="accuracy", value=0.5, higher_is_better=True)]
    with session_scope() as session:
        assert not queries.touch_heartbeat(session, submission_id, attempt=first)
        assert not queries.record_progress(session, submission_id, 0.5, attempt=first)
        assert not queries.fail_submission(
            session, submission_id, category="internal", message="late", attempt=first
        )
        assert not complete_submission(
            session, submission_id, metrics=metrics, n_samples=1, provenance={}, attempt=first
        )
        assert queries.record_progress(session, submission_id, 0.5, attempt=second)
        assert complete_submission(
            session, submission_id, metrics=metrics, n_samples=1, provenance={}, attempt=second
        )
        assert len(session.get(Submission, submission_id).results) == 1


def test_a_rerun_of_the_same_identity_with_another_value_flags_both_runs(database) -> None:
    from db.results import flags_of

    same = _finished("steady", 0.75)
    again = _finished("steady", 0.75 + 1e-9)  # within the tolerance: deterministic
    moved = _finished("steady", 0.80)
    other_revision = _finished("steady", 0.10, revision="r2")  # another identity
    with session_scope() as session:
        flags = flags_of(session, [same, again, moved, other_revision])
    assert flags == {
        same: ["non_deterministic"],
        again: ["non_deterministic"],
        moved: ["non_deterministic"],
    }
