"""Leaderboard: pick a task, dataset, config, split, label column and metric; read, compare,
export. The same split read with two label columns is two boards.

Every choice and filter lives in the URL, so a copied link opens the same view. Rows show
every metric of the spec side by side, the ranking metric's 95% interval and a marker where
neighbouring rows are not significantly different; a row opens its model's page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data, urlstate
from dashboard.text import escape_markdown
from db.board_choices import default_columns
from db.board_page import BoardFilters
from db.identity import columns_text, describe_columns
from evalboard import catalog

SOURCES = ["submitted", "trained", "baseline"]


def _parameters(count: Any) -> str:
    if count is None or pd.isna(count):
        return ""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.3g}{unit}"
    return str(int(count))


def filters_from_url(page: Any) -> BoardFilters:
    """The filter widgets, started from (and written back to) the URL."""
    with st.expander("Search and filters", expanded=urlstate.any_set(urlstate.FILTER_KEYS)):
        top = st.columns([2, 1, 1, 1])
        search = urlstate.text(top[0], "Search by name", "q", key="board_search")
        sources = urlstate.multi(top[1], "Source", "source", page.sources or SOURCES,
                                 key="board_sources")  # fmt: skip
        architectures = urlstate.multi(top[2], "Architecture", "arch", page.architectures,
                                       key="board_architectures")  # fmt: skip
        submitters = urlstate.multi(top[3], "Submitter", "submitter", page.submitters,
                                    key="board_submitters")  # fmt: skip
        bottom = st.columns([2, 2, 1])
        low = high = None
        if page.parameter_range is not None:
            low, high = urlstate.int_range(
                bottom[0], "Parameters", "params", page.parameter_range, key="board_params"
            )
        since, until = urlstate.date_range(bottom[1], "Evaluated between", key="board_dates")
        include_stale = urlstate.flag(bottom[2], "Show stale rows", "stale", True,
                                      key="board_stale")  # fmt: skip
    return BoardFilters(
        search=search,
        sources=tuple(sources),
        architectures=tuple(architectures),
        submitters=tuple(submitters),
        min_parameters=low,
        max_parameters=high,
        since=datetime.combine(since, time(), UTC) if since else None,
        until=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
        include_stale=include_stale,
    )


def table_of(rows: list[dict[str, Any]], spec: catalog.Spec, metric: str) -> pd.DataFrame:
    """The page's rows as the grid shows them: the ranking metric and its interval first, then
    the spec's other metrics, then what the model is and when it was measured."""
    others = [name for name in spec.metrics if name != metric]
    records = []
    for row in rows:
        record: dict[str, Any] = {
            "rank": row["rank"],
            "≈": "≈" if row["overlaps_previous"] else "",
            "model": row["display_name"],
            metric: row["value"],
            "95% interval": (
                f"{row['ci_low']:.3f} – {row['ci_high']:.3f}" if row["ci_low"] is not None else ""
            ),
        }
        for name in others:
            record[name] = row["metrics"].get(name)
        record.update(
            n=row["n_samples"],
            source=row["source"],
            architecture=(row["architecture"] or "").removesuffix("ForImageClassification"),
            parameters=_parameters(row["parameter_count"]),
            revision=row["revision"][:10],
            date=row["evaluated_at"],
            status="stale: " + "; ".join(row["stale_reasons"])
            if row["status"] == "stale"
            else row["status"],
            page=urlstate.model_link(row["model"]),
        )
        records.append(record)
    table = pd.DataFrame(records)
    if not table.empty:
        table["rank"] = table["rank"].astype("Int64")
    return table


def column_config(spec: catalog.Spec, metric: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "rank": st.column_config.NumberColumn("rank", format="%d", width=40),
        "≈": st.column_config.TextColumn(
            "≈", width=28,
            help="≈: its 95% interval overlaps the row above: not significantly different",
        ),
        "model": st.column_config.TextColumn("model", width="medium"),
        "95% interval": st.column_config.TextColumn("95% interval", width=110),
        "n": st.column_config.NumberColumn("n", format="%d", help="samples evaluated", width=50),
        "source": st.column_config.TextColumn("source", width=75),
        "architecture": st.column_config.TextColumn("architecture", width=90),
        "parameters": st.column_config.TextColumn("params", width=60),
        "revision": st.column_config.TextColumn("revision", width=90),
        "date": st.column_config.DatetimeColumn("evaluated", format="YYYY-MM-DD", width=90),
        "status": st.column_config.TextColumn("status", width=80),
        "page": st.column_config.LinkColumn(
            "details", display_text="open ↗", width=60,
            help="The model's page: every result, provenance, per-class scores",
        ),
    }  # fmt: skip
    for name in spec.metrics:
        entry = catalog.metric(name)
        config[name] = st.column_config.NumberColumn(
            f"{name} ▼" if name == metric else name, format="%.4f", width=80,
            help=f"{entry.description} ({entry.direction})",
        )  # fmt: skip
    return config


def top_chart(points: list[dict[str, Any]], metric: str) -> alt.Chart:
    """The top rows as bars with their 95% interval as whiskers."""
    frame = pd.DataFrame(points)
    order = list(frame["name"])
    y = alt.Y("name:N", sort=order, title=None, axis=alt.Axis(labelOverlap=False))
    bars = alt.Chart(frame).mark_bar(opacity=0.75).encode(
        y=y, x=alt.X("value:Q", title=metric),
        tooltip=["rank", "name", alt.Tooltip("value:Q", format=".4f"),
                 alt.Tooltip("low:Q", format=".4f"), alt.Tooltip("high:Q", format=".4f")],
    )  # fmt: skip
    whiskers = alt.Chart(frame).mark_rule(strokeWidth=2).encode(y=y, x="low:Q", x2="high:Q")
    return (bars + whiskers).properties(height=26 * len(frame) + 30).configure_axisY(labelLimit=260)


