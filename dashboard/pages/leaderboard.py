"""Leaderboard page: pick a (dataset, config, split, metric) view; see models ranked.

Fine-tuned models show their base model, training submission and hyperparameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard import data
from dashboard.hyperparameters import hyperparameter_table
from dashboard.text import escape_markdown

TABLE_COLUMNS: dict[str, Any] = {
    "rank": st.column_config.NumberColumn("rank", format="%d"),
    "model": "model",
    "value": st.column_config.NumberColumn("value", format="%.4f"),
    "n_samples": st.column_config.NumberColumn("samples", format="%d"),
    "revision": "revision",
    "model_source": "source",
    "base_model": "fine-tuned from",
    "spec": "spec",
    "dataset_fingerprint": "dataset fingerprint",
    "lineage_submission_id": st.column_config.NumberColumn("training submission", format="%d"),
    "submission_id": st.column_config.NumberColumn("submission", format="%d"),
    "evaluated_at": st.column_config.DatetimeColumn("evaluated", format="YYYY-MM-DD HH:mm"),
}


def choose(label: str, options: Sequence[str], column: DeltaGenerator) -> str:
    """A selectbox that starts from the shared URL's value and writes the choice back to it."""
    wanted = st.query_params.get(label, "")
    index = list(options).index(wanted) if wanted in options else 0
    choice = column.selectbox(label, options, index=index, key=f"leaderboard_{label}")
    st.query_params[label] = choice
    return str(choice)


def unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


st.title("Leaderboard")
choices = data.leaderboard_choices()
if not choices:
    st.info("No results yet: submit an evaluation.")
    st.stop()

# Each box offers only what exists under the choices to its left.
columns = st.columns(5)
spec = choose("spec", unique([c[0] for c in choices]), columns[0])
views = [c[1:] for c in choices if c[0] == spec]
dataset = choose("dataset", unique([c[0] for c in views]), columns[1])
config = choose("config", unique([c[1] for c in views if c[0] == dataset]), columns[2])
split = choose("split", unique([c[2] for c in views if c[:2] == (dataset, config)]), columns[3])
metric = choose(
    "metric", unique([c[3] for c in views if c[:3] == (dataset, config, split)]), columns[4]
)

rows = data.leaderboard_rows(spec, dataset, config, split, metric)
if not rows:
    st.info("No results for this view yet.")
    st.stop()

direction = "higher is better" if rows[0]["higher_is_better"] else "lower is better"
st.caption(escape_markdown(f"Ranked by {metric} on {dataset} ({config}, {split}): {direction}."))
table = pd.DataFrame(rows)
table["revision"] = table["revision"].str.slice(0, 12)
table["dataset_fingerprint"] = table["dataset_fingerprint"].str.slice(0, 12)
table["spec"] = table["spec_name"] + " v" + table["spec_version"]
column_config = dict(TABLE_COLUMNS, value=st.column_config.NumberColumn(metric, format="%.4f"))
st.dataframe(
    table[list(TABLE_COLUMNS)], column_config=column_config, hide_index=True, width="stretch"
)

fine_tuned = {row["model"]: row for row in rows if row["lineage_submission_id"] is not None}
if fine_tuned:
    with st.expander(f"Fine-tuned models ({len(fine_tuned)}): lineage and hyperparameters"):
        chosen = fine_tuned[
            st.selectbox("Fine-tuned model", list(fine_tuned), key="leaderboard_fine_tuned")
        ]
        st.caption(
            escape_markdown(
                f"Fine-tuned from {chosen['base_model'] or 'an unknown base model'} "
                f"by training submission {chosen['lineage_submission_id']}."
            )
        )
        st.dataframe(hyperparameter_table(chosen["training_parameters"] or {}), hide_index=True)
