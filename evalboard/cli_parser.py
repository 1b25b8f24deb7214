"""The ``evalboard`` command line: subcommands and their options (a public contract)."""

from __future__ import annotations

import argparse
import os


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are ``bad_input`` errors, printed like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        from evalboard.errors import BadInputError

        raise BadInputError(f"{self.prog}: {message}")


def _column(value: str) -> tuple[str, str]:
    role, separator, column = value.partition("=")
    if not separator or not role.strip() or not column.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not ROLE=COLUMN (for instance image=img)")
    return role.strip(), column.strip()


def _add_data_options(parser: argparse.ArgumentParser, *, model_help: str) -> None:
    parser.add_argument("--model", required=True, help=model_help)
    parser.add_argument("--dataset", required=True, help="Hub id or local dataset path")
    parser.add_argument("--revision", help="model revision (branch, tag or commit)")
    parser.add_argument("--dataset-revision", help="dataset revision on the Hub")
    parser.add_argument("--config", help="dataset configuration")
    parser.add_argument("--task", default=None, help="task (default: image-classification)")
    parser.add_argument("--spec", default=None, help="evaluation spec (default: the task's)")
    parser.add_argument("--image-column", default=None, help="column of the images (image)")
    parser.add_argument("--label-column", default=None, help="column of the labels (label)")
    parser.add_argument(
        "--column", action="append", type=_column, default=[], metavar="ROLE=COLUMN",
        help="the column of any task role, e.g. --column image=img (repeatable)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print JSON")


def _add_board_column_options(parser: argparse.ArgumentParser, label_help: str) -> None:
    """Which board by its columns: leaderboard, history and reevaluate, as submit names them."""
    parser.add_argument("--label-column", default=None, metavar="NAME", help=label_help)
    parser.add_argument(
        "--column", action="append", type=_column, default=[], metavar="ROLE=COLUMN",
        help="the column of any task role, e.g. --column image=img (repeatable)",
    )  # fmt: skip


def _add_identity_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token", default=os.environ.get("EVALBOARD_TOKEN"),
        help="submitter token (default: $EVALBOARD_TOKEN)",
    )  # fmt: skip
    parser.add_argument(
        "--admin-secret", default=None, help="admin secret (default: the configured one)"
    )


def _add_queue_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--submitter", default="anonymous")
    parser.add_argument(
        "--webhook", default=None,
        help="http(s) URL that gets a POST when the submission ends (and on rank changes)",
    )  # fmt: skip
    _add_identity_options(parser)
    parser.add_argument("--wait", action="store_true", help="block until the submission ends")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    from evalboard.training_params import TrainingParams

    defaults = TrainingParams()
    _add_data_options(parser, model_help="base model: Hub id or local folder")
    parser.add_argument("--train-split", default=defaults.train_split)
    parser.add_argument("--validation-split", help="default: a stratified split of the train split")
    parser.add_argument("--test-split", help="for the final evaluation (default: test)")
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
    _add_queue_options(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="evalboard",
        description="Standardized evaluation and leaderboards for image classifiers.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

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
    _add_data_options(evaluate, model_help="Hub id or local model folder")
    evaluate.add_argument("--split", help="split (default: test, then validation, then train)")
    evaluate.add_argument("--batch-size", type=int, help="inference batch size")
    evaluate.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if available)")

    submit = commands.add_parser("submit", help="record and enqueue an evaluation")
    _add_data_options(submit, model_help="Hub id or local model folder")
    submit.add_argument("--split", help="split (default: test, then validation, then train)")
    submit.add_argument("--batch-size", type=int, help="inference batch size")
    _add_queue_options(submit)

    train = commands.add_parser("train", help="fine-tune an image classifier, then evaluate it")
    _add_training_options(train)

    status = commands.add_parser("status", help="state, progress and results of a submission")
    status.add_argument("id", type=int)
    status.add_argument("--json", action="store_true")
    _add_identity_options(status)

    cancel = commands.add_parser("cancel", help="cancel a queued or running submission")
    cancel.add_argument("id", type=int)
    cancel.add_argument("--json", action="store_true")
    _add_identity_options(cancel)

    token = commands.add_parser("token", help="issue, revoke and list submitter tokens (admin)")
    token_commands = token.add_subparsers(dest="token_command", required=True, parser_class=Parser)
    issue = token_commands.add_parser("issue", help="a new token for a submitter, shown once")
    issue.add_argument("submitter")
    revoke = token_commands.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", type=int)
    listing = token_commands.add_parser("list", help="tokens: id, submitter, created, revoked")
    for sub in (issue, revoke, listing):
        sub.add_argument("--admin-secret", default=None)

    board = commands.add_parser("leaderboard", help="ranked results")
    board.add_argument("--dataset", required=True)
    board.add_argument("--config", default=None)
    board.add_argument("--split", required=True)
    board.add_argument("--task", default=None, help="task (default: image-classification)")
    board.add_argument("--spec", default=None, help="evaluation spec (default: the task's)")
    board.add_argument("--metric", default=None, help="metric to rank by (default: the spec's)")
    _add_board_column_options(board, "the board of this label column (default: the only one, "
                              "else label)")  # fmt: skip
    board.add_argument("--format", choices=("table", "json", "csv"), default="table")

    history = commands.add_parser("history", help="every result of a model, oldest first")
    history.add_argument("--model", required=True, help="Hub id or local model folder")
    history.add_argument("--dataset", default=None)
    history.add_argument("--split", default=None)
    _add_board_column_options(history, "only results read with this label column")
    history.add_argument("--json", action="store_true")

    reevaluate = commands.add_parser(
        "reevaluate", help="re-evaluate results whose model, dataset or spec changed (admin)"
    )
    which = reevaluate.add_mutually_exclusive_group(required=True)
    which.add_argument("--due", action="store_true", help="only what changed (or is too old)")
    which.add_argument("--all", action="store_true", help="every tracked result")
    reevaluate.add_argument("--dataset", default=None, help="only this dataset")
    reevaluate.add_argument("--model", default=None, help="only this model")
    _add_board_column_options(reevaluate, "only boards of this label column")
    reevaluate.add_argument(
        "--dry-run", action="store_true", help="print what is due; enqueue nothing"
    )
    reevaluate.add_argument("--json", action="store_true")
    reevaluate.add_argument("--admin-secret", default=None)

    moderate = commands.add_parser(
        "moderate", help="mark baselines, hide results (admin); list what is marked"
    )
    moderation = moderate.add_subparsers(dest="action", required=True, parser_class=Parser)
    for action, text in (
        ("baseline", "always shown on its leaderboard, never ranked"),
        ("unbaseline", "ranked again like any result"),
        ("hide", "kept and audited, but not shown publicly"),
        ("unhide", "shown again"),
    ):
        sub = moderation.add_parser(action, help=text)
        sub.add_argument("id", type=int, help="the submission (a succeeded evaluation)")
        sub.add_argument("--reason", default=None, required=action == "hide")
        sub.add_argument("--admin-secret", default=None)
        sub.add_argument("--json", action="store_true")
    listing = moderation.add_parser("list", help="every baseline and hidden result")
    listing.add_argument("--admin-secret", default=None)
    listing.add_argument("--json", action="store_true")

    commands.add_parser("migrate", help="apply database migrations")
    return parser
