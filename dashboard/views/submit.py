"""Submit page: a form that validates, records and enqueues one evaluation."""

from __future__ import annotations

import streamlit as st

from dashboard import actions, fields, identity
from dashboard.text import escape_markdown
from evalboard.submit import EvaluationInput

st.title("Submit an evaluation")
st.caption(escape_markdown(f"Local models and datasets must lie under: {fields.allowed_paths()}"))

viewer = identity.current()
identity.show_submitting_as(viewer)

with st.form("submit_evaluation"):
    model, revision = fields.model_fields(st, st, prefix="submit")
    dataset, config = fields.dataset_fields(st, st, prefix="submit")
    split = st.text_input(
        "Split (optional)", key="submit_split", help="Empty: test, else validation, else train."
    )
    columns = fields.column_fields(*st.columns(2), prefix="submit")
    submitter = fields.submitter_field(st, prefix="submit")
    webhook = fields.webhook_field(
        st,
        prefix="submit",
        when="when the submission ends, and again when a scheduled re-evaluation changes the "
        "model's rank",
    )
    submitted = st.form_submit_button("Submit", type="primary")

if submitted:
    evaluation = EvaluationInput(
        model=model,
        revision=revision,
        dataset=dataset,
        config=config,
        split=split.strip() or None,
        columns=columns,
        submitter=submitter,
        webhook=webhook,
    )
    fields.announce(lambda: actions.submit(evaluation, token=viewer.token))
