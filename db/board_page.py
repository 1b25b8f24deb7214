"""A page of a leaderboard: filters, the page's rows, counts and the charts' points.

The dashboard's data load and the leaderboard benchmark's second measure; rows are built only
for the page, so a page of 50 never pays for the whole board.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from db.board_rows import display_name, rows_of, trainings_of
from db.leaderboard import BoardView, Entry, build_board, with_dates
from db.schemas import LeaderboardRow


@dataclass(frozen=True)
class BoardFilters:
    """What a reader narrows a board to; every field lives in the page's URL."""

    search: str = ""  # part of the display name or the full name, any case
    sources: tuple[str, ...] = ()  # submitted | trained | baseline; empty: all
    architectures: tuple[str, ...] = ()
    submitters: tuple[str, ...] = ()
    min_parameters: int | None = None
    max_parameters: int | None = None
    since: datetime | None = None  # evaluated at or after
    until: datetime | None = None  # evaluated before
    include_stale: bool = True

    def keep(self, entry: Entry) -> bool:
        if self.search:
            needle = self.search.casefold()
            if needle not in entry.model.casefold() and needle not in entry.folder_name.casefold():
                return False
        if self.sources and entry.source not in self.sources:
            return False
        if self.architectures and (entry.architecture or "unknown") not in self.architectures:
            return False
        if self.submitters and entry.submitter not in self.submitters:
            return False
        count = entry.parameter_count
        if self.min_parameters is not None and (count is None or count < self.min_parameters):
            return False
        if self.max_parameters is not None and (count is None or count > self.max_parameters):
            return False
        when = entry.created_at  # read by with_dates when a date filter is set
        if self.since is not None and when is not None and when < self.since:
            return False
        if self.until is not None and when is not None and when >= self.until:
            return False
        return self.include_stale or entry.status != "stale"


@dataclass
class BoardPage:
    """What one page of a board needs, and no more: its rows, the counts, the filters'
    options and the charts' points."""

    view: BoardView
    rows: list[LeaderboardRow]
    page: int
    pages: int
    matching: int  # rows that pass the filters, on every page
    ranked: int  # ranked rows on the whole board
    stale: int
    baselines: int
    sources: list[str]
    architectures: list[str]
    submitters: list[str]
    parameter_range: tuple[int, int] | None
    top: list[dict[str, Any]]  # the best ranked rows that pass the filters, with intervals
    scatter: list[dict[str, Any]]  # ranked rows with a parameter count: score against size


def board_page(
    session: Session,
    view: BoardView,
    filters: BoardFilters | None = None,
    *,
    page: int = 1,
    page_size: int = 50,
    top_n: int = 20,
    scatter_limit: int = 500,
) -> BoardPage:
    """One page of a board: the rows are built only for this page."""
    board = build_board(session, view)
    filters = filters or BoardFilters()
    if filters.since is not None or filters.until is not None:
        with_dates(session, board.entries)
    kept = [entry for entry in board.entries if filters.keep(entry)]
    pages = max(1, -(-len(kept) // page_size))
    page = min(max(1, page), pages)
    shown = kept[(page - 1) * page_size : page * page_size]
    counts = [entry.parameter_count for entry in board.entries if entry.parameter_count]
    ranked = [entry for entry in kept if entry.rank is not None]
    top = ranked[:top_n]
    scatter = [entry for entry in ranked if entry.parameter_count][:scatter_limit]
    trainings = trainings_of(session, [e.lineage_submission_id for e in (*top, *scatter)])

    def point(entry: Entry) -> dict[str, Any]:
        training = trainings.get(entry.lineage_submission_id or -1)
        return {
            "rank": entry.rank, "model": entry.model, "name": display_name(entry, training),
            "value": entry.value, "low": entry.ci_low, "high": entry.ci_high,
            "parameters": entry.parameter_count, "source": entry.source,
        }  # fmt: skip

    return BoardPage(
        view=view,
        rows=rows_of(session, board, shown),
        page=page,
        pages=pages,
        matching=len(kept),
        ranked=board.ranked,
        stale=sum(1 for entry in board.entries if entry.status == "stale"),
        baselines=sum(1 for entry in board.entries if entry.status == "baseline"),
        sources=sorted({entry.source for entry in board.entries}),
        architectures=sorted({entry.architecture or "unknown" for entry in board.entries}),
        submitters=sorted({entry.submitter for entry in board.entries}),
        parameter_range=(min(counts), max(counts)) if counts else None,
        top=[point(entry) for entry in top],
        scatter=[point(entry) for entry in scatter],
    )


def filtered_rows(
    session: Session, view: BoardView, filters: BoardFilters | None = None
) -> list[LeaderboardRow]:
    """Every row that passes the filters, for an export of the view as it is shown."""
    board = build_board(session, view)
    filters = filters or BoardFilters()
    if filters.since is not None or filters.until is not None:
        with_dates(session, board.entries)
    return rows_of(session, board, [entry for entry in board.entries if filters.keep(entry)])
