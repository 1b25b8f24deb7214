"""Subcommands about results: leaderboard, history and re-evaluation."""

from __future__ import annotations

import argparse

from evalboard import catalog
from evalboard.commands.common import absolute_if_path, secret_of
from evalboard.output import history_text, leaderboard_text, reevaluation_text, to_json
from evalboard.settings import get_settings


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from db.board_rows import leaderboard_rows
    from db.leaderboard import board_view
    from db.session import session_scope

    view = board_view(  # an unknown task, spec or metric is named before any query
        dataset=absolute_if_path(args.dataset),
        config=args.config or "default",
        split=args.split,
        metric=args.metric,
        task=args.task or catalog.IMAGE_CLASSIFICATION,
        spec_name=args.spec,
    )
    with session_scope() as session:
        rows = leaderboard_rows(
            session,
            dataset=view.dataset,
            config=view.config,
            split=view.split,
            metric=view.metric.name,
            task=view.spec.task,
            spec_name=view.spec.name,
        )
    print(leaderboard_text(rows, args.format, view=view))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from db.history import model_history
    from db.session import session_scope

    model = absolute_if_path(args.model)
    dataset = absolute_if_path(args.dataset) if args.dataset else None
    with session_scope() as session:
        entries = model_history(session, model=model, dataset=dataset, split=args.split)
    if args.json:
        print(to_json([entry.model_dump(mode="json") for entry in entries]))
    else:
        print(history_text(model, entries))
    return 0


def cmd_reevaluate(args: argparse.Namespace) -> int:
    from evalboard.access import require_admin
    from evalboard.reevaluation import run_check

    require_admin(secret_of(args), get_settings())
    entries = run_check(
        mode="all" if args.all else "due",
        trigger="manual",
        dataset=absolute_if_path(args.dataset) if args.dataset else None,
        model=absolute_if_path(args.model) if args.model else None,
        dry_run=args.dry_run,
    )
    if args.json:
        print(
            to_json(
                {
                    "mode": "all" if args.all else "due",
                    "dry_run": args.dry_run,
                    "due": [e.as_json() for e in entries if e.unavailable is None],
                    "unavailable": [e.as_json() for e in entries if e.unavailable is not None],
                }
            )
        )
    else:
        print(reevaluation_text(entries, dry_run=args.dry_run))
    return 0


def cmd_moderate(args: argparse.Namespace) -> int:
    from db.moderation import moderated
    from db.session import session_scope
    from evalboard.access import require_admin
    from evalboard.moderation import moderate
    from evalboard.output import table

    secret = secret_of(args)
    if args.action != "list":
        moderate(args.id, args.action, secret=secret, reason=args.reason)
        done = {"baseline": "is a baseline now", "unbaseline": "is no longer a baseline",
                "hide": "is hidden now", "unhide": "is shown again"}[args.action]  # fmt: skip
        if args.json:
            print(to_json({"submission_id": args.id, "action": args.action,
                           "reason": args.reason}))  # fmt: skip
        else:
            print(f"submission {args.id} {done}")
        return 0
    require_admin(secret, get_settings())
    with session_scope() as session:
        marks = [
            {"submission_id": m.submission_id, "model": s.model.name, "dataset": s.dataset.name,
             "baseline": m.baseline, "hidden": m.hidden, "reason": m.reason,
             "updated_at": m.updated_at.isoformat()}
            for m, s in moderated(session)
        ]  # fmt: skip
    if args.json:
        print(to_json(marks))
    elif not marks:
        print("no baseline and no hidden result")
    else:
        print(table(list(marks[0]), [list(m.values()) for m in marks]))
    return 0
