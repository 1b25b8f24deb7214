"""Several workers on one broker and database; queues taken only by the workers that name them."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.models import Result, Submission
from db.session import session_scope
from evalboard.submit import EvaluationInput, submit
from tests import factories
from tests.servers import Backend


def _wait_until_final(ids: list[int], timeout: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as session:
            states = dict(
                session.execute(
                    select(Submission.id, Submission.state).where(Submission.id.in_(ids))
                )
                .tuples()
                .all()
            )
        if all(state in ("succeeded", "failed", "cancelled") for state in states.values()):
            return states
        if time.monotonic() > deadline:
            return states
        time.sleep(1.0)


def _tiny_model(path: Path, *, seed: int) -> Path:
    if not (path / "config.json").is_file():
        factories.make_vit(path, seed=seed)
    return path


def test_a_worker_takes_only_the_queues_it_names(
    backend: Backend, start_worker, digits, tiny_models
) -> None:
    start_worker("light-only", queues="light")
    submission_id = submit(
        EvaluationInput(model=str(tiny_models.resnet), dataset=str(digits.saved))
    ).submission_id
    time.sleep(5)  # several polls of the SQL transport; Redis would deliver at once
    with session_scope() as session:
        assert session.get(Submission, submission_id).state == "queued"
    start_worker("eval", queues="eval")
    assert _wait_until_final([submission_id], timeout=120) == {submission_id: "succeeded"}


@pytest.mark.parametrize("backend", ["production"], indirect=True)
@pytest.mark.parametrize("n_submissions", [200, 1000])
def test_two_workers_run_every_submission_exactly_once(
    backend: Backend, start_worker, data_root: Path, tmp_path: Path, n_submissions: int
) -> None:
    """Issue 3 asks for 200 queued evaluations on two workers; issue 5's load test for 1,000."""
    dataset = factories.write_digits_parquet(data_root / "handful", limit=6)
    models = [
        _tiny_model(data_root / "load-models" / f"vit-{i}", seed=i) for i in range(n_submissions)
    ]
    ids = [
        submit(EvaluationInput(model=str(path), dataset=str(dataset))).submission_id
        for path in models
    ]
    assert len(set(ids)) == n_submissions
    first, second = start_worker("a", ready=False), start_worker("b", ready=False)
    first.wait_ready()
    second.wait_ready()

    states = _wait_until_final(ids, timeout=1500)
    assert Counter(states.values()) == {"succeeded": n_submissions}
    with session_scope() as session:
        attempts = session.scalars(select(Submission.attempts).where(Submission.id.in_(ids))).all()
        results_per_submission = Counter(
            session.scalars(select(Result.submission_id).where(Result.submission_id.in_(ids))).all()
        )
        workers = Counter(
            provenance["worker"]
            for provenance in session.scalars(
                select(Result.provenance).where(Result.metric == "accuracy")
            )
        )
        metrics = session.scalar(
            select(func.count(func.distinct(Result.metric))).where(Result.submission_id == ids[0])
        )
    assert attempts == [1] * n_submissions  # claimed once: never run twice
    assert set(results_per_submission) == set(ids)
    assert set(results_per_submission.values()) == {metrics}  # exactly one result set each
    assert len(workers) == 2 and min(workers.values()) > 0, workers  # both took work
