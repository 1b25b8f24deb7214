"""The ``evalboard`` command: up, worker, evaluate, submit, status, cancel, leaderboard, migrate."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalboard.errors import EvalboardError
from evalboard.output import leaderboard_text, report_text, to_json
from evalboard.settings import get_settings

FINAL_STATES = {"succeeded", "failed", "cancelled"}


def _add_evaluation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="Hub id or local model folder")
    parser.add_argument("--dataset", required=True, help="Hub id or local dataset path")
    parser.add_argument("--revision", help="model revision (branch, tag or commit)")
    parser.add_argument("--dataset-revision", help="dataset revision on the Hub")
    parser.add_argument("--config", help="dataset configuration")
    parser.add_argument("--split", help="split (default: test, then validation, then train)")
    parser.add_argument("--image-column", default="image")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--batch-size", type=int, help="inference batch size")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    from worker.training.params import TrainingParams

    defaults = TrainingParams()
    parser.add_argument("--model", required=True, help="base model: Hub id or local folder")
    parser.add_argument("--dataset", required=True, help="Hub id or local dataset path")
    parser.add_argument("--revision", help="base model revision")
    parser.add_argument("--dataset-revision", help="dataset revision on the Hub")
    parser.add_argument("--config", help="dataset configuration")
    parser.add_argument("--train-split", default=defaults.train_split)
    parser.add_argument("--validation-split", help="default: a stratified split of the train split")
    parser.add_argument("--test-split", help="for the final evaluation (default: test)")
    parser.add_argument("--image-column", default="image")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--epochs", type=float, default=defaults.epochs)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--warmup-ratio", type=float, default=defaults.warmup_ratio)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--gradient-accumulation", type=int, default=defaults.gradient_accumulation)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default="auto")
    parser.add_argument(
        "--early-stopping-patience", type=int, default=defaults.early_stopping_patience,
        help="epochs without improvement before stopping; 0 turns early stopping off",
    )  # fmt: skip
    parser.add_argument(
        "--early-stopping-threshold", type=float, default=defaults.early_stopping_threshold
    )
    parser.add_argument("--auto-find-batch-size", action="store_true")
    parser.add_argument(
        "--augment", action=argparse.BooleanOptionalAction, default=defaults.augment,
        help="light augmentation (small rotation, shift, brightness)",
    )  # fmt: skip
    parser.add_argument("--submitter", default="anonymous")
    parser.add_argument("--wait", action="store_true", help="block until training ends")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")
    parser.add_argument("--json", action="store_true", help="print JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalboard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="migrate, start a worker with beat and the dashboard")
    up.add_argument("--port", type=int, default=None, help="dashboard port (default 8501)")
    up.add_argument("--address", default="localhost", help="dashboard address")
    up.add_argument("--demo", action="store_true", help="queue the digits demo trainings")

    demo = commands.add_parser(
        "demo", help="fine-tune small models on digits through the queue; print the leaderboard"
    )
    demo.add_argument(
        "--no-worker", action="store_true", help="only queue (a worker is already running)"
    )
    demo.add_argument("--json", action="store_true")

    worker = commands.add_parser("worker", help="a Celery worker on the configured broker")
    worker.add_argument("celery_args", nargs=argparse.REMAINDER, help="passed to celery worker")

    evaluate = commands.add_parser("evaluate", help="run the standardized evaluation in-process")
    _add_evaluation_options(evaluate)
    evaluate.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if available)")

    submit = commands.add_parser("submit", help="record and enqueue an evaluation")
    _add_evaluation_options(submit)
    submit.add_argument("--submitter", default="anonymous")
    submit.add_argument("--wait", action="store_true", help="block until the submission ends")
    submit.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")

    train = commands.add_parser("train", help="fine-tune an image classifier, then evaluate it")
    _add_training_options(train)

    status = commands.add_parser("status", help="state, progress and results of a submission")
    status.add_argument("id", type=int)
    status.add_argument("--json", action="store_true")

    cancel = commands.add_parser("cancel", help="cancel a queued or running submission")
    cancel.add_argument("id", type=int)

    board = commands.add_parser("leaderboard", help="ranked results")
    board.add_argument("--dataset", required=True)
    board.add_argument("--config", default=None)
    board.add_argument("--split", required=True)
    board.add_argument("--metric", default="accuracy")
    board.add_argument("--format", choices=("table", "json", "csv"), default="table")

    commands.add_parser("migrate", help="apply database migrations")
    return parser


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
        "leaderboard": cmd_leaderboard,
        "migrate": cmd_migrate,
    }[args.command]
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
    from evalboard.processes import run_up

    settings = get_settings()
    _migrate()
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
    from evalboard.service import submit_evaluation

    submission_id = submit_evaluation(_evaluation_input(args), get_settings())
    return _follow(submission_id, args)


def cmd_train(args: argparse.Namespace) -> int:
    from evalboard.service import EvaluationInput, submit_training

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
    submission_id = submit_training(evaluation, training, get_settings())
    return _follow(submission_id, args)


def _follow(submission_id: int, args: argparse.Namespace) -> int:
    """Print the new submission, or with ``--wait`` its final report; the exit code says how
    it ended (0 succeeded, 1 failed or cancelled, 3 still running at ``--timeout``)."""
    if not args.wait:
        report = _report(submission_id)
        print(to_json(report) if args.json else f"submission {submission_id} queued")
        return 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    report = _report(submission_id)
    while report["state"] not in FINAL_STATES:
        if deadline is not None and time.monotonic() > deadline:
            print(to_json(report) if args.json else report_text(report))
            print(f"still {report['state']} after {args.timeout} s", file=sys.stderr)
            return 3
        time.sleep(0.5)
        report = _report(submission_id)
    print(to_json(report) if args.json else report_text(report))
    return 0 if report["state"] == "succeeded" else 1


def _report(submission_id: int) -> dict[str, Any]:
    from db.session import session_scope
    from db.submissions import get_submission
    from evalboard.errors import NotFoundError
    from evalboard.service import submission_report

    with session_scope() as session:
        submission = get_submission(session, submission_id)
        if submission is None:
            raise NotFoundError(f"submission {submission_id} does not exist")
        return submission_report(session, submission)


def cmd_status(args: argparse.Namespace) -> int:
    report = _report(args.id)
    print(to_json(report) if args.json else report_text(report))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from db.session import session_scope
    from db.submissions import cancel_submission

    with session_scope() as session:
        cancelled = cancel_submission(session, args.id)
    print(f"submission {args.id} {'cancelled' if cancelled else 'was not queued or running'}")
    return 0 if cancelled else 1


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
