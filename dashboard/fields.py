"""The fields the Submit and Train forms share, worded once: model, dataset, columns,
submitter and webhook, the allowed-paths caption, and how a queued submission is announced.

Each field goes into the slot a page gives it (the form, or one of its columns) under the
page's key prefix, so the two pages keep their own layouts and their widgets' keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from dashboard import identity
from dashboard.text import escape_markdown
from evalboard.errors import EvalboardError
from evalboard.settings import get_settings
from evalboard.submit import Submitted

MODEL_HELP = "A Hub model id or a local folder saved with save_pretrained (safetensors)."
DATASET_HELP = (
    "A Hub dataset id, or a local imagefolder, parquet file/folder or save_to_disk folder."
)


def allowed_paths() -> str:
    """Where local models and datasets may lie, as a sentence's end."""
    return ", ".join(str(path) for path in get_settings().allowed_paths)


def model_fields(
    model_slot: Any, revision_slot: Any, *, prefix: str, label: str = "Model"
) -> tuple[str, str | None]:
    """The model reference and its optional revision (None: the default branch)."""
    model = model_slot.text_input(
        label,
        key=f"{prefix}_model",
        placeholder="google/vit-base-patch16-224 or /path/to/model",
        help=MODEL_HELP,
    )
    revision = revision_slot.text_input(
        "Model revision (optional)",
        key=f"{prefix}_revision",
        help="Branch, tag or commit; empty means the default branch.",
    )
    return str(model), str(revision).strip() or None


def dataset_fields(dataset_slot: Any, config_slot: Any, *, prefix: str) -> tuple[str, str | None]:
    """The dataset reference and its optional config (None: its only or default one)."""
    dataset = dataset_slot.text_input(
        "Dataset",
        key=f"{prefix}_dataset",
        placeholder="ylecun/mnist or /path/to/dataset",
        help=DATASET_HELP,
    )
    config = config_slot.text_input("Dataset config (optional)", key=f"{prefix}_config")
    return str(dataset), str(config).strip() or None


def column_fields(image_slot: Any, label_slot: Any, *, prefix: str) -> dict[str, str]:
    """The column mapping: which column holds the images, which the labels."""
    image = image_slot.text_input("Image column", value="image", key=f"{prefix}_image_column")
    label = label_slot.text_input("Label column", value="label", key=f"{prefix}_label_column")
    return {"image": str(image), "label": str(label)}


def submitter_field(slot: Any, *, prefix: str) -> str:
    return str(
        slot.text_input(
            "Submitter name",
            value="anonymous",
            key=f"{prefix}_submitter",
            help=identity.SUBMITTER_NAME_HELP,
        )
    )


def webhook_field(slot: Any, *, prefix: str, when: str) -> str | None:
    """An optional http(s) URL that hears how the submission ended (``when``: in words)."""
    webhook = slot.text_input(
        "Webhook (optional)",
        key=f"{prefix}_webhook",
        placeholder="https://example.org/hooks/evalboard",
        help=f"An http(s) URL that gets a POST with the outcome {when}.",
    )
    return str(webhook).strip() or None


def announce(queue: Callable[[], Submitted], *, what: str = "") -> None:
    """Queue through ``queue`` and say what happened: queued, a duplicate, or why not
    (``what``: the kind of submission, named in the messages)."""
    noun = f"{what} " if what else ""
    try:
        queued = queue()
    except EvalboardError as error:
        st.error(f"**{error.category.value}**: {escape_markdown(error.message)}")
        return
    if queued.duplicate:
        st.info(
            f"This {noun}is identical to submission {queued.submission_id}; nothing new was "
            "queued. Follow it on the Submissions page."
        )
    else:
        st.success(
            f"Queued {noun}submission {queued.submission_id}. Follow it on the Submissions page."
        )
