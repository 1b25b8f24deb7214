"""Cached read queries: plain rows from ``db/``, refreshed every few seconds."""

from __future__ import annotations

from typing import Any

import streamlit as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from db import leaderboard, submissions
from db.models import Submission
from db.session import session_scope
from evalboard.reports import submission_report

# Short enough that progress and new results appear while a page is open.
REFRESH_SECONDS = 3

LeaderboardView = tuple[str, str, str, str, str]  # (spec, dataset, config, split, metric)


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def leaderboard_choices() -> list[LeaderboardView]:
    """Every (spec, dataset, config, split, metric) that has at least one result."""
    with session_scope() as session:
        return list(leaderboard.leaderboard_choices(session))


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def leaderboard_rows(
    spec: str, dataset: str, config: str, split: str, metric: str
) -> list[dict[str, Any]]:
    """The ranked rows of one leaderboard view, as plain dicts."""
    with session_scope() as session:
        rows = leaderboard.leaderboard_rows(
            session, dataset=dataset, config=config, split=split, metric=metric, spec_name=spec
        )
        return [row.model_dump() for row in rows]


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def recent_submissions(limit: int = 100, submitter: str | None = None) -> list[dict[str, Any]]:
    """The newest submissions first (only ``submitter``'s when given), with queue positions."""
    with session_scope() as session:
        return [
            submission_row(session, submission)
            for submission in submissions.list_submissions(
                session, limit=limit, submitter=submitter
            )
        ]


def submission_row(session: Session, submission: Submission) -> dict[str, Any]:
    """One submission as a table row."""
    return {
        "id": submission.id,
        "kind": submission.kind,
        "state": submission.state,
        "progress": submission.progress,
        "queue_position": submissions.queue_position(session, submission),
        "model": submission.model.name,
        "dataset": submission.dataset.name,
        "split": submission.split,
        "submitter": submission.submitter,
        "failure_category": submission.failure_category,
        "failure_message": submission.failure_message,
        "created_at": submission.created_at,
        "finished_at": submission.finished_at,
    }


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def training_submissions(limit: int = 100, submitter: str | None = None) -> list[dict[str, Any]]:
    """The newest training submissions first (only ``submitter``'s when given)."""
    query = select(Submission).where(Submission.kind == "train")
    if submitter is not None:
        query = query.where(Submission.submitter == submitter)
    with session_scope() as session:
        trainings = session.scalars(query.order_by(Submission.id.desc()).limit(limit)).unique()
        return [
            {
                "id": training.id,
                "model": training.model.name,
                "dataset": training.dataset.name,
                "state": training.state,
            }
            for training in trainings
        ]


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def submission_detail(submission_id: int) -> dict[str, Any] | None:
    """The full report of one submission (with its ``training`` section); None if unknown."""
    with session_scope() as session:
        submission = submissions.get_submission(session, submission_id)
        return submission_report(session, submission).as_json() if submission is not None else None


def clear_submission_reads() -> None:
    """Forget cached submission rows after a write, so the next read sees it."""
    recent_submissions.clear()
    training_submissions.clear()
    submission_detail.clear()
