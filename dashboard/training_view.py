"""The detail view of one training submission: progress, curves, hyperparameters, the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.artifacts import model_zip_later
from dashboard.hyperparameters import hyperparameter_table
from dashboard.text import escape_markdown

# Log field → series name, for the two charts.
LOSS_SERIES = {"loss": "training loss", "eval_loss": "validation loss"}
VALIDATION_SERIES = {
    "eval_accuracy": "validation accuracy",
    "eval_f1_macro": "validation F1 (macro)",
}


def curves(logs: list[dict[str, Any]], series: dict[str, str]) -> pd.DataFrame:
    """Long format, one row per (series, step) that has a value: each series is a line of its
    own points, so one logged every epoch is drawn as a line, not broken by the others' steps.

    A resumed training logs some steps again; the last entry of a step wins.
    """
    rows = [
        {"series": name, "step": int(log["step"]), "epoch": log.get("epoch"),
         "value": float(log[key])}
        for log in logs
        for key, name in series.items()
        if log.get(key) is not None
    ]  # fmt: skip
    if not rows:
        return pd.DataFrame(columns=["series", "step", "epoch", "value"])
    table = pd.DataFrame(rows).groupby(["series", "step"], sort=True).last().reset_index()
    return table


def curve_chart(table: pd.DataFrame, y_title: str) -> alt.Chart:
    """Lines with a marker on every logged point: a series with few points stays visible."""
    return (
        alt.Chart(table)
        .mark_line(point=True)
        .encode(
            x=alt.X("step:Q", title="step"),
            y=alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False)),
            color=alt.Color("series:N", title=None, scale=alt.Scale(scheme="tableau10")),
            tooltip=["series", "step", alt.Tooltip("epoch:Q", format=".2f"),
                     alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(height=260)
    )  # fmt: skip


def number(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def progress_text(training: dict[str, Any]) -> str:
    return (
        f"Step {training['step']} · epoch {number(training['epoch'], '.2f')} · "
        f"loss {number(training['loss'], '.4f')} · "
        f"learning rate {number(training['learning_rate'], '.2e')}"
    )


def show_progress(report: dict[str, Any]) -> None:
    training = report["training"]
    st.progress(min(max(float(report["progress"]), 0.0), 1.0), text=progress_text(training))
    validation = training["validation_metrics"]
    columns = st.columns(5)
    columns[0].metric("Step", training["step"])
    columns[1].metric("Epoch", number(training["epoch"], ".2f"))
    columns[2].metric("Training loss", number(training["loss"], ".4f"))
    columns[3].metric("Learning rate", number(training["learning_rate"], ".2e"))
    columns[4].metric("Validation accuracy", number(validation.get("accuracy"), ".4f"))


def show_curves(logs: list[dict[str, Any]]) -> None:
    if not logs:
        st.info("No training step logged yet.")
        return
    loss_column, validation_column = st.columns(2)
    with loss_column:
        st.markdown("**Loss per step**")
        loss = curves(logs, LOSS_SERIES)
        if loss.empty:
            st.caption("No loss logged yet.")
        else:
            st.altair_chart(curve_chart(loss, "loss"), width="stretch")
    with validation_column:
        st.markdown("**Validation per step**")
        validation = curves(logs, VALIDATION_SERIES)
        if validation.empty:
            st.caption("No validation yet: it runs at the end of each epoch.")
        else:
            st.altair_chart(curve_chart(validation, "score"), width="stretch")


def show_outcome(report: dict[str, Any]) -> None:
    """Failure reason, or for a succeeded training the test metrics and the model download."""
    error = report["error"]
    if error is not None:
        st.error(f"**{error['category']}**: {escape_markdown(error['message'] or '')}")
    if report["state"] != "succeeded":
        return
    training = report["training"]
    split = report["provenance"].get("split", "test")
    st.markdown(f"**Test metrics** ({escape_markdown(str(split))}, {report['n_samples']} images)")
    metrics = pd.DataFrame(
        [{"metric": name, "value": value} for name, value in report["metrics"].items()],
        columns=["metric", "value"],
    )
    st.dataframe(
        metrics,
        column_config={"value": st.column_config.NumberColumn("value", format="%.4f")},
        hide_index=True,
    )
    model_dir = Path(training["model_dir"]) if training["model_dir"] else None
    if model_dir is None or not model_dir.is_dir():
        st.warning("The trained model folder is not on this machine; nothing to download.")
        return
    st.download_button(
        "Download the trained model (zip)",
        # Zipped on click, not on every refresh of this view.
        data=model_zip_later(model_dir),
        file_name=f"evalboard-training-{report['submission_id']}-model.zip",
        mime="application/zip",
        on_click="ignore",
        icon=":material/download:",
        key=f"download_model_{report['submission_id']}",
    )


def show_training(report: dict[str, Any]) -> None:
    """Everything about one training submission, from its ``submission_report``."""
    training = report["training"]
    st.caption(
        escape_markdown(
            f"Submission {report['submission_id']} ({report['state']}): fine-tunes "
            f"{report['model']} on {report['dataset']} ({report['config']}, {report['split']}), "
            f"by {report['submitter']}."
        )
    )
    show_progress(report)
    show_curves(training["logs"])
    outcome_column, parameters_column = st.columns(2)
    with outcome_column:
        show_outcome(report)
        for label, key in (
            ("Output folder", "output_dir"),
            ("Resumed from", "resumed_from"),
            ("Best checkpoint", "best_checkpoint"),
        ):
            if training[key]:
                st.caption(escape_markdown(f"{label}: {training[key]}"))
        if training["evaluation_submission_id"]:
            st.caption(f"Test evaluation: submission {training['evaluation_submission_id']}.")
    with parameters_column:
        st.markdown("**Hyperparameters**")
        st.dataframe(hyperparameter_table(training["parameters"]), hide_index=True)
