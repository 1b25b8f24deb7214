"""The writes the dashboard makes: submit an evaluation or a training, cancel a submission."""

from __future__ import annotations

from typing import Any

from dashboard import data
from db.session import session_scope
from db.submissions import cancel_submission
from evalboard.service import EvaluationInput, submit_evaluation, submit_training


def submit(evaluation: EvaluationInput) -> int:
    """Validate, record and enqueue ``evaluation``; raises EvalboardError on bad input."""
    submission_id = submit_evaluation(evaluation)
    data.clear_submission_reads()
    return submission_id


def train(evaluation: EvaluationInput, training: dict[str, Any]) -> int:
    """Validate, record and enqueue a fine-tuning of ``evaluation.model``; raises EvalboardError."""
    submission_id = submit_training(evaluation, training)
    data.clear_submission_reads()
    return submission_id


def cancel(submission_id: int) -> bool:
    """Cancel a queued or running submission; False when it had already ended or is unknown."""
    with session_scope() as session:
        cancelled = cancel_submission(session, submission_id)
    data.clear_submission_reads()
    return cancelled
