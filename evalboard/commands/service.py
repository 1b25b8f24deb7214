"""Subcommands that run or set up the service: up, worker, demo, migrate, token."""

from __future__ import annotations

import argparse

from evalboard.commands.common import migrate, secret_of
from evalboard.settings import get_settings


def cmd_migrate(_args: argparse.Namespace) -> int:
    migrate()
    print(f"database at head: {get_settings().database_url}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from evalboard.access import admin_secret
    from evalboard.processes import run_up

    settings = get_settings()
    migrate()
    admin_secret(settings, announce=True)
    if not settings.allow_anonymous:
        print("submitting needs a token: evalboard token issue NAME", flush=True)
    else:
        print("anonymous local submissions are allowed (EVALBOARD_ALLOW_ANONYMOUS)", flush=True)
    if args.demo:
        from worker.demo import demo_text, submit_demo

        text = demo_text(settings.home, submit_demo(settings.home))
        print(f"{text}. Watch them on the Submissions page")
    return run_up(settings, port=args.port or settings.dashboard_port, address=args.address)


def cmd_demo(args: argparse.Namespace) -> int:
    from worker.demo import run_demo

    settings = get_settings()
    migrate()
    return run_demo(settings, start_worker=not args.no_worker, as_json=args.json)


def cmd_worker(args: argparse.Namespace) -> int:
    """A Celery worker on the given queues (``-Q``); without them, every queue, in two workers:
    evaluations and trainings with the given options, and the light queue (webhooks, the
    reaper) in a small pool of its own, so that a notification never takes a job's slot."""
    settings = get_settings()
    settings.ensure_home()
    celery_args = list(args.celery_args)
    queues_given = any(a == "--queues" or a.startswith(("-Q", "--queues=")) for a in celery_args)
    if queues_given or {"-h", "--help"} & set(celery_args):
        from worker.celery_app import app

        app.worker_main(argv=["worker", *celery_args])
        return 0
    from evalboard.processes import run_workers

    return run_workers(settings, celery_args)


def cmd_token(args: argparse.Namespace) -> int:
    from db.session import session_scope
    from db.tokens import issue_token, list_tokens, revoke_token
    from evalboard.access import require_admin
    from evalboard.output import terminal_text

    settings = get_settings()
    migrate()
    require_admin(secret_of(args), settings)
    with session_scope() as session:
        if args.token_command == "issue":
            token_id, token = issue_token(session, args.submitter)
            shown = terminal_text(args.submitter)
            print(f"token {token_id} for {shown} (shown once, store it now):")
            print(token)
            return 0
        if args.token_command == "revoke":
            revoked = revoke_token(session, args.token_id)
            print(
                f"token {args.token_id} {'revoked' if revoked else 'not found or already revoked'}"
            )
            return 0 if revoked else 1
        for record in list_tokens(session):
            revoked_at = record.revoked_at.isoformat() if record.revoked_at else "-"
            submitter = terminal_text(record.submitter)  # a name may hold any character
            print(f"{record.id}\t{submitter}\t{record.created_at.isoformat()}\t{revoked_at}")
    return 0
