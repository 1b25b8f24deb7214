"""Subcommands about results: leaderboard, history and re-evaluation."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from evalboard import catalog
from evalboard.commands.common import absolute_if_path, secret_of
from evalboard.contents import printable
from evalboard.errors import BadInputError
from evalboard.output import history_text, leaderboard_text, reevaluation_text, to_json
from evalboard.settings import get_settings


def board_columns_of(args: argparse.Namespace) -> dict[str, str]:
    """The roles' columns a board is asked for (``--column ROLE=COLUMN``, ``--label-column``),
    as submit takes them; a role that no task has is refused by name."""
    columns = dict(getattr(args, "column", []) or [])
    if args.label_column is not None:
        columns["label"] = args.label_column
    roles = sorted({role for task in catalog.TASKS for role in task.roles})
    for role, column in columns.items():
        if role not in roles:
            raise BadInputError(
                f"no task has a column role {printable(role)!r}; the roles are {', '.join(roles)}"
            )
        if not column.strip():
            raise BadInputError(f"{printable(role)} column is empty")
    return {role: column.strip() for role, column in columns.items()}


def _boards(task: str, mappings: Sequence[dict[str, str]]) -> str:
    from db.identity import describe_columns

    return ", ".join(printable(describe_columns(task, mapping)) for mapping in mappings)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from db.board_choices import default_columns, matching_columns, view_columns
    from db.board_rows import leaderboard_rows
    from db.leaderboard import board_view
    from db.session import session_scope

    given = board_columns_of(args)
    view = board_view(  # an unknown task, spec, metric or column role is named before a query
        dataset=absolute_if_path(args.dataset),
        config=args.config or "default",
        split=args.split,
        metric=args.metric,
        task=args.task or catalog.IMAGE_CLASSIFICATION,
        spec_name=args.spec,
        columns=given,
    )
    task = view.spec.task
    where = f"{view.dataset} ({view.config}, {view.split})"
    with session_scope() as session:
        available = view_columns(session, view)
        chosen = default_columns(task, available, given)
        if chosen is None:
            # Several boards and none is what submit would read by default: guessing one
            # would show numbers of a label column the reader did not ask for.
            raise BadInputError(
                f"{where} has {len(matching_columns(available, given))} boards, one per label "
                f"column: {_boards(task, matching_columns(available, given))}; choose one with "
                "--label-column NAME (or --column ROLE=COLUMN)"
            )
        view = dataclasses.replace(view, columns=tuple(sorted(chosen.items())))
        rows = leaderboard_rows(
            session,
            dataset=view.dataset,
            config=view.config,
            split=view.split,
            metric=view.metric.name,
            task=task,
            spec_name=view.spec.name,
            columns=chosen,
        )
    print(leaderboard_text(rows, args.format, view=view))
    others = [mapping for mapping in available if mapping != chosen]
    if others and (not rows or not given):
        # On stderr, so that JSON and CSV stay what they are.
        shown = "no board of label column" if not rows else "showing label column"
        print(
            f"note: {shown} {printable(view.label)} on {where}; its other boards, by label "
            f"column: {_boards(task, others)} (choose with --label-column NAME)",
            file=sys.stderr,
        )
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from db.history import model_history
    from db.session import session_scope

    model = absolute_if_path(args.model)
    dataset = absolute_if_path(args.dataset) if args.dataset else None
    columns = board_columns_of(args)
    with session_scope() as session:
        entries = model_history(
            session, model=model, dataset=dataset, split=args.split, columns=columns
        )
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
        columns=board_columns_of(args),
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
