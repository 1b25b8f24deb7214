"""The writes the dashboard makes: submit an evaluation, cancel a submission."""

from __future__ import annotations

from dashboard import data
from db.session import session_scope
from db.submissions import cancel_submission
from evalboard.service import EvaluationInput, submit_evaluation


def submit(evaluation: EvaluationInput) -> int:
    """Validate, record and enqueue ``evaluation``; raises EvalboardError on bad input."""
    submission_id = submit_evaluation(evaluation)
    data.clear_submission_reads()
    return submission_id


def cancel(submission_id: int) -> bool:
    """Cancel a queued or running submission; False when it had already ended or is unknown."""
    with session_scope() as session:
        cancelled = cancel_submission(session, submission_id)
    data.clear_submission_reads()
    return cancelled
