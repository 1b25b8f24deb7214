"""Baselines and hidden results, behind the admin secret: the CLI and the dashboard call this.

A baseline is always shown on its leaderboard and never ranked. A hidden result is kept, with
its reason and an audit trail, but not shown publicly (leaderboards, history, re-evaluation).
"""

from __future__ import annotations

from db import moderation as queries
from db.session import session_scope
from db.submissions import get_submission
from evalboard.access import require_admin
from evalboard.errors import BadInputError, NotFoundError
from evalboard.settings import Settings, get_settings

MAX_REASON = 2000


def moderate(
    submission_id: int,
    action: str,
    *,
    secret: str | None,
    reason: str | None = None,
    actor: str = "admin",
    settings: Settings | None = None,
) -> None:
    """Mark (or unmark) a succeeded evaluation as a baseline, or hide (unhide) it."""
    settings = settings or get_settings()
    require_admin(secret, settings)
    if action not in queries.ACTIONS:
        raise BadInputError(f"unknown action {action!r}; one of {', '.join(queries.ACTIONS)}")
    reason = (reason or "").strip() or None
    if action == "hide" and reason is None:
        raise BadInputError("hiding a result needs a reason (it is kept in the audit trail)")
    if reason is not None and (len(reason) > MAX_REASON or "\x00" in reason):
        raise BadInputError(f"the reason must be text of at most {MAX_REASON} characters")
    with session_scope() as session:
        submission = get_submission(session, submission_id)
        if submission is None:
            raise NotFoundError(f"submission {submission_id} does not exist")
        if submission.kind != "evaluate" or submission.state != "succeeded":
            raise BadInputError(
                f"submission {submission_id} is a {submission.state} {submission.kind}: only "
                "the results of a succeeded evaluation can be moderated"
            )
        queries.moderate(session, submission_id, action, actor=actor, reason=reason)
