"""Who is using the dashboard: a submitter token and an admin secret kept in the session.

The sidebar (rendered by ``app.py``) holds both; pages read them with ``current()``.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from dashboard.text import escape_markdown
from db.session import session_scope
from db.tokens import submitter_for_token
from evalboard.access import is_admin
from evalboard.settings import get_settings

# What was entered is kept under these keys, apart from the widgets' own: Streamlit drops a
# widget's state on any run that does not draw it, and a page can run without the sidebar.
TOKEN_KEY = "identity_token"
SECRET_KEY = "identity_admin_secret"
TOKEN_INPUT_KEY = "identity_token_input"
SECRET_INPUT_KEY = "identity_admin_secret_input"
ANONYMOUS_ALLOWED = "anonymous local use (allowed here)"
SUBMITTER_NAME_HELP = (
    "Used only for anonymous local use: with a submitter token, the token's submitter is recorded."
)


@dataclass(frozen=True)
class Identity:
    """What the session's token and secret amount to, checked against the database."""

    token: str | None
    secret: str | None
    submitter: str | None  # the valid token's submitter
    admin: bool
    anonymous_allowed: bool
    token_rejected: bool  # a token was given but is unknown or revoked
    secret_rejected: bool  # a secret was given but is wrong

    @property
    def sees_everything(self) -> bool:
        """Whether every submission is visible: the admin, or anyone where anonymous use is."""
        return self.admin or self.anonymous_allowed

    @property
    def owner_filter(self) -> str | None:
        """The submitter whose submissions alone are shown; None means all of them."""
        return None if self.sees_everything else self.submitter

    @property
    def may_see_submissions(self) -> bool:
        return self.sees_everything or self.submitter is not None


def _entered(key: str) -> str | None:
    value = st.session_state.get(key)
    return value.strip() or None if isinstance(value, str) else None


def current() -> Identity:
    """The identity of this browser session, from the sidebar's token and secret."""
    settings = get_settings()
    token = _entered(TOKEN_KEY)
    secret = _entered(SECRET_KEY)
    submitter = None
    if token is not None:
        with session_scope() as session:
            submitter = submitter_for_token(session, token)
    admin = secret is not None and is_admin(secret, settings)
    return Identity(
        token=token,
        secret=secret,
        submitter=submitter,
        admin=admin,
        anonymous_allowed=bool(settings.allow_anonymous),
        token_rejected=token is not None and submitter is None,
        secret_rejected=secret is not None and not admin,
    )


def _remember(stored_key: str, input_key: str) -> None:
    st.session_state[stored_key] = st.session_state[input_key]


def _secret_input(label: str, stored_key: str, input_key: str, help_text: str) -> None:
    if input_key not in st.session_state:
        st.session_state[input_key] = st.session_state.get(stored_key, "")
    st.text_input(
        label,
        type="password",
        key=input_key,
        on_change=_remember,
        args=(stored_key, input_key),
        help=help_text,
    )


def sidebar() -> Identity:
    """The token and secret inputs, and which identity is active; returns that identity."""
    with st.sidebar:
        st.subheader("Who you are")
        _secret_input(
            "Submitter token",
            TOKEN_KEY,
            TOKEN_INPUT_KEY,
            "Issued by an admin (evalboard token issue NAME). Submissions are recorded under "
            "the token's submitter; you see and cancel your own.",
        )
        _secret_input(
            "Admin secret",
            SECRET_KEY,
            SECRET_INPUT_KEY,
            "EVALBOARD_ADMIN_SECRET: sees and cancels every submission.",
        )
        viewer = current()
        if viewer.token_rejected:
            st.error("**refused**: this submitter token is unknown or was revoked.")
        if viewer.secret_rejected:
            st.error("**refused**: this admin secret is wrong.")
        if viewer.admin:
            st.success("Active identity: admin.")
        if viewer.submitter is not None:
            st.success(f"Active identity: submitter {escape_markdown(viewer.submitter)}.")
        if not viewer.admin and viewer.submitter is None:
            if viewer.anonymous_allowed:
                st.info(f"Active identity: {ANONYMOUS_ALLOWED}.")
                st.caption(
                    "This embedded default lets anyone who reaches the dashboard submit and "
                    "cancel without a token; production needs one."
                )
            else:
                st.info(
                    "Active identity: none. The leaderboard is public; submitting needs a "
                    "submitter token."
                )
    return viewer


def show_submitting_as(viewer: Identity) -> None:
    """One line on a submission form: under which name the submission will be recorded."""
    if viewer.submitter is not None:
        st.caption(f"Submitting as {escape_markdown(viewer.submitter)} (your submitter token).")
    elif viewer.token_rejected:
        st.warning("The submitter token in the sidebar is unknown or was revoked: fix or clear it.")
    elif viewer.anonymous_allowed:
        st.caption(
            f"Submitting as typed below: {ANONYMOUS_ALLOWED}. A submitter token in the "
            "sidebar records the token's submitter instead."
        )
    else:
        st.info("Submitting needs a submitter token: enter yours in the sidebar.")
