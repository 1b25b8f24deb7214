"""Train page: a form that validates, records and enqueues one fine-tuning of a base model."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import actions, fields, identity
from dashboard.hyperparameters import DEFAULTS, bounds, choices, int_bounds
from dashboard.text import escape_markdown
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
st.caption(
    escape_markdown(
        "The base model is fine-tuned on the train split, validated every epoch, and the best "
        f"model is evaluated on the test split. Local folders must lie under: "
        f"{fields.allowed_paths()}"
    )
)

viewer = identity.current()
identity.show_submitting_as(viewer)

with st.form("submit_training"):
    st.subheader("Base model and data")
    model, revision = fields.model_fields(*st.columns(2), prefix="train", label="Base model")
    dataset, config = fields.dataset_fields(*st.columns(2), prefix="train")
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
    columns = fields.column_fields(image_column, label_column, prefix="train")
    submitter = fields.submitter_field(submitter_column, prefix="train")

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
    webhook = fields.webhook_field(st, prefix="train", when="when the training ends")
    submitted = st.form_submit_button("Start training", type="primary")

if submitted:
    evaluation = EvaluationInput(
        model=model,
        revision=revision,
        dataset=dataset,
        config=config,
        columns=columns,
        submitter=submitter,
        webhook=webhook,
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
    fields.announce(
        lambda: actions.train(evaluation, training, token=viewer.token), what="training"
    )