def size_chart(points: list[dict[str, Any]], metric: str) -> alt.Chart:
    """Score against parameter count (log scale)."""
    frame = pd.DataFrame(points)
    return (
        alt.Chart(frame)
        .mark_circle(size=70)
        .encode(
            x=alt.X("parameters:Q", scale=alt.Scale(type="log"), title="parameters"),
            y=alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False)),
            color=alt.Color("source:N", scale=alt.Scale(domain=SOURCES, scheme="tableau10")),
            tooltip=["rank", "name", "parameters", alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(height=320)
    )


st.title("Leaderboard")
choices = data.leaderboard_choices()
if not choices:
    st.info("No results yet: submit an evaluation.")
    st.stop()

# Each box offers only what exists under the choices to its left.
specs = {spec: catalog.spec(spec) for spec in dict.fromkeys(c[0] for c in choices)}
row = st.columns(7)
task = urlstate.choose(row[0], "task", "task", list(dict.fromkeys(s.task for s in specs.values())))
task_specs = [name for name, spec in specs.items() if spec.task == task]
default_spec = catalog.default_spec(task).name
if len(task_specs) > 1:
    spec_name = urlstate.choose(row[1], "spec", "spec", task_specs, default=default_spec)
else:
    spec_name = task_specs[0]
    row[1].selectbox("spec", [spec_name], disabled=True, key="board_spec_fixed")
spec = specs[spec_name]
views = [c[1:] for c in choices if c[0] == spec_name]  # (dataset, config, split, columns, metric)
dataset = urlstate.choose(row[2], "dataset", "dataset", list(dict.fromkeys(c[0] for c in views)))
config = urlstate.choose(
    row[3], "config", "config", list(dict.fromkeys(c[1] for c in views if c[0] == dataset))
)
split = urlstate.choose(
    row[4], "split", "split",
    list(dict.fromkeys(c[2] for c in views if c[:2] == (dataset, config))),
)  # fmt: skip
# One board per column mapping, named by its label column (``?label=fine_label``); the task's
# default columns first, as a submission without --label-column reads them.
mappings = [
    json.loads(text)
    for text in dict.fromkeys(c[3] for c in views if c[:3] == (dataset, config, split))
]
boards = {describe_columns(spec.task, mapping): mapping for mapping in mappings}
default_board = default_columns(spec.task, mappings) or mappings[0]
label = urlstate.choose(
    row[5], "label column", "label",
    sorted(boards, key=lambda name: (boards[name] != default_board, name)),
    default=describe_columns(spec.task, default_board),
)  # fmt: skip
columns = columns_text(boards[label])
metric = urlstate.choose(
    row[6], "metric", "metric", list(spec.metrics), default=spec.primary_metric
)

page_number = urlstate.page()
unfiltered = data.leaderboard_page(
    spec_name, dataset, config, split, metric, BoardFilters(), 1, 1, columns=columns
)
filters = filters_from_url(unfiltered)
page = data.leaderboard_page(
    spec_name, dataset, config, split, metric, filters, page_number, columns=columns
)
entry = catalog.metric(metric)
st.caption(
    escape_markdown(
        f"Ranked by {metric} ({entry.direction}) on {dataset} ({config}, {split}), "
        f"label column {label}, spec {spec.label}: {page.ranked} ranked, {page.stale} stale, "
        f"{page.baselines} baseline(s). Stale rows were measured on an older spec, dataset or "
        "model revision and wait for re-evaluation; baselines are shown, never ranked."
    )
)
if not page.rows:
    st.info("No row matches these filters.")
    st.stop()

table = table_of([r.model_dump() for r in page.rows], spec, metric)
st.dataframe(
    table, column_config=column_config(spec, metric), hide_index=True, width="stretch",
    key="board_table",
)  # fmt: skip
pager = st.columns([1, 1, 4, 2])
if page.page > 1 and pager[0].button("← Previous", key="board_previous"):
    urlstate.set_page(page.page - 1)
    st.rerun()
if page.page < page.pages and pager[1].button("Next →", key="board_next"):
    urlstate.set_page(page.page + 1)
    st.rerun()
pager[2].caption(f"Page {page.page} of {page.pages} · {page.matching} rows match")
names = {row.display_name: row.model for row in page.rows}
chosen = pager[3].selectbox("Open a model's page", list(names), key="board_open_model")
urlstate.link_to_model(pager[3], names[chosen], f"Open {chosen}")


def export(fmt: str) -> Callable[[], str]:
    """The view as filtered, exported only when someone clicks."""
    return lambda: data.leaderboard_export(
        spec_name, dataset, config, split, metric, filters, fmt, columns=columns
    )


downloads = st.columns(2)
for column, fmt, mime in ((downloads[0], "csv", "text/csv"),
                          (downloads[1], "json", "application/json")):  # fmt: skip
    column.download_button(
        f"Download this view as {fmt.upper()}",
        data=export(fmt),
        file_name=f"leaderboard-{split}-{metric}.{fmt}",
        mime=mime,
        on_click="ignore",
        key=f"board_download_{fmt}",
        icon=":material/download:",
    )

chart_columns = st.columns(2)
if page.top:
    with chart_columns[0]:
        st.markdown(f"**Top {len(page.top)}** with 95% intervals")
        st.altair_chart(top_chart(page.top, metric), width="stretch")
if page.scatter:
    with chart_columns[1]:
        st.markdown("**Score against size**")
        st.altair_chart(size_chart(page.scatter, metric), width="stretch")
