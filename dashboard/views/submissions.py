"""Submissions page: the newest submissions, live progress, training details, cancelling.

Where anonymous use is not allowed, a submitter sees and cancels only their own; the admin all.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import actions, data, identity
from dashboard.text import escape_markdown
from dashboard.training_view import show_training

COLUMNS: dict[str, Any] = {
    "id": st.column_config.NumberColumn("id", format="%d"),
    "kind": "kind",
    "state": "state",
    "progress": st.column_config.ProgressColumn(
        "progress", min_value=0.0, max_value=1.0, format="percent"
    ),
    "queue_position": st.column_config.TextColumn("queue position"),
    "model": "model",
    "dataset": "dataset",
    "split": "split",
    "submitter": "submitter",
    "failure_category": "failure category",
    "failure_message": st.column_config.TextColumn("failure message", width="large"),
    "created_at": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss"),
    "finished_at": st.column_config.DatetimeColumn("finished", format="YYYY-MM-DD HH:mm:ss"),
}


def _cancel() -> None:
    # A callback runs before the rerun, so the table below already shows the new state.
    submission_id = st.session_state.get("cancel_id")
    if submission_id is None:
        st.session_state["cancel_outcome"] = ("warning", "Enter a submission id to cancel.")
        return
    viewer = identity.current()
    outcome = actions.cancel(int(submission_id), token=viewer.token, secret=viewer.secret)
    if outcome == "cancelled":
        st.session_state["cancel_outcome"] = ("success", f"Cancelled submission {submission_id}.")
    elif outcome == "refused":
        st.session_state["cancel_outcome"] = (
            "error",
            f"**refused**: submission {submission_id} is not yours to cancel; only its "
            "submitter or the admin may.",
        )
    else:
        st.session_state["cancel_outcome"] = (
            "warning",
            f"Submission {submission_id} is not queued or running; nothing to cancel.",
        )


@st.fragment(run_every=data.REFRESH_SECONDS)
def submissions_table(submitter: str | None) -> None:
    """The table and progress bars (only ``submitter``'s when given), re-read every few seconds."""
    rows = data.recent_submissions(submitter=submitter)
    if not rows:
        st.info("No submissions yet: submit an evaluation.")
        return
    for row in rows:
        if row["state"] == "running":
            st.progress(row["progress"], text=f"Submission {row['id']}: {row['progress']:.0%}")
    # Names and messages are data: the grid shows them as plain text, never as HTML.
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    # Streamlit shows a missing value as "None": an empty cell says it better.
    table["queue_position"] = [
        "" if pd.isna(position) else str(int(position)) for position in table["queue_position"]
    ]
    for column in ("split", "failure_category", "failure_message"):
        table[column] = table[column].fillna("")
    st.dataframe(
        table,
        column_config=COLUMNS,
        hide_index=True,
        width="stretch",
    )


@st.fragment(run_every=data.REFRESH_SECONDS)
def training_detail(submission_id: int) -> None:
    """Progress, curves and outcome of one training, re-read every few seconds."""
    report = data.submission_detail(submission_id)
    if report is None or report["kind"] != "train":
        st.warning(f"Submission {submission_id} is not a training.")
        return
    show_training(report)


def choose_training(trainings: list[dict[str, Any]]) -> int:
    """A selectbox of trainings that starts from, and writes back to, the URL's ``training``."""
    labels = {
        training["id"]: f"{training['id']}: {training['model']} ({training['state']})"
        for training in trainings
    }
    ids = list(labels)
    wanted = st.query_params.get("training", "")
    index = ids.index(int(wanted)) if wanted.isdigit() and int(wanted) in ids else 0
    choice = st.selectbox(
        "Training submission",
        ids,
        index=index,
        format_func=lambda id_: labels[id_],
        key="training_id",
    )
    st.query_params["training"] = str(choice)
    return int(choice)


st.title("Submissions")
viewer = identity.current()
if not viewer.may_see_submissions:
    st.info(
        "Submissions are private here: enter your submitter token in the sidebar to see and "
        "cancel yours. The leaderboard is public."
    )
    st.stop()
if viewer.owner_filter is not None:
    st.caption(f"Your submissions, as {escape_markdown(viewer.owner_filter)}.")
submissions_table(viewer.owner_filter)

trainings = data.training_submissions(submitter=viewer.owner_filter)
if trainings:
    st.subheader("Training details")
    training_detail(choose_training(trainings))

st.subheader("Cancel a submission")
id_column, button_column = st.columns([3, 1], vertical_alignment="bottom")
id_column.number_input("Submission id", min_value=1, step=1, value=None, key="cancel_id")
button_column.button("Cancel", key="cancel", on_click=_cancel)
outcome = st.session_state.pop("cancel_outcome", None)
if outcome is not None:
    kind, message = outcome
    {"success": st.success, "error": st.error}.get(kind, st.warning)(message)
