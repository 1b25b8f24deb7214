"""Entry point of the dashboard: ``streamlit run dashboard/app.py``; routes to the views.

The views live in ``dashboard/views/``, not ``pages/``: Streamlit serves a ``pages/`` folder
by itself, so a deep link opened before ``/`` would run the page without this router (no menu,
no sidebar). Every URL goes through here, and the query string stays as it was.
"""

from __future__ import annotations

import streamlit as st

from dashboard import identity, process

st.set_page_config(page_title="evalboard", page_icon=":material/leaderboard:", layout="wide")

# The default page is served at "/" but still reserves a pathname of its own, which it does
# not serve: "home" here, so that "/leaderboard" can be the alias below.
leaderboard = st.Page(
    "views/leaderboard.py",
    title="Leaderboard",
    icon=":material/leaderboard:",
    default=True,
    url_path="home",
)


def leaderboard_by_name() -> None:
    """``/leaderboard``: the leaderboard is the home page (``/``); a link or a typed URL that
    names it lands there, query string and all, instead of on "Page not found"."""
    st.switch_page(leaderboard, query_params=st.query_params.to_dict())


navigation = st.navigation(
    [
        leaderboard,
        st.Page(leaderboard_by_name, title="Leaderboard", url_path="leaderboard",
                visibility="hidden"),
        st.Page("views/model.py", title="Models", icon=":material/model_training:",
                url_path="model"),
        st.Page("views/submit.py", title="Submit", icon=":material/upload:", url_path="submit"),
        st.Page("views/train.py", title="Train", icon=":material/school:", url_path="train"),
        st.Page("views/submissions.py", title="Submissions", icon=":material/list:",
                url_path="submissions"),
        st.Page("views/admin.py", title="Admin", icon=":material/admin_panel_settings:",
                url_path="admin"),
    ]
)  # fmt: skip
# Rendered before the page, so every page sees the same token and secret.
identity.sidebar()
navigation.run()
process.freeze_startup_objects()  # after the first page has imported what the views need
