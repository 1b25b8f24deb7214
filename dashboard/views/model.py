"""A model's page (``/model?model=…``): every result with its history, full provenance,
lineage, per-class scores, the confusion matrix and a model-index snippet."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data, urlstate
from dashboard.text import escape_markdown
from db.identity import describe_columns
from evalboard import catalog
from evalboard.model_index import IndexedResult, front_matter

MAX_MATRIX_CLASSES = 40  # a bigger confusion matrix is shown as its largest confusions


def label_of(entry: dict[str, Any]) -> str:
    """The board's label column as the leaderboard's selector names it (``fine_label``)."""
    spec = catalog.spec(entry["spec_name"]) if entry["spec_name"] in catalog.SPECS else None
    task = spec.task if spec else catalog.IMAGE_CLASSIFICATION
    return describe_columns(task, entry.get("columns") or {})


def latest_per_view(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest result on each board: dataset, config, split and column mapping."""
    latest: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for entry in history:
        columns = ",".join(f"{r}={c}" for r, c in sorted((entry.get("columns") or {}).items()))
        latest[(entry["dataset"], entry["config"], entry["split"], columns)] = entry
    return list(latest.values())


def over_time(history: list[dict[str, Any]]) -> alt.Chart | None:
    """The primary metric of each result, by date, one line per dataset and split."""
    points = []
    for entry in history:
        spec = catalog.spec(entry["spec_name"]) if entry["spec_name"] in catalog.SPECS else None
        metric = spec.primary_metric if spec else next(iter(entry["metrics"]), None)
        if metric in entry["metrics"]:
            points.append({
                "evaluated": entry["created_at"], "value": entry["metrics"][metric],
                "metric": metric, "view": f"{entry['dataset'].rsplit('/', 1)[-1]} · "
                f"{entry['split']} · {label_of(entry)}", "submission": entry["submission_id"],
            })  # fmt: skip
    if len(points) < 2:
        return None
    return (
        alt.Chart(pd.DataFrame(points))
        .mark_line(point=True)
        .encode(
            x=alt.X("evaluated:T", title="evaluated"),
            y=alt.Y("value:Q", title=points[0]["metric"], scale=alt.Scale(zero=False)),
            color=alt.Color("view:N", title="dataset · split · label column"),
            tooltip=["submission", "view", alt.Tooltip("value:Q", format=".4f"), "evaluated:T"],
        )
        .properties(height=260)
    )


def confusion_chart(report: dict[str, Any]) -> alt.Chart:
    names = report["class_names"]
    cells = [
        {"true": names[i], "predicted": names[j], "count": count}
        for i, row in enumerate(report["confusion"])
        for j, count in enumerate(row)
    ]
    order = list(names)
    return (
        alt.Chart(pd.DataFrame(cells))
        .mark_rect()
        .encode(
            x=alt.X("predicted:N", sort=order),
            y=alt.Y("true:N", sort=order),
            color=alt.Color("count:Q", scale=alt.Scale(scheme="blues")),
            tooltip=["true", "predicted", "count"],
        )
        .properties(height=min(520, 28 * len(order) + 40))
    )


def top_confusions(report: dict[str, Any], limit: int = 20) -> pd.DataFrame:
    names = report["class_names"]
    pairs = [
        {"true": names[i], "predicted": names[j], "count": count}
        for i, row in enumerate(report["confusion"])
        for j, count in enumerate(row)
        if i != j and count
    ]
    return pd.DataFrame(sorted(pairs, key=lambda p: -p["count"])[:limit])


