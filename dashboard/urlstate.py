"""Widgets whose value lives in the URL, so a copied link opens the same view.

Each helper starts its widget from ``st.query_params`` and writes the choice back; a value
equal to the default is left out of the URL. Changing a filter goes back to page 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any
from urllib.parse import quote, urlencode

import streamlit as st

FILTER_KEYS = (
    "q", "source", "arch", "submitter", "params_min", "params_max", "since", "until", "stale",
)  # fmt: skip


def _write(key: str, value: Any, default: Any = None) -> None:
    empty = value is None or value == "" or value == [] or value == default
    if empty:
        if key in st.query_params:
            del st.query_params[key]
    elif isinstance(value, list):
        st.query_params[key] = [str(v) for v in value]
    else:
        st.query_params[key] = str(value)


def _first_page() -> None:
    if "page" in st.query_params:
        del st.query_params["page"]


def any_set(keys: Sequence[str]) -> bool:
    return any(key in st.query_params for key in keys)


def choose(
    column: Any, label: str, param: str, options: Sequence[str], *, default: str | None = None
) -> str:
    """A selectbox over ``options``, started from the URL's ``param`` (key ``board_<param>``)."""
    options = list(options)
    wanted = st.query_params.get(param, default)
    index = options.index(wanted) if wanted in options else 0
    choice = column.selectbox(
        label, options, index=index, key=f"board_{param}", on_change=_first_page
    )
    st.query_params[param] = str(choice)
    return str(choice)


def text(column: Any, label: str, param: str, *, key: str) -> str:
    if key not in st.session_state:
        st.session_state[key] = st.query_params.get(param, "")
    value = column.text_input(label, key=key, on_change=_first_page).strip()
    _write(param, value)
    return str(value)


def multi(column: Any, label: str, param: str, options: Sequence[str], *, key: str) -> list[str]:
    if key not in st.session_state:
        st.session_state[key] = [v for v in st.query_params.get_all(param) if v in options]
    value = column.multiselect(label, list(options), key=key, on_change=_first_page)
    _write(param, list(value))
    return list(value)


def _int(key: str) -> int | None:
    value = st.query_params.get(key, "")
    return int(value) if value.isdigit() else None


def int_range(
    column: Any, label: str, param: str, bounds: tuple[int, int], *, key: str
) -> tuple[int | None, int | None]:
    """Two number boxes, minimum and maximum, from the URL's ``<param>_min`` and ``_max``."""
    widget_key = key
    low_column, high_column = column.columns(2)
    values = []
    for part, box, placeholder in (("min", low_column, bounds[0]), ("max", high_column,
                                                                     bounds[1])):  # fmt: skip
        state = f"{widget_key}_{part}"
        if state not in st.session_state:
            st.session_state[state] = _int(f"{param}_{part}")
        value = box.number_input(
            f"{label}, {part}", min_value=0, step=1, key=state, placeholder=f"{placeholder:,}",
            on_change=_first_page,
        )  # fmt: skip
        _write(f"{param}_{part}", None if value is None else int(value))
        values.append(None if value is None else int(value))
    return values[0], values[1]


def date_range(column: Any, label: str, *, key: str) -> tuple[date | None, date | None]:
    """A date range from the URL's ``since`` and ``until`` (ISO dates)."""
    widget_key = key
    if widget_key not in st.session_state:
        bounds = []
        for part in ("since", "until"):
            try:
                bounds.append(date.fromisoformat(st.query_params.get(part, "")))
            except ValueError:
                pass
        st.session_state[widget_key] = tuple(bounds)
    value = column.date_input(label, key=widget_key, on_change=_first_page)
    chosen = list(value) if isinstance(value, tuple | list) else [value]
    since = chosen[0] if len(chosen) > 0 else None
    until = chosen[1] if len(chosen) > 1 else None
    _write("since", since.isoformat() if since else None)
    _write("until", until.isoformat() if until else None)
    return since, until


def flag(column: Any, label: str, param: str, default: bool, *, key: str) -> bool:
    if key not in st.session_state:
        stored = st.query_params.get(param)
        st.session_state[key] = default if stored is None else stored == "1"
    value = bool(column.checkbox(label, key=key, on_change=_first_page))
    _write(param, "1" if value else "0", "1" if default else "0")
    return value


def page() -> int:
    return max(1, _int("page") or 1)


def set_page(number: int) -> None:
    _write("page", number, 1)


def model_link(model: str) -> str:
    """The relative URL of a model's page (a link that can be copied and shared)."""
    return f"model?model={quote(model, safe='')}"


def board_link(*, dataset: str, config: str, split: str, label: str, spec: str | None) -> str:
    """The relative URL of one board: its dataset, config, split, label column (and spec)."""
    query = {"dataset": dataset, "config": config, "split": split, "label": label}
    if spec:
        query["spec"] = spec
    return "leaderboard?" + urlencode(query, quote_via=quote)


def link_to_model(column: Any, model: str, label: str) -> None:
    """A link to a model's page: in-app under the router, a plain link when a view runs alone."""
    from streamlit.errors import StreamlitAPIException

    from dashboard.text import escape_markdown

    try:
        column.page_link(
            "views/model.py", label=label, icon=":material/open_in_new:",
            query_params={"model": model},
        )  # fmt: skip
    except StreamlitAPIException:
        column.markdown(f"[{escape_markdown(label)}]({model_link(model)})")
