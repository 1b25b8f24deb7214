"""Cached read queries: plain rows from ``db/``, refreshed every few seconds."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from db import board_choices, board_rows, leaderboard, submissions
from db.board_page import BoardFilters, BoardPage, board_page, filtered_rows
from db.models import Result, Submission
from db.session import session_scope
from evalboard.reports import submission_report

# Short enough that progress and new results appear while a page is open.
REFRESH_SECONDS = 3
PAGE_SIZE = 50

# (spec, dataset, config, split, columns, metric); columns: the board's full column mapping
# as canonical JSON text (``db.identity.columns_text``), hashable for the caches.
LeaderboardView = tuple[str, str, str, str, str, str]


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def leaderboard_choices() -> list[LeaderboardView]:
    """Every (spec, dataset, config, split, columns, metric) that has at least one result."""
    with session_scope() as session:
        return list(board_choices.board_choices(session))


def _view(
    spec: str, dataset: str, config: str, split: str, metric: str, columns: str
) -> leaderboard.BoardView:
    return leaderboard.board_view(
        dataset=dataset, config=config, split=split, metric=metric, spec_name=spec,
        columns=json.loads(columns) if columns else None,
    )  # fmt: skip


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def leaderboard_page(
    spec: str,
    dataset: str,
    config: str,
    split: str,
    metric: str,
    filters: BoardFilters,
    page: int,
    page_size: int = PAGE_SIZE,
    columns: str = "",
) -> BoardPage:
    """One page of a leaderboard view: its rows only, the counts, the charts' points.
    ``columns`` names the board (canonical JSON; empty: the task's default columns)."""
    view = _view(spec, dataset, config, split, metric, columns)
    with session_scope() as session:
        return board_page(session, view, filters, page=page, page_size=page_size)


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def leaderboard_export(
    spec: str, dataset: str, config: str, split: str, metric: str, filters: BoardFilters,
    fmt: str, columns: str = "",
) -> str:  # fmt: skip
    """Every row of the view as filtered, as CSV or JSON (the CLI's contract)."""
    from evalboard.output import leaderboard_text

    view = _view(spec, dataset, config, split, metric, columns)
    with session_scope() as session:
        rows = filtered_rows(session, view, filters)
    return leaderboard_text(rows, fmt, view=view)


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def recent_submissions(limit: int = 100, submitter: str | None = None) -> list[dict[str, Any]]:
    """The newest submissions first (only ``submitter``'s when given), with queue positions."""
    with session_scope() as session:
        listed = submissions.list_submissions(session, limit=limit, submitter=submitter)
        # An evaluation may leave the split to the spec: show the one it measured.
        measured = dict(
            session.execute(
                select(Result.submission_id, Result.split)
                .where(Result.submission_id.in_([s.id for s in listed]))
                .distinct()
            )
            .tuples()
            .all()
        )
        return [submission_row(session, s, measured.get(s.id)) for s in listed]


def submission_row(
    session: Session, submission: Submission, measured_split: str | None = None
) -> dict[str, Any]:
    """One submission as a table row."""
    return {
        "id": submission.id,
        "kind": submission.kind,
        "state": submission.state,
        "progress": submission.progress,
        "queue_position": submissions.queue_position(session, submission),
        "model": submission.model.name,
        "dataset": submission.dataset.name,
        "split": submission.split or measured_split,
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


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def models_with_results() -> list[str]:
    """Every model with at least one visible result, by name."""
    from sqlalchemy import false, or_

    from db.models import ModelRef, Moderation, Result

    query = (
        select(ModelRef.name)
        .join(Result, Result.model_id == ModelRef.id)
        .outerjoin(Moderation, Moderation.submission_id == Result.submission_id)
        .where(or_(Moderation.hidden.is_(None), Moderation.hidden == false()))
        .distinct()
        .order_by(ModelRef.name)
    )
    with session_scope() as session:
        return list(session.scalars(query))


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def model_history(model: str) -> list[dict[str, Any]]:
    """Every visible result set of a model, oldest first, with what changed each time."""
    from db.history import model_history as history

    with session_scope() as session:
        return [entry.model_dump() for entry in history(session, model=model)]


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def public_result(submission_id: int) -> dict[str, Any] | None:
    """A visible evaluation's full report (provenance, lineage), and its per-class scores and
    confusion matrix from the stored predictions; None if unknown, hidden or not a result."""
    from db.models import Moderation
    from db.predictions import confusion_matrix, load_predictions, per_class

    with session_scope() as session:
        submission = submissions.get_submission(session, submission_id)
        marks = session.get(Moderation, submission_id)
        if submission is None or not submission.results or (marks is not None and marks.hidden):
            return None
        report = submission_report(session, submission).as_json()
        stored = load_predictions(session, submission_id)
    if stored is not None:
        report["classes"] = per_class(stored)
        report["confusion"] = confusion_matrix(stored).tolist()
        report["class_names"] = stored.class_names
    report["baseline"] = bool(marks is not None and marks.baseline)
    return report


def clear_leaderboard_reads() -> None:
    """Forget cached boards after moderation, so the next read shows it."""
    leaderboard_choices.clear()
    leaderboard_page.clear()
    leaderboard_export.clear()
    models_with_results.clear()
    display_name_of.clear()
    model_history.clear()
    public_result.clear()


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def display_name_of(model: str) -> str:
    """The name a model's leaderboard rows show: Hub id, folder name, or "… fine-tuned"."""
    with session_scope() as session:
        return board_rows.model_display_name(session, model)
