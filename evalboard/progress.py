"""Live progress of ``--wait`` on a terminal: the queue position, then a tqdm bar of images
(or training steps) with rate and ETA, on stderr so that stdout stays the report (or JSON)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from evalboard.output import terminal_text
from evalboard.reports import SubmissionReport


class LiveProgress:
    """Draws a report's progress on ``stream`` when it is a terminal; silent otherwise."""

    def __init__(self, submission_id: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.submission_id = submission_id
        self.bar: Any = None
        self.bar_kind: tuple[int, str] | None = None  # (total, unit) the bar counts
        self.line: str | None = None

    def show(self, report: SubmissionReport) -> None:
        if not self.enabled:
            return
        detail = report.progress_detail or {}
        if report.state == "running" and detail.get("total"):
            self._bar(report, detail)
        else:
            position = report.queue_position
            line = terminal_text(
                f"submission {self.submission_id}: {report.state}"
                + (f", queue position {position}" if position else "")
            )
            if line != self.line:
                self.stream.write(line + "\n")
                self.stream.flush()
                self.line = line

    def _bar(self, report: SubmissionReport, detail: dict[str, Any]) -> None:
        from tqdm import tqdm

        total, unit = int(detail["total"]), str(detail.get("unit", "images"))
        if self.bar is None or self.bar_kind != (total, unit):
            self.close()
            self.bar_kind = (total, unit)
            description = "training" if unit == "steps" else "evaluating"
            # What the bar shows passes through terminal_text as every printed line does.
            self.bar = tqdm(total=total, unit=terminal_text(f" {unit}"),
                            desc=terminal_text(description), file=self.stream,
                            ncols=_columns(self.stream), nrows=24, leave=True)  # fmt: skip
        done = int(detail.get("done", 0))
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)
        postfix = {}
        if detail.get("epoch") is not None:
            postfix["epoch"] = f"{float(detail['epoch']):.2f}"
        if detail.get("loss") is not None:
            postfix["loss"] = f"{float(detail['loss']):.4f}"
        if postfix:
            self.bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _columns(stream: TextIO) -> int:
    """The terminal's width (a new pseudo-terminal may report 0: then 100; tqdm would hide a
    bar on a terminal it believes has no rows, hence ``nrows`` above too)."""
    import os

    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    return columns if columns >= 40 else 100
