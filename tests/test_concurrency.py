"""Duplicates and quotas are atomic: submits released together by a barrier across processes."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from db.models import Submission
from db.session import session_scope
from evalboard.settings import get_settings, reset_settings_cache, subprocess_env
from tests import factories
from tests.conftest import DigitsData, _reconfigure_celery

RACERS = 10


def _race(env: dict[str, str], barrier: Any, answers: Any, model: str, dataset: str) -> None:
    """One forked process: wait for the others, then submit; report what happened."""
    os.environ.clear()
    os.environ.update(env)
    reset_settings_cache()
    _reconfigure_celery()  # no broker connection inherited from the parent
    from evalboard.errors import EvalboardError
    from evalboard.submit import EvaluationInput, submit

    request = EvaluationInput(model=model, dataset=dataset, submitter="racer")
    barrier.wait(timeout=120)
    try:
        submitted = submit(request)
        answers.put(("queued", submitted.submission_id, submitted.duplicate))
    except EvalboardError as error:
        answers.put((error.category.value, None, error.message))


def race(models: list[Path], dataset: Path) -> list[tuple[Any, ...]]:
    context = multiprocessing.get_context("fork")  # engines are made per process id
    barrier, answers = context.Barrier(len(models)), context.Queue()
    env = subprocess_env(get_settings())
    racers = [
        context.Process(target=_race, args=(env, barrier, answers, str(model), str(dataset)))
        for model in models
    ]
    for racer in racers:
        racer.start()
    results = [answers.get(timeout=240) for _ in racers]
    for racer in racers:
        racer.join(timeout=60)
    return results


@pytest.fixture(scope="module")
def racing_models(data_root: Path) -> list[Path]:
    root = data_root / "racing-models"
    return [factories.make_resnet(root / f"model-{index}", seed=index) for index in range(RACERS)]


def submissions() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Submission)) or 0)


def test_identical_submissions_released_together_are_recorded_once(
    backend, digits: DigitsData, racing_models: list[Path]
) -> None:
    results = race([racing_models[0]] * RACERS, digits.parquet)
    assert {state for state, _, _ in results} == {"queued"}
    assert len({submission_id for _, submission_id, _ in results}) == 1
    assert sorted(duplicate for _, _, duplicate in results) == [False] + [True] * (RACERS - 1)
    assert submissions() == 1


def test_a_quota_of_one_admits_exactly_one_of_ten_parallel_submits(
    backend, digits: DigitsData, racing_models: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALBOARD_QUOTA_PER_DAY", "1")
    monkeypatch.setenv("EVALBOARD_QUOTA_CONCURRENT", "1")
    reset_settings_cache()
    results = race(racing_models, digits.parquet)
    states = sorted(state for state, _, _ in results)
    assert states == ["queued"] + ["refused"] * (RACERS - 1), results
    assert all("quota reached" in message for state, _, message in results if state == "refused")
    assert submissions() == 1
