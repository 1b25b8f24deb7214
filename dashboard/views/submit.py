"""Submit page: a form that validates, records and enqueues one evaluation."""

from __future__ import annotations

import streamlit as st

from dashboard import actions, identity
from dashboard.text import escape_markdown
from evalboard.errors import EvalboardError
from evalboard.settings import get_settings
from evalboard.submit import EvaluationInput

st.title("Submit an evaluation")
allowed = ", ".join(str(path) for path in get_settings().allowed_paths)
st.caption(escape_markdown(f"Local models and datasets must lie under: {allowed}"))

viewer = identity.current()
identity.show_submitting_as(viewer)

with st.form("submit_evaluation"):
    model = st.text_input(
        "Model",
        key="submit_model",
        placeholder="google/vit-base-patch16-224 or /path/to/model",
        help="A Hub model id or a local folder saved with save_pretrained (safetensors).",
    )
    revision = st.text_input(
        "Model revision (optional)",
        key="submit_revision",
        help="Branch, tag or commit; empty means the default branch.",
    )
    dataset = st.text_input(
        "Dataset",
        key="submit_dataset",
        placeholder="ylecun/mnist or /path/to/dataset",
        help="A Hub dataset id, or a local imagefolder, parquet file/folder or "
        "save_to_disk folder.",
    )
    config = st.text_input("Dataset config (optional)", key="submit_config")
    split = st.text_input(
        "Split (optional)", key="submit_split", help="Empty: test, else validation, else train."
    )
    image_column, label_column = st.columns(2)
    image = image_column.text_input("Image column", value="image", key="submit_image_column")
    label = label_column.text_input("Label column", value="label", key="submit_label_column")
    submitter = st.text_input(
        "Submitter name",
        value="anonymous",
        key="submit_submitter",
        help=identity.SUBMITTER_NAME_HELP,
    )
    webhook = st.text_input(
        "Webhook (optional)",
        key="submit_webhook",
        placeholder="https://example.org/hooks/evalboard",
        help="An http(s) URL that gets a POST with the outcome when the submission ends, and "
        "again when a scheduled re-evaluation changes the model's rank.",
    )
    submitted = st.form_submit_button("Submit", type="primary")

if submitted:
    evaluation = EvaluationInput(
        model=model,
        revision=revision.strip() or None,
        dataset=dataset,
        config=config.strip() or None,
        split=split.strip() or None,
        columns={"image": image, "label": label},
        submitter=submitter,
        webhook=webhook.strip() or None,
    )
    try:
        queued = actions.submit(evaluation, token=viewer.token)
    except EvalboardError as error:
        st.error(f"**{error.category.value}**: {escape_markdown(error.message)}")
    else:
        if queued.duplicate:
            st.info(
                f"This is identical to submission {queued.submission_id}; nothing new was "
                "queued. Follow it on the Submissions page."
            )
        else:
            st.success(
                f"Queued submission {queued.submission_id}. Follow it on the Submissions page."
            )
