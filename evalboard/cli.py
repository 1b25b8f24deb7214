"""The ``evalboard`` command: parse, check the settings, dispatch, and put every error in words.

Every failure prints ``error [category]: message`` (or, with ``--json``, the report shape with
``submission_id: null``) and exits non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from evalboard.cli_parser import build_parser
from evalboard.errors import EvalboardError, as_failure
from evalboard.settings import get_settings


def _handlers() -> dict[str, Callable[[argparse.Namespace], int]]:
    from evalboard.commands import boards, service, submissions

    return {
        "up": service.cmd_up,
        "demo": service.cmd_demo,
        "worker": service.cmd_worker,
        "migrate": service.cmd_migrate,
        "token": service.cmd_token,
        "evaluate": submissions.cmd_evaluate,
        "submit": submissions.cmd_submit,
        "train": submissions.cmd_train,
        "status": submissions.cmd_status,
        "cancel": submissions.cmd_cancel,
        "leaderboard": boards.cmd_leaderboard,
        "history": boards.cmd_history,
        "reevaluate": boards.cmd_reevaluate,
        "moderate": boards.cmd_moderate,
    }


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    if argv[:1] == ["worker"]:
        # Everything after "worker" belongs to celery, options included.
        args = parser.parse_args(["worker"])
        args.celery_args = argv[1:]
        return args
    return parser.parse_args(argv)


def _print_error(error: EvalboardError, *, as_json: bool) -> None:
    from evalboard.output import to_json
    from evalboard.reports import error_report

    if as_json:
        print(to_json(error_report(error).as_json()))
    else:
        _print_error_line(error.category.value, error.message)


def _print_error_line(category: str, message: object) -> None:
    """``error [category]: message`` on stderr, escaped: a message that quotes a path or a
    name can neither act on the terminal nor forge a line of its own."""
    from evalboard.output import terminal_text

    print(terminal_text(f"error [{category}]: {message}"), file=sys.stderr)


def _wants_json(argv: list[str]) -> bool:
    """``--json``, or ``--format json``: errors then come as JSON too."""
    if "--json" in argv or "--format=json" in argv:
        return True
    return any(a == "--format" and b == "json" for a, b in zip(argv, argv[1:], strict=False))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(argv)
    try:
        args = _parse(argv)
    except EvalboardError as error:
        _print_error(error, as_json=as_json)
        return 2
    try:
        get_settings()
    except ValueError as error:  # pydantic's ValidationError: a setting is wrong
        _print_error_line("bad_input", f"invalid settings: {error}")
        return 2
    try:
        if args.command not in ("up", "demo", "worker", "migrate", "evaluate"):
            from evalboard.commands.common import ready_database

            ready_database(args.command)
        return int(_handlers()[args.command](args) or 0)
    except EvalboardError as error:
        _print_error(as_failure(error, get_settings().home), as_json=as_json)
        return 2
    except BrokenPipeError:
        # The reader went away (`evalboard status 1 | head`): stop quietly, as cat would.
        _silence_stdout()
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - our own bug: in words, with where to look
        _print_error(_unexpected(error), as_json=as_json)
        return 70


def _unexpected(error: Exception) -> EvalboardError:
    """An exception nobody named: a database out of step with the code, or a bug of ours."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from evalboard.errors import FailureCategory, is_no_space_at, no_space_error

    if is_no_space_at(error, get_settings().home):  # a full disk, SQLite's words for it too
        return no_space_error(error, get_settings().home)
    if isinstance(error, OperationalError | ProgrammingError):
        return EvalboardError(
            f"the database does not match this version of evalboard ({error.orig}): run "
            "`evalboard migrate`, or check EVALBOARD_DATABASE_URL",
            FailureCategory.INTERNAL,
        )
    return EvalboardError(
        f"{type(error).__name__}: {error} (a bug in evalboard; please report it)",
        FailureCategory.INTERNAL,
    )


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
