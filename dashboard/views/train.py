"""Train page: a form that validates, records and enqueues one fine-tuning of a base model."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import actions, identity
from dashboard.hyperparameters import DEFAULTS, bounds, choices, int_bounds
from dashboard.text import escape_markdown
from evalboard.errors import EvalboardError
from evalboard.settings import get_settings
from evalboard.submit import EvaluationInput


def float_input(column: Any, label: str, name: str, *, step: float, fmt: str = "%.4f") -> float:
    low, high = bounds(name)
    return float(
        column.number_input(
            label,
            min_value=low,
            max_value=high,
            value=float(getattr(DEFAULTS, name)),
            step=step,
            format=fmt,
            key=f"train_{name}",
        )
    )


def int_input(column: Any, label: str, name: str, **overrides: Any) -> int:
    low, high = int_bounds(name)
    options: dict[str, Any] = {"min_value": low, "max_value": high, "step": 1}
    options.update(overrides)
    value = getattr(DEFAULTS, name)
    return int(column.number_input(label, value=int(value or 0), key=f"train_{name}", **options))


st.title("Fine-tune a model")
allowed = ", ".join(str(path) for path in get_settings().allowed_paths)
st.caption(
    escape_markdown(
        "The base model is fine-tuned on the train split, validated every epoch, and the best "
        f"model is evaluated on the test split. Local folders must lie under: {allowed}"
    )
)

viewer = identity.current()
identity.show_submitting_as(viewer)

with st.form("submit_training"):
    st.subheader("Base model and data")
    model_column, revision_column = st.columns(2)
    model = model_column.text_input(
        "Base model",
        key="train_model",
        placeholder="google/vit-base-patch16-224 or /path/to/model",
        help="A Hub model id or a local folder saved with save_pretrained (safetensors).",
    )
    revision = revision_column.text_input(
        "Model revision (optional)",
        key="train_revision",
        help="Branch, tag or commit; empty means the default branch.",
    )
    dataset_column, config_column = st.columns(2)
    dataset = dataset_column.text_input(
        "Dataset",
        key="train_dataset",
        placeholder="ylecun/mnist or /path/to/dataset",
        help="A Hub dataset id, or a local imagefolder, parquet file/folder or "
        "save_to_disk folder.",
    )
    config = config_column.text_input("Dataset config (optional)", key="train_config")
    split_columns = st.columns(3)
    train_split = split_columns[0].text_input(
        "Train split", value=DEFAULTS.train_split, key="train_train_split"
    )
    validation_split = split_columns[1].text_input(
        "Validation split (optional)",
        value=DEFAULTS.validation_split or "",
        key="train_validation_split",
        help="Empty: a stratified share of the train split (the validation fraction below).",
    )
    test_split = split_columns[2].text_input(
        "Test split (optional)",
        value=DEFAULTS.test_split or "",
        key="train_test_split",
        help="Empty: test, else validation. The trained model is ranked on this split.",
    )
    image_column, label_column, submitter_column = st.columns(3)
    image = image_column.text_input("Image column", value="image", key="train_image_column")
    label = label_column.text_input("Label column", value="label", key="train_label_column")
    submitter = submitter_column.text_input(
        "Submitter name",
        value="anonymous",
        key="train_submitter",
        help=identity.SUBMITTER_NAME_HELP,
    )

    st.subheader("Hyperparameters")
    row = st.columns(4)
    epochs = float_input(row[0], "Epochs", "epochs", step=1.0, fmt="%.2f")
    learning_rate = float_input(row[1], "Learning rate", "learning_rate", step=1e-5, fmt="%.2e")
    batch_size = int_input(row[2], "Batch size", "batch_size")
    gradient_accumulation = int_input(row[3], "Gradient accumulation", "gradient_accumulation")
    row = st.columns(4)
    warmup_ratio = float_input(row[0], "Warmup ratio", "warmup_ratio", step=0.05, fmt="%.2f")
    weight_decay = float_input(row[1], "Weight decay", "weight_decay", step=0.01)
    validation_fraction = float_input(
        row[2], "Validation fraction", "validation_fraction", step=0.05, fmt="%.2f"
    )
    seed = int_input(row[3], "Seed", "seed")
    row = st.columns(4)
    precisions = choices("mixed_precision")
    mixed_precision = row[0].selectbox(
        "Mixed precision",
        precisions,
        index=precisions.index(DEFAULTS.mixed_precision),
        key="train_mixed_precision",
        help="auto: bf16 where the GPU supports it, else fp16; full precision on CPU.",
    )
    early_stopping_patience = int_input(
        row[1],
        "Early stopping patience",
        "early_stopping_patience",
        min_value=0,  # 0 is the form's word for "no early stopping"
        help="Epochs without improvement before stopping; 0 turns early stopping off.",
    )
    early_stopping_threshold = float_input(
        row[2], "Early stopping threshold", "early_stopping_threshold", step=0.001
    )
    auto_find_batch_size = row[3].checkbox(
        "Auto find batch size",
        value=DEFAULTS.auto_find_batch_size,
        key="train_auto_find_batch_size",
        help="Halve the batch size until it fits in memory.",
    )
    augment = row[3].checkbox(
        "Light augmentation",
        value=DEFAULTS.augment,
        key="train_augment",
        help="Small random rotations, shifts and brightness changes of training images.",
    )
    webhook = st.text_input(
        "Webhook (optional)",
        key="train_webhook",
        placeholder="https://example.org/hooks/evalboard",
        help="An http(s) URL that gets a POST with the outcome when the training ends.",
    )
    submitted = st.form_submit_button("Start training", type="primary")

if submitted:
    evaluation = EvaluationInput(
        model=model,
        revision=revision.strip() or None,
        dataset=dataset,
        config=config.strip() or None,
        columns={"image": image, "label": label},
        submitter=submitter,
        webhook=webhook.strip() or None,
    )
    training = {
        "train_split": train_split.strip() or DEFAULTS.train_split,
        "validation_split": validation_split.strip() or None,
        "validation_fraction": validation_fraction,
        "test_split": test_split.strip() or None,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "warmup_ratio": warmup_ratio,
        "weight_decay": weight_decay,
        "gradient_accumulation": gradient_accumulation,
        "seed": seed,
        "mixed_precision": mixed_precision,
        "early_stopping_patience": early_stopping_patience or None,
        "early_stopping_threshold": early_stopping_threshold,
        "auto_find_batch_size": auto_find_batch_size,
        "augment": augment,
    }
    try:
        queued = actions.train(evaluation, training, token=viewer.token)
    except EvalboardError as error:
        st.error(f"**{error.category.value}**: {escape_markdown(error.message)}")
    else:
        if queued.duplicate:
            st.info(
                f"This training is identical to submission {queued.submission_id}; nothing "
                "new was queued. Follow it on the Submissions page."
            )
        else:
            st.success(
                f"Queued training submission {queued.submission_id}. "
                "Follow it on the Submissions page."
            )
