"""What the subcommands share: the admin secret the caller gave, and the one report read."""

from __future__ import annotations

import argparse
from pathlib import Path

from evalboard.reports import SubmissionReport
from evalboard.settings import get_settings


def secret_of(args: argparse.Namespace) -> str | None:
    """The admin secret the caller gave. In development the embedded one is the local user's
    (it lies in their EVALBOARD_HOME); in production it must be given with --admin-secret."""
    from evalboard.access import admin_secret

    given = getattr(args, "admin_secret", None)
    settings = get_settings()
    if given or settings.environment == "production":
        return given
    return admin_secret(settings)


def migrate() -> None:
    from db.migrate import upgrade
    from evalboard.queue import declare_queues

    get_settings().ensure_home()
    upgrade()
    declare_queues()


def report_of(
    submission_id: int, args: argparse.Namespace, *, own: bool = False
) -> SubmissionReport:
    """The report of a submission the caller may see (``own``: the caller just submitted it,
    or was told it exists as theirs); refused or not found otherwise."""
    from db.session import session_scope
    from db.submissions import get_submission
    from evalboard.access import may_manage
    from evalboard.errors import NotFoundError, RefusedError
    from evalboard.reports import submission_report

    with session_scope() as session:
        submission = get_submission(session, submission_id)
        if submission is None:
            raise NotFoundError(f"submission {submission_id} does not exist")
        if not own and not may_manage(
            submission,
            token=getattr(args, "token", None),
            secret=secret_of(args),
            settings=get_settings(),
        ):
            raise RefusedError(f"submission {submission_id} belongs to another submitter")
        return submission_report(session, submission)


def absolute_if_path(reference: str) -> str:
    """A local path as the database stores it (absolute); a Hub id as given."""
    from evalboard.references import looks_like_path

    reference = reference.strip()
    if looks_like_path(reference):
        return str(Path(reference).expanduser().resolve())
    return reference


# Commands that only read: on a home that does not exist they say so instead of creating it.
READ_ONLY = {"status", "cancel", "leaderboard", "history"}


def ready_database(command: str) -> None:
    """Make sure the database can serve ``command``, or say in words what to do.

    The embedded default (SQLite under EVALBOARD_HOME) migrates itself on first use; a
    read-only command on a home that does not exist names the home it looked in. A server
    database (production) is never migrated behind the operator's back: ``evalboard migrate``.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from db.migrate import current_revision, head_revision
    from evalboard.errors import EvalboardError, NotFoundError, is_no_space_at, no_space_error

    settings = get_settings()
    url = str(settings.database_url)
    embedded = url.startswith("sqlite")
    if embedded and command in READ_ONLY and not _sqlite_file(url).exists():
        raise NotFoundError(
            f"no evalboard data in {settings.home} (EVALBOARD_HOME): nothing was submitted "
            "with this home yet. Run the command from the folder where you ran `evalboard up`, "
            "or set EVALBOARD_HOME to that data folder"
        )
    try:
        if embedded:
            settings.ensure_home()
        current = current_revision()
    except SQLAlchemyError as error:
        if embedded and is_no_space_at(error, _sqlite_file(url).parent):
            raise no_space_error(error, _sqlite_file(url).parent) from None
        cause = getattr(error, "orig", None) or error
        raise EvalboardError(
            f"cannot open the database {_shown(url)}: {type(cause).__name__}: {cause}. "
            "Check EVALBOARD_DATABASE_URL"
        ) from None
    if current == head_revision():
        return
    if embedded:
        migrate()
        return
    raise EvalboardError(
        f"the database {_shown(url)} is not at the current schema ({current or 'empty'}): "
        "run `evalboard migrate` first"
    )


def _sqlite_file(url: str) -> Path:
    from sqlalchemy.engine import make_url

    return Path(make_url(url).database or "")


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
