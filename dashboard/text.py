"""Showing untrusted text (paths, names, error messages) inside Streamlit markdown."""

from __future__ import annotations

import re

# Everything CommonMark, Streamlit's directives (:red[...], :material/...:) and LaTeX ($)
# could interpret; escaped, the text renders exactly as written.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&])")


def escape_markdown(text: str) -> str:
    """``text`` with markdown syntax escaped, for st.error/st.success/st.caption."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
