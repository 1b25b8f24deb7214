"""Admin page: re-evaluation on demand (needs the admin secret in the sidebar)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import actions, identity
from dashboard.text import escape_markdown

st.title("Admin")
viewer = identity.current()
if not viewer.admin:
    st.info("This page needs the admin secret: enter it in the sidebar.")
    st.stop()

st.subheader("Re-evaluation")
st.caption(
    "A result is due when its model's Hub revision moved or its folder changed, when its "
    "dataset changed, when its spec has a newer version, or when it is older than "
    "EVALBOARD_REEVALUATE_MAX_AGE_DAYS. Beat runs this check on EVALBOARD_REEVALUATE_SCHEDULE."
)
preview_column, run_column = st.columns(2)
if preview_column.button("Show what is due", key="reevaluate_preview"):
    entries = actions.reevaluation_preview()
    if not entries:
        st.success("Nothing is due: every result measures its model, dataset and spec as they are.")
    else:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "model": e.model,
                        "dataset": e.dataset,
                        "split": e.split,
                        "spec": e.spec,
                        "why": "; ".join(e.reasons) or e.unavailable,
                        "last submission": e.last_submission_id,
                    }
                    for e in entries
                ]
            ),
            hide_index=True,
            width="stretch",
        )
if run_column.button("Re-evaluate what is due", key="reevaluate_run", type="primary"):
    task_id = actions.reevaluate_due()
    st.success(
        escape_markdown(
            f"The check is queued on the light queue (task {task_id}); each due result is "
            "queued once, as the system submitter. Follow them on the Submissions page."
        )
    )

st.subheader("Moderation")
st.caption(
    "A baseline is always shown on its leaderboard and never ranked. A hidden result is kept, "
    "with its reason and an audit trail, but not shown publicly."
)
with st.form("moderate"):
    columns = st.columns([1, 1, 3])
    submission_id = columns[0].number_input(
        "Submission", min_value=1, step=1, value=None, key="moderate_id"
    )
    action = columns[1].selectbox(
        "Action", ["baseline", "unbaseline", "hide", "unhide"], key="moderate_action"
    )
    reason = columns[2].text_input("Reason (needed to hide)", key="moderate_reason")
    if st.form_submit_button("Apply", type="primary"):
        outcome = actions.moderate(submission_id, action, reason, secret=viewer.secret)
        (st.success if outcome.startswith("submission") else st.error)(escape_markdown(outcome))
marked = actions.moderated()
if marked:
    st.dataframe(pd.DataFrame(marked), hide_index=True, width="stretch")
else:
    st.caption("No baseline and no hidden result yet.")
