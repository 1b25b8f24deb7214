"""Printing reports, leaderboards, histories and re-evaluation checks as text, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from db.schemas import HistoryEntry, LeaderboardRow
from evalboard.reports import SubmissionReport

if TYPE_CHECKING:
    from db.leaderboard import BoardView
    from evalboard.reevaluation import DueEntry

LEADERBOARD_COLUMNS = (
    "rank", "display_name", "value", "interval", "n_samples", "source", "revision",
    "submission_id",
)  # fmt: skip
# Spreadsheets run a cell that starts with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# What a terminal acts on or what hides or reorders text, by Unicode category: controls (Cc:
# C0, DEL, C1, so ESC, BEL, CR, LF, NEL), format characters (Cf: the bidi embeddings,
# overrides, isolates and marks, zero-width spaces and joiners, the BOM, soft hyphens, tags),
# line and paragraph separators (Zl, Zp), lone surrogates (Cs, which no UTF-8 terminal takes)
# and unassigned code points (Cn: a later Unicode may make them format characters).
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})
# Where two names must look different: also combining marks (a decomposed é, the invisible
# combining grapheme joiner) and every space but the ordinary one.
_INDISTINCT_CATEGORIES = UNSAFE_CATEGORIES | {"Mn", "Mc", "Me", "Zs"}


def _escape(text: str, categories: frozenset[str]) -> str:
    if text.isascii() and text.isprintable():
        return text  # the common case, at C speed
    out = []
    for char in text:
        if char != " " and unicodedata.category(char) in categories:
            code = ord(char)
            out.append(
                f"\\x{code:02x}" if code < 0x100
                else f"\\u{code:04x}" if code < 0x10000
                else f"\\U{code:08x}"
            )  # fmt: skip
        else:
            out.append(char)
    return "".join(out)


def terminal_text(value: object) -> str:
    """``value`` as text a terminal shows as written, never acts on: every control, format
    (bidi, zero-width), separator, surrogate and unassigned character as ``\\xNN``,
    ``\\uNNNN`` or ``\\UNNNNNNNN``. Every text printer passes what it prints through here."""
    return _escape(str(value), UNSAFE_CATEGORIES)


def distinct_text(value: object) -> str:
    """``terminal_text`` that also escapes combining marks and spaces other than U+0020, so
    that two names that differ only in those look different."""
    return _escape(str(value), _INDISTINCT_CATEGORIES)


def to_json(payload: Any) -> str:
    return json.dumps(payload, indent=2, sort_keys=False, default=str)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table; cells pass through ``terminal_text``."""
    cells = [[terminal_text(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else terminal_text(value)


def csv_cell(value: Any) -> Any:
    """A CSV cell: nested values as JSON; text that a spreadsheet would run is neutralised."""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def leaderboard_records(rows: Sequence[LeaderboardRow]) -> list[dict[str, Any]]:
    return [row.model_dump(mode="json") for row in rows]


def leaderboard_csv(rows: Sequence[LeaderboardRow], metric_names: Sequence[str]) -> str:
    """The rows as CSV: every field, ``metrics`` flattened to ``metric_<name>`` columns."""
    fields = [name for name in LeaderboardRow.model_fields if name != "metrics"]
    fields += [f"metric_{name}" for name in metric_names]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in leaderboard_records(rows):
        metrics = record.pop("metrics")
        record.update({f"metric_{name}": metrics.get(name) for name in metric_names})
        writer.writerow({key: csv_cell(value) for key, value in record.items()})
    return buffer.getvalue()


def leaderboard_text(
    rows: Sequence[LeaderboardRow], fmt: str, *, view: BoardView | None = None
) -> str:
    if fmt == "json":
        return to_json(leaderboard_records(rows))
    if fmt == "csv":
        names = (
            list(view.spec.metrics)
            if view is not None
            else sorted({name for row in rows for name in row.metrics})
        )
        return leaderboard_csv(rows, names).rstrip("\n")
    if not rows:
        return "no results yet for this dataset, split and metric"
    body = table(
        (*LEADERBOARD_COLUMNS, "note"),
        [
            [
                row.rank, row.display_name, row.value,
                "" if row.ci_low is None else f"[{row.ci_low:.4f}, {row.ci_high:.4f}]",
                row.n_samples, row.source, row.revision[:12], row.submission_id,
                _note(row),
            ]
            for row in rows
        ],
    )  # fmt: skip
    direction = "higher is better" if rows[0].higher_is_better else "lower is better"
    spec = f", spec {view.spec.label}, label column {view.label}" if view is not None else ""
    legend = terminal_text(
        f"({rows[0].metric}: {direction}{spec}; ≈: its 95% interval overlaps the row "
        "above, not significantly different)"
    )
    return f"{body}\n{legend}"


def _note(row: LeaderboardRow) -> str:
    if row.status == "stale":
        return f"stale: {'; '.join(row.stale_reasons)}"
    if row.status == "baseline":
        return "baseline (not ranked)"
    return "≈" if row.overlaps_previous else ""


def print_report(report: SubmissionReport, *, as_json: bool) -> None:
    print(to_json(report.as_json()) if as_json else report_text(report))


def report_text(report: SubmissionReport) -> str:
    """A person-readable summary of a submission report or an in-process evaluation; every
    line passes through ``terminal_text``, so no value can act on the terminal or forge a
    line of its own."""
    lines: list[str] = []
    tables: list[int] = []  # lines that are tables, whose cells are escaped already
    if report.submission_id is not None:
        lines.append(f"submission {report.submission_id}: {report.state}")
    else:
        lines.append(f"evaluation: {report.state}")
    if report.queue_position:
        lines.append(f"queue position: {report.queue_position}")
    if report.state == "running":
        lines.append(f"progress: {100 * (report.progress or 0):.0f}%")
    training = report.training
    if training:
        step = f"step {training.step}"
        if training.epoch is not None:
            step += f", epoch {training.epoch:.2f}"
        if training.loss is not None:
            step += f", loss {training.loss:.4f}"
        if training.learning_rate is not None:
            step += f", learning rate {training.learning_rate:.2e}"
        lines.append(f"training: {step}")
        for name, value in sorted(training.validation_metrics.items()):
            lines.append(f"  validation {name}: {value:.4f}")
        if training.model_dir and report.state == "succeeded":
            lines.append(f"trained model: {training.model_dir}")
    if report.lineage:
        lines.append(
            f"fine-tuned from {report.lineage.base_model} by training submission "
            f"{report.lineage.training_submission_id}"
        )
    if report.due_reasons:
        lines.append(
            f"re-evaluation of submission {report.supersedes_submission_id}: "
            f"{'; '.join(report.due_reasons)}"
        )
    if report.error:
        lines.append(f"error [{report.error.category}]: {report.error.message}")
    if report.metrics:
        provenance = report.provenance
        lines.append(
            f"model {report.model} on {report.dataset} split {report.split}: "
            f"{report.n_samples} samples ({report.spec_name} v{report.spec_version})"
        )
        rows = []
        for name, value in report.metrics.items():
            interval = report.intervals.get(name)
            shown = f"[{interval.low:.4f}, {interval.high:.4f}]" if interval else ""
            rows.append((name, value, shown))
        tables.append(len(lines))
        lines.append(table(("metric", "value", "95% interval"), rows))
        if provenance.get("images_per_s"):
            model_rate = provenance.get("model_images_per_s")
            lines.append(
                f"{provenance['images_per_s']} images/s on {provenance.get('device')} "
                f"({provenance.get('precision', 'fp32')}), decoding included"
                + (f"; the model alone: {model_rate} images/s" if model_rate else "")
            )
    if report.flags:
        lines.append(f"flags: {', '.join(report.flags)}")
    return "\n".join(
        line if index in tables else terminal_text(line) for index, line in enumerate(lines)
    )


def history_text(model: str, entries: Sequence[HistoryEntry]) -> str:
    if not entries:
        return terminal_text(f"no results yet for model {model}")
    rows = []
    for entry in entries:
        primary = next(iter(entry.metrics.items()), ("", None))
        changed = (
            "first result"
            if entry.changed is None
            else (", ".join(entry.changed) or "nothing (a re-run)")
        )
        rows.append((
            entry.submission_id, entry.created_at.strftime("%Y-%m-%d %H:%M"),
            f"{entry.dataset} ({entry.config}, {entry.split})", entry.revision[:12],
            entry.dataset_fingerprint[:12], entry.spec_version, columns_text(entry.columns),
            primary[0], primary[1],
            changed + (f" [{', '.join(entry.flags)}]" if entry.flags else ""),
        ))  # fmt: skip
    return table(
        ("submission", "evaluated", "dataset", "revision", "fingerprint", "spec", "columns",
         "metric", "value", "changed since previous"),
        rows,
    )  # fmt: skip


def columns_text(columns: dict[str, str]) -> str:
    """A board's column mapping in a line: ``image=image, label=fine_label``."""
    return ", ".join(f"{role}={column}" for role, column in sorted(columns.items()))


def _board(entry: DueEntry) -> str:
    columns = f", {columns_text(entry.columns)}" if entry.columns else ""
    return f"{entry.model} on {entry.dataset} ({entry.config}, {entry.split}{columns})"


def reevaluation_text(entries: Sequence[DueEntry], *, dry_run: bool) -> str:
    due = [e for e in entries if e.unavailable is None]
    unavailable = [e for e in entries if e.unavailable is not None]
    if not entries:
        return "nothing is due: every result measures its model, dataset and spec as they are"
    lines = []
    for entry in due:
        if dry_run:
            what = "due"
        elif entry.duplicate:
            what = f"already queued as submission {entry.submission_id}"
        else:
            what = f"queued as submission {entry.submission_id}"
        lines.append(f"{_board(entry)}: {what}; {'; '.join(entry.reasons)}")
    for entry in unavailable:
        lines.append(f"{_board(entry)}: not checked: {entry.unavailable}")
    if dry_run:
        lines.append(f"{len(due)} due (dry run: nothing was queued)")
    return "\n".join(terminal_text(line) for line in lines)
