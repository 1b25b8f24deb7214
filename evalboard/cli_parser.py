"""The ``evalboard`` command line: subcommands and their options (a public contract)."""

from __future__ import annotations

import argparse
import os


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


def _add_identity_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token", default=os.environ.get("EVALBOARD_TOKEN"),
        help="submitter token (default: $EVALBOARD_TOKEN)",
    )  # fmt: skip
    parser.add_argument(
        "--admin-secret", default=None, help="admin secret (default: the configured one)"
    )


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
    _add_identity_options(parser)
    parser.add_argument("--wait", action="store_true", help="block until training ends")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")
    parser.add_argument("--json", action="store_true", help="print JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evalboard",
        description="Standardized evaluation and leaderboards for image classifiers.",
    )
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
    _add_identity_options(submit)
    submit.add_argument("--wait", action="store_true", help="block until the submission ends")
    submit.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")

    train = commands.add_parser("train", help="fine-tune an image classifier, then evaluate it")
    _add_training_options(train)

    status = commands.add_parser("status", help="state, progress and results of a submission")
    status.add_argument("id", type=int)
    status.add_argument("--json", action="store_true")
    _add_identity_options(status)

    cancel = commands.add_parser("cancel", help="cancel a queued or running submission")
    cancel.add_argument("id", type=int)
    _add_identity_options(cancel)

    token = commands.add_parser("token", help="issue, revoke and list submitter tokens (admin)")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    issue = token_commands.add_parser("issue", help="a new token for a submitter, shown once")
    issue.add_argument("submitter")
    revoke = token_commands.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", type=int)
    token_commands.add_parser("list", help="tokens: id, submitter, created, revoked")
    for sub in (issue, revoke):
        sub.add_argument("--admin-secret", default=None)
    token_commands.choices["list"].add_argument("--admin-secret", default=None)

    board = commands.add_parser("leaderboard", help="ranked results")
    board.add_argument("--dataset", required=True)
    board.add_argument("--config", default=None)
    board.add_argument("--split", required=True)
    board.add_argument("--metric", default="accuracy")
    board.add_argument("--format", choices=("table", "json", "csv"), default="table")

    commands.add_parser("migrate", help="apply database migrations")
    return parser
