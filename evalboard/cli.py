"""The ``evalboard`` command: up, worker, evaluate, submit, status, cancel, leaderboard, migrate."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalboard.access import authenticate
from evalboard.cli_parser import build_parser
from evalboard.errors import EvalboardError
from evalboard.output import leaderboard_text, report_text, to_json
from evalboard.settings import get_settings

FINAL_STATES = {"succeeded", "failed", "cancelled"}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["worker"]:
        # Everything after "worker" belongs to celery, options included.
        args = parser.parse_args(["worker"])
        args.celery_args = argv[1:]
    else:
        args = parser.parse_args(argv)
    handler = {
        "up": cmd_up,
        "demo": cmd_demo,
        "worker": cmd_worker,
        "evaluate": cmd_evaluate,
        "submit": cmd_submit,
        "train": cmd_train,
        "status": cmd_status,
        "cancel": cmd_cancel,
        "token": cmd_token,
        "leaderboard": cmd_leaderboard,
        "migrate": cmd_migrate,
    }[args.command]
    try:
        get_settings()
    except ValueError as error:  # pydantic's ValidationError: a setting is wrong
        print(f"error [bad_input]: invalid settings: {error}", file=sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except EvalboardError as error:
        if getattr(args, "json", False):
            print(to_json(_error_report(error)))
        else:
            print(f"error [{error.category.value}]: {error.message}", file=sys.stderr)
        return 2


def _error_report(error: EvalboardError) -> dict[str, Any]:
    return {
        "submission_id": None,
        "state": "failed",
        "metrics": {},
        "n_samples": None,
        "error": error.as_dict(),
        "provenance": {},
    }


def _migrate() -> None:
    from db.migrate import upgrade

    settings = get_settings()
    settings.ensure_home()
    upgrade()


def cmd_migrate(_args: argparse.Namespace) -> int:
    _migrate()
    print(f"database at head: {get_settings().database_url}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from evalboard.access import admin_secret
    from evalboard.processes import run_up

    settings = get_settings()
    _migrate()
    admin_secret(settings, announce=True)
    if not settings.allow_anonymous:
        print("submitting needs a token: evalboard token issue NAME", flush=True)
    else:
        print("anonymous local submissions are allowed (EVALBOARD_ALLOW_ANONYMOUS)", flush=True)
    if args.demo:
        from worker.demo import submit_demo

        ids = submit_demo(settings.home)
        print(f"queued demo trainings {ids}: watch them on the Submissions page")
    return run_up(settings, port=args.port or settings.dashboard_port, address=args.address)


def cmd_demo(args: argparse.Namespace) -> int:
    from worker.demo import run_demo

    settings = get_settings()
    _migrate()
    return run_demo(settings, start_worker=not args.no_worker, as_json=args.json)


def cmd_worker(args: argparse.Namespace) -> int:
    from worker.celery_app import ALL_QUEUES, app

    get_settings().ensure_home()
    celery_args = list(args.celery_args)
    if not any(a in ("-Q", "--queues") or a.startswith("--queues=") for a in celery_args):
        celery_args += ["-Q", ",".join(ALL_QUEUES)]
    app.worker_main(argv=["worker", *celery_args])
    return 0


def _evaluation_input(args: argparse.Namespace) -> Any:
    from evalboard.service import EvaluationInput

    parameters = {"batch_size": args.batch_size} if args.batch_size else {}
    return EvaluationInput(
        model=args.model,
        dataset=args.dataset,
        revision=args.revision,
        config=args.config,
        split=args.split,
        dataset_revision=args.dataset_revision,
        image_column=args.image_column,
        label_column=args.label_column,
        submitter=getattr(args, "submitter", "anonymous"),
        parameters=parameters,
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    from evalboard.service import prepare_evaluation
    from worker.evaluation.engine import EvaluationRequest, run_evaluation

    settings = get_settings()
    prepared = prepare_evaluation(_evaluation_input(args), settings)
    outcome = run_evaluation(
        EvaluationRequest(
            model=prepared.model,
            dataset=prepared.dataset,
            split=prepared.request.split,
            image_column=args.image_column,
            label_column=args.label_column,
            batch_size=args.batch_size or settings.eval_batch_size,
            device=args.device or settings.device,
            num_workers=settings.eval_num_workers,
        )
    )
    report = {
        "submission_id": None,
        "state": "succeeded",
        "metrics": outcome.metric_values(),
        "n_samples": outcome.n_samples,
        "error": None,
        "provenance": outcome.provenance,
    }
    print(to_json(report) if args.json else report_text(report))
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from evalboard.service import prepare_evaluation

    settings = get_settings()
    authenticate(args.token, settings)  # before validation: no probing without a token
    request = prepare_evaluation(_evaluation_input(args), settings).request
    return _queue_and_follow(request, args)


def _queue_and_follow(request: Any, args: argparse.Namespace) -> int:
    from evalboard.service import record_and_enqueue

    submitted = record_and_enqueue(request, get_settings(), token=args.token)
    if submitted.duplicate:
        print(
            f"identical to submission {submitted.submission_id}: returning it, not running again",
            file=sys.stderr,
        )
    return _follow(submitted.submission_id, args)


def cmd_train(args: argparse.Namespace) -> int:
    from evalboard.service import EvaluationInput, prepare_training

    training = {
        "train_split": args.train_split,
        "validation_split": args.validation_split,
        "test_split": args.test_split,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "warmup_ratio": args.warmup_ratio,
        "weight_decay": args.weight_decay,
        "gradient_accumulation": args.gradient_accumulation,
        "seed": args.seed,
        "mixed_precision": args.mixed_precision,
        "early_stopping_patience": args.early_stopping_patience or None,
        "early_stopping_threshold": args.early_stopping_threshold,
        "auto_find_batch_size": args.auto_find_batch_size,
        "augment": args.augment,
    }
    evaluation = EvaluationInput(
        model=args.model,
        dataset=args.dataset,
        revision=args.revision,
        config=args.config,
        dataset_revision=args.dataset_revision,
        image_column=args.image_column,
        label_column=args.label_column,
        submitter=args.submitter,
    )
    authenticate(args.token, get_settings())
    request = prepare_training(evaluation, training, get_settings()).request
    return _queue_and_follow(request, args)


def _follow(submission_id: int, args: argparse.Namespace) -> int:
    """Print the new submission, or with ``--wait`` its final report; the exit code says how
    it ended (0 succeeded, 1 failed or cancelled, 3 still running at ``--timeout``)."""
    if not args.wait:
        report = _report(submission_id, args)
        print(to_json(report) if args.json else f"submission {submission_id} queued")
        return 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    report = _report(submission_id, args)
    while report["state"] not in FINAL_STATES:
        if deadline is not None and time.monotonic() > deadline:
            print(to_json(report) if args.json else report_text(report))
            print(f"still {report['state']} after {args.timeout} s", file=sys.stderr)
            return 3
        time.sleep(0.5)
        report = _report(submission_id, args)
    print(to_json(report) if args.json else report_text(report))
    return 0 if report["state"] == "succeeded" else 1


def _report(submission_id: int, args: argparse.Namespace) -> dict[str, Any]:
    from db.session import session_scope
    from db.submissions import get_submission
    from evalboard.access import may_manage
    from evalboard.errors import NotFoundError, RefusedError
    from evalboard.service import submission_report

    with session_scope() as session:
        submission = get_submission(session, submission_id)
        if submission is None:
            raise NotFoundError(f"submission {submission_id} does not exist")
        if not may_manage(
            submission, token=args.token, secret=_secret(args), settings=get_settings()
        ):
            raise RefusedError(f"submission {submission_id} belongs to another submitter")
        return submission_report(session, submission)


def _secret(args: argparse.Namespace) -> str | None:
    """The admin secret the caller gave. In development the embedded one is the local user's
    (it lies in their EVALBOARD_HOME); in production it must be given with --admin-secret."""
    from evalboard.access import admin_secret

    given = getattr(args, "admin_secret", None)
    settings = get_settings()
    if given or settings.environment == "production":
        return given
    return admin_secret(settings)


def cmd_status(args: argparse.Namespace) -> int:
    report = _report(args.id, args)
    print(to_json(report) if args.json else report_text(report))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from db.session import session_scope
    from db.submissions import cancel_submission

    _report(args.id, args)  # exists, and the caller may manage it
    with session_scope() as session:
        cancelled = cancel_submission(session, args.id)
    print(f"submission {args.id} {'cancelled' if cancelled else 'was not queued or running'}")
    return 0 if cancelled else 1


def cmd_token(args: argparse.Namespace) -> int:
    from db.session import session_scope
    from db.tokens import issue_token, list_tokens, revoke_token
    from evalboard.access import require_admin

    settings = get_settings()
    _migrate()
    require_admin(_secret(args), settings)
    with session_scope() as session:
        if args.token_command == "issue":
            token_id, token = issue_token(session, args.submitter)
            print(f"token {token_id} for {args.submitter} (shown once, store it now):")
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
            print(f"{record.id}\t{record.submitter}\t{record.created_at.isoformat()}\t{revoked_at}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from db.leaderboard import leaderboard_rows
    from db.session import session_scope
    from evalboard.references import looks_like_path

    dataset = args.dataset
    if looks_like_path(dataset):
        dataset = str(Path(dataset).expanduser().resolve())
    with session_scope() as session:
        rows = leaderboard_rows(
            session,
            dataset=dataset,
            config=(args.config or "default"),
            split=args.split,
            metric=args.metric,
        )
    print(leaderboard_text(rows, args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