def show_result(report: dict[str, Any]) -> None:
    provenance = report["provenance"]
    packages = provenance.get("packages", {})
    facts = {
        "submission": report["submission_id"],
        "model": report["model"],
        "model revision (sha)": report["revision"],
        "dataset": f"{report['dataset']} ({report['config']}, {report['split']})",
        "dataset fingerprint": provenance.get("dataset_fingerprint"),
        "columns": ", ".join(
            f"{r}={c}" for r, c in sorted((provenance.get("columns") or {}).items())
        ),
        "spec": f"{report['spec_name']} v{report['spec_version']}",
        "precision": provenance.get("precision"),
        "device": provenance.get("device"),
        "batch size": provenance.get("batch_size"),
        "duration (s)": provenance.get("duration_s"),
        "images/s": provenance.get("images_per_s"),
        "samples": report["n_samples"],
        "architecture": provenance.get("model_architecture"),
        "parameters": provenance.get("model_parameters"),
        "worker": provenance.get("worker"),
        "evaluated": report["finished_at"],
        "flags": ", ".join(report["flags"]) or "none",
        "packages": ", ".join(f"{k} {v}" for k, v in packages.items()),
    }
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Metrics** with their 95% intervals")
        st.dataframe(
            pd.DataFrame([
                {"metric": name, "value": value,
                 "low": (report["intervals"].get(name) or {}).get("low"),
                 "high": (report["intervals"].get(name) or {}).get("high")}
                for name, value in report["metrics"].items()
            ]),
            hide_index=True, width="stretch",
            column_config={c: st.column_config.NumberColumn(c, format="%.4f")
                           for c in ("value", "low", "high")},
        )  # fmt: skip
        if "classes" in report:
            st.markdown("**Per class**")
            st.dataframe(
                pd.DataFrame(report["classes"]), hide_index=True, width="stretch",
                column_config={c: st.column_config.NumberColumn(c, format="%.4f")
                               for c in ("accuracy", "precision", "f1")},
            )  # fmt: skip
    with right:
        st.markdown("**Provenance**")
        st.dataframe(
            pd.DataFrame([{"": k, "value": "" if v is None else str(v)} for k, v in facts.items()]),
            hide_index=True, width="stretch", height=35 * (len(facts) + 1) + 3,
        )  # fmt: skip
    if "confusion" in report:
        st.markdown("**Confusion matrix** (rows: true class, columns: predicted)")
        if len(report["class_names"]) <= MAX_MATRIX_CLASSES:
            st.altair_chart(confusion_chart(report), width="stretch")
        else:
            st.dataframe(top_confusions(report), hide_index=True)


st.title("Models")
models = data.models_with_results()
if not models:
    st.info("No results yet: submit an evaluation.")
    st.stop()
wanted = st.query_params.get("model")
if wanted not in models:
    if wanted:
        st.warning(escape_markdown(f"No visible result for model {wanted}."))
    wanted = models[0]
model = st.selectbox("Model", models, index=models.index(wanted), key="model_choice")
st.query_params["model"] = model
history = data.model_history(model)
st.subheader(escape_markdown(data.display_name_of(model)))
st.caption(escape_markdown(f"{model}: {len(history)} result(s)"))

latest = latest_per_view(history)
lineage = None
for entry in reversed(history):
    report = data.public_result(entry["submission_id"])
    if report is not None and report.get("lineage"):
        lineage = report["lineage"]
        break
if lineage:
    st.info(
        escape_markdown(
            f"Fine-tuned from {lineage.get('base_model')} "
            f"(revision {str(lineage.get('base_model_revision'))[:12]}) by training "
            f"submission {lineage['training_submission_id']}."
        )
    )
    with st.expander("Training hyperparameters"):
        from dashboard.hyperparameters import hyperparameter_table

        st.dataframe(hyperparameter_table(lineage.get("parameters") or {}), hide_index=True)

st.subheader("Results")
table = pd.DataFrame([
    {"submission": e["submission_id"], "dataset": e["dataset"], "config": e["config"],
     "split": e["split"], "label column": label_of(e), **e["metrics"],
     "board": urlstate.board_link(dataset=e["dataset"], config=e["config"], split=e["split"],
                                  label=label_of(e), spec=e["spec_name"]),
     "revision": e["revision"][:12],
     "fingerprint": e["dataset_fingerprint"][:12], "spec": e["spec_version"],
     "evaluated": e["created_at"], "changed": "first result" if e["changed"] is None
     else (", ".join(e["changed"]) or "nothing (re-run)"), "flags": ", ".join(e["flags"])}
    for e in history
])  # fmt: skip
st.dataframe(
    table, hide_index=True, width="stretch",
    column_config={"board": st.column_config.LinkColumn(
        "board", display_text="leaderboard ↗", help="The board of this dataset, split and label "
        "column: two label columns of one split are two boards",
    )},
)  # fmt: skip
chart = over_time(history)
if chart is not None:
    st.markdown("**Score over time**")
    st.altair_chart(chart, width="stretch")

st.subheader("One result in detail")
choices = {
    f"{e['submission_id']}: {e['dataset'].rsplit('/', 1)[-1]} ({e['split']}, label column "
    f"{label_of(e)}), {str(e['created_at'])[:16]}": e["submission_id"]
    for e in reversed(history)
}
label = st.selectbox("Result", list(choices), key="model_result")
report = data.public_result(choices[label])
if report is None:
    st.warning("This result is not available.")
else:
    show_result(report)

st.subheader("For the model card")
st.caption("Paste between the `---` lines at the top of the model's README.md.")
snippet = front_matter(
    data.display_name_of(model),
    [
        IndexedResult(
            catalog.spec(e["spec_name"]).task if e["spec_name"] in catalog.SPECS else "",
            e["dataset"], e["config"], e["split"], e["metrics"], e["dataset_fingerprint"],
        )
        for e in latest
    ],
)  # fmt: skip
st.code(snippet, language="yaml")
