"""Printing reports and leaderboards as tables, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from db.schemas import LeaderboardRow

LEADERBOARD_COLUMNS = ("rank", "model", "revision", "value", "metric", "n_samples", "submission_id")


def to_json(payload: Any) -> str:
    return json.dumps(payload, indent=2, sort_keys=False, default=str)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def leaderboard_text(rows: Sequence[LeaderboardRow], fmt: str) -> str:
    records = [row.model_dump(mode="json") for row in rows]
    if fmt == "json":
        return to_json(records)
    if fmt == "csv":
        buffer = io.StringIO()
        fields = list(LeaderboardRow.model_fields)
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue().rstrip("\n")
    if not rows:
        return "no results yet for this dataset, split and metric"
    direction = "higher is better" if rows[0].higher_is_better else "lower is better"
    body = table(
        LEADERBOARD_COLUMNS,
        [
            [getattr(row, c) if c != "revision" else row.revision[:12] for c in LEADERBOARD_COLUMNS]
            for row in rows
        ],
    )
    return f"{body}\n({rows[0].metric}: {direction})"


def report_text(report: dict[str, Any]) -> str:
    """A person-readable summary of a submission report or an in-process evaluation."""
    lines = []
    if report.get("submission_id") is not None:
        lines.append(f"submission {report['submission_id']}: {report['state']}")
    else:
        lines.append(f"evaluation: {report['state']}")
    if report.get("queue_position"):
        lines.append(f"queue position: {report['queue_position']}")
    if report.get("state") == "running":
        lines.append(f"progress: {100 * (report.get('progress') or 0):.0f}%")
    training = report.get("training")
    if training:
        step = f"step {training['step']}"
        if training.get("epoch") is not None:
            step += f", epoch {training['epoch']:.2f}"
        if training.get("loss") is not None:
            step += f", loss {training['loss']:.4f}"
        if training.get("learning_rate") is not None:
            step += f", learning rate {training['learning_rate']:.2e}"
        lines.append(f"training: {step}")
        for name, value in sorted(training.get("validation_metrics", {}).items()):
            lines.append(f"  validation {name}: {value:.4f}")
        if training.get("model_dir") and report.get("state") == "succeeded":
            lines.append(f"trained model: {training['model_dir']}")
    if report.get("lineage"):
        lineage = report["lineage"]
        lines.append(
            f"fine-tuned from {lineage.get('base_model')} by training submission "
            f"{lineage.get('training_submission_id')}"
        )
    if report.get("error"):
        lines.append(f"error [{report['error']['category']}]: {report['error']['message']}")
    if report.get("metrics"):
        provenance = report.get("provenance") or {}
        lines.append(
            f"model {provenance.get('model', report.get('model'))} on "
            f"{provenance.get('dataset', report.get('dataset'))} "
            f"split {provenance.get('split', report.get('split'))}: {report['n_samples']} samples"
        )
        lines.append(table(("metric", "value"), sorted(report["metrics"].items())))
        if provenance.get("images_per_s"):
            lines.append(f"{provenance['images_per_s']} images/s on {provenance.get('device')}")
    return "\n".join(lines)
