"""Results: stored once with their provenance, never updated; flags beside them.

The caller owns the transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.identity import columns_key, result_key
from db.models import Result, ResultFlag, Submission, SubmissionState, utcnow
from db.schemas import MetricResult
from db.submissions import rowcount, running_condition

# Two runs of one identity whose values differ by more than this are not deterministic.
NON_DETERMINISM_TOLERANCE = 1e-6


def complete_submission(
    session: Session,
    submission_id: int,
    *,
    metrics: Sequence[MetricResult],
    n_samples: int,
    provenance: dict[str, Any],
    attempt: int | None = None,
) -> bool:
    """Store every metric with its provenance and mark ``succeeded``, in the caller's transaction.

    Returns False (and writes nothing) if the submission is no longer ``running`` (or held by
    another attempt). A re-run whose values differ from an earlier run of the same identity is
    flagged ``non_deterministic``, both runs.
    """
    now = utcnow()
    result = session.execute(
        update(Submission)
        .execution_options(synchronize_session=False)
        .where(running_condition(submission_id, attempt))
        .values(state=SubmissionState.SUCCEEDED.value, progress=1.0, finished_at=now)
    )
    if rowcount(result) != 1:
        return False
    submission = session.get(Submission, submission_id)
    assert submission is not None
    split = str(provenance.get("split") or submission.split)
    key = result_key(
        task=submission.task,
        spec_name=submission.spec_name,
        spec_version=submission.spec_version,
        model_name=submission.model.name,
        model_revision=submission.model.resolved_revision,
        dataset_source=submission.dataset.source,
        dataset_name=submission.dataset.name,
        dataset_config=submission.dataset.config,
        dataset_fingerprint=submission.dataset.fingerprint,
        split=split,
        column_mapping=dict(submission.column_mapping or {}),
    )
    board_key = columns_key(submission.task, submission.column_mapping)
    for metric in metrics:
        session.add(
            Result(
                submission_id=submission.id,
                model_id=submission.model_id,
                model_name=submission.model.name,
                dataset_id=submission.dataset_id,
                task=submission.task,
                split=split,
                metric=metric.metric,
                value=metric.value,
                higher_is_better=metric.higher_is_better,
                ci_low=metric.ci_low,
                ci_high=metric.ci_high,
                n_samples=n_samples,
                spec_name=submission.spec_name,
                spec_version=submission.spec_version,
                model_revision=submission.model.resolved_revision,
                dataset_fingerprint=submission.dataset.fingerprint,
                result_key=key,
                columns_key=board_key,
                provenance=provenance,
                created_at=now,
            )
        )
    model = submission.model
    if model.architecture is None and provenance.get("model_architecture"):
        model.architecture = str(provenance["model_architecture"])[:255]
    if model.parameter_count is None and isinstance(provenance.get("model_parameters"), int):
        model.parameter_count = int(provenance["model_parameters"])
    session.flush()
    if metrics:
        flag_non_determinism(session, submission_id, key, metrics)
    return True


def flag_non_determinism(
    session: Session, submission_id: int, key: str, metrics: Sequence[MetricResult]
) -> list[int]:
    """Flag this run and every earlier run of ``key`` whose values differ by more than the
    tolerance; returns the earlier submissions flagged."""
    values = {metric.metric: metric.value for metric in metrics}
    earlier = session.execute(
        select(Result.submission_id, Result.metric, Result.value).where(
            Result.result_key == key, Result.submission_id != submission_id
        )
    ).all()
    differing: dict[int, dict[str, list[float]]] = {}
    for other_id, metric, value in earlier:
        mine = values.get(metric)
        if mine is not None and abs(mine - value) > NON_DETERMINISM_TOLERANCE:
            differing.setdefault(other_id, {})[metric] = [value, mine]
    for other_id, differences in differing.items():
        for flagged, against in ((other_id, submission_id), (submission_id, other_id)):
            _add_flag(session, flagged, "non_deterministic", {
                "against_submission_id": against, "metrics": differences,
            })  # fmt: skip
    return sorted(differing)


def _add_flag(session: Session, submission_id: int, flag: str, detail: dict[str, Any]) -> None:
    existing = session.scalars(
        select(ResultFlag).where(ResultFlag.submission_id == submission_id, ResultFlag.flag == flag)
    ).first()
    if existing is None:
        session.add(ResultFlag(submission_id=submission_id, flag=flag, detail=detail))
        session.flush()


def flags_of(session: Session, submission_ids: Sequence[int]) -> dict[int, list[str]]:
    """Submission id → its flags (``non_deterministic``, …)."""
    flags: dict[int, list[str]] = {}
    if not submission_ids:
        return flags
    for submission_id, flag in session.execute(
        select(ResultFlag.submission_id, ResultFlag.flag)
        .where(ResultFlag.submission_id.in_(list(submission_ids)))
        .order_by(ResultFlag.id)
    ):
        flags.setdefault(submission_id, []).append(flag)
    return flags
