"""Entry point of the dashboard: ``streamlit run dashboard/app.py``; routes to the pages."""

from __future__ import annotations

import streamlit as st

from dashboard import identity

st.set_page_config(page_title="evalboard", layout="wide")

navigation = st.navigation(
    [
        st.Page(
            "pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:", default=True
        ),
        st.Page("pages/submit.py", title="Submit", icon=":material/upload:"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/submissions.py", title="Submissions", icon=":material/list:"),
        st.Page("pages/admin.py", title="Admin", icon=":material/admin_panel_settings:"),
    ]
)
# Rendered before the page, so every page sees the same token and secret.
identity.sidebar()
navigation.run()
