"""Subcommands about submissions: evaluate (in-process), submit, train, status, cancel."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from evalboard.commands.common import report_of
from evalboard.output import print_report
from evalboard.progress import LiveProgress
from evalboard.reports import Interval, SubmissionReport
from evalboard.settings import get_settings
from evalboard.submit import EvaluationInput

FINAL_STATES = {"succeeded", "failed", "cancelled"}


def evaluation_input(args: argparse.Namespace) -> EvaluationInput:
    """The request the data options describe (model, dataset, task, spec, columns, …)."""
    columns = dict(getattr(args, "column", []) or [])
    for role, value in (("image", args.image_column), ("label", args.label_column)):
        if value is not None:
            columns[role] = value
    batch_size = getattr(args, "batch_size", None)
    parameters: dict[str, Any] = {}
    if batch_size is not None and getattr(args, "command", "") != "train":
        parameters["batch_size"] = batch_size
    from evalboard import catalog

    return EvaluationInput(
        model=args.model,
        dataset=args.dataset,
        revision=args.revision,
        config=args.config,
        split=getattr(args, "split", None),
        dataset_revision=args.dataset_revision,
        task=args.task or catalog.IMAGE_CLASSIFICATION,
        spec=args.spec,
        columns=columns,
        submitter=getattr(args, "submitter", "anonymous"),
        parameters=parameters,
        webhook=getattr(args, "webhook", None),
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    from evalboard.submit import prepare, resolve
    from worker.evaluation.engine import EvaluationRequest, run_evaluation

    settings = get_settings()
    evaluation = evaluation_input(args)
    resolved = resolve(evaluation, settings)
    request = prepare(evaluation, None, settings, resolved=resolved)
    outcome = run_evaluation(
        EvaluationRequest(
            model=resolved.model,
            dataset=resolved.dataset,
            split=request.split,
            task=request.task,
            spec_name=request.spec_name,
            columns=request.column_mapping,
            batch_size=request.parameters.get("batch_size") or settings.eval_batch_size,
            device=args.device or settings.device,
            num_workers=settings.eval_num_workers,
        )
    )
    report = SubmissionReport(
        submission_id=None,
        task=request.task,
        state="succeeded",
        model=request.model.name,
        revision=request.model.resolved_revision,
        dataset=request.dataset.name,
        config=request.dataset.config,
        split=outcome.split,
        spec_name=request.spec_name,
        spec_version=request.spec_version,
        metrics=outcome.metric_values(),
        intervals={
            m.metric: Interval(low=m.ci_low, high=m.ci_high)
            for m in outcome.metrics
            if m.ci_low is not None and m.ci_high is not None
        },
        n_samples=outcome.n_samples,
        provenance=outcome.provenance,
    )
    print_report(report, as_json=args.json)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from evalboard.submit import submit

    submitted = submit(evaluation_input(args), token=args.token)
    return _follow(submitted.submission_id, submitted.duplicate, args)


def cmd_train(args: argparse.Namespace) -> int:
    from evalboard.submit import submit

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
    submitted = submit(evaluation_input(args), training, token=args.token)
    return _follow(submitted.submission_id, submitted.duplicate, args)


def _follow(submission_id: int, duplicate: bool, args: argparse.Namespace) -> int:
    """Print the new submission, or with ``--wait`` its final report; the exit code says how
    it ended (0 succeeded, 1 failed or cancelled, 3 still running at ``--timeout``)."""
    if duplicate:
        print(
            f"identical to submission {submission_id}: returning it, not running again",
            file=sys.stderr,
        )
    report = report_of(submission_id, args, own=True)
    if not args.wait:
        if args.json:
            print_report(report, as_json=True)
        else:
            print(f"submission {submission_id} {'exists' if duplicate else 'queued'}")
        return 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    live = LiveProgress(submission_id)
    try:
        while report.state not in FINAL_STATES:
            live.show(report)
            if deadline is not None and time.monotonic() > deadline:
                live.close()
                print_report(report, as_json=args.json)
                print(f"still {report.state} after {args.timeout} s", file=sys.stderr)
                return 3
            time.sleep(0.5)
            report = report_of(submission_id, args, own=True)
    finally:
        live.close()
    print_report(report, as_json=args.json)
    return 0 if report.state == "succeeded" else 1


def cmd_status(args: argparse.Namespace) -> int:
    print_report(report_of(args.id, args), as_json=args.json)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from evalboard.submit import cancel

    report_of(args.id, args)  # exists, and the caller may manage it
    cancelled = cancel(args.id)
    print(f"submission {args.id} {'cancelled' if cancelled else 'was not queued or running'}")
    return 0 if cancelled else 1
