"""``evalboard leaderboard`` exports and ``evalboard moderate``, through the real command line."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from db.results import complete_submission
from db.schemas import DatasetRefCreate, MetricResult, ModelRefCreate, SubmissionCreate
from db.session import session_scope
from db.submissions import claim_submission, create_submission
from tests import factories
from tests.test_end_to_end import ROOT

SPEC = factories.SPEC
CONTRACT = {
    "rank", "model", "display_name", "revision", "source", "value", "ci_low", "ci_high",
    "metric", "metrics", "n_samples", "submission_id", "dataset", "config", "split",
    "dataset_fingerprint", "spec_name", "spec_version", "evaluated_at", "training_parameters",
}  # fmt: skip


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalboard.cli", *args], capture_output=True, text=True,
        timeout=120, cwd=ROOT, env={**os.environ, **(env or {})},
    )  # fmt: skip


def result(
    model: str,
    accuracy: float,
    *,
    dataset: str = "/data/digits",
    columns: dict[str, str] | None = None,
) -> int:
    """A succeeded evaluation of ``model`` with every metric of the spec (``columns``: the
    column mapping stored, none by default)."""
    request = SubmissionCreate(
        task=SPEC.task, spec_name=SPEC.name, spec_version=SPEC.version,
        column_mapping=columns or {},
        model=ModelRefCreate(source="local", name=model, resolved_revision=f"rev-{model}"),
        dataset=DatasetRefCreate(source="local", name=dataset, fingerprint="fp"),
    )  # fmt: skip
    metrics = [
        MetricResult(metric=name, value=accuracy - i / 100, higher_is_better=True,
                     ci_low=accuracy - i / 100 - 0.02, ci_high=accuracy - i / 100 + 0.02)
        for i, name in enumerate(SPEC.metrics)
    ]  # fmt: skip
    with session_scope() as session:
        submission_id = create_submission(session, request).id
        assert claim_submission(session, submission_id)
        assert complete_submission(
            session, submission_id, metrics=metrics, n_samples=100, provenance={"split": "test"}
        )
    return submission_id


def board(*args: str) -> list[dict[str, Any]]:
    completed = cli("leaderboard", "--dataset", "/data/digits", "--split", "test",
                    "--format", "json", *args)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    rows: list[dict[str, Any]] = json.loads(completed.stdout)
    return rows


def test_json_rows_carry_the_contract_with_every_metric_and_the_interval(
    evalboard_home: Path,
) -> None:
    result("/models/alpha", 0.9)
    result("org/beta", 0.7)

    rows = board()

    assert [row["rank"] for row in rows] == [1, 2]
    assert CONTRACT <= set(rows[0])
    assert rows[0]["display_name"] == "alpha"
    assert rows[0]["model"] == "/models/alpha"
    assert rows[0]["source"] == "submitted"
    assert (rows[0]["ci_low"], rows[0]["ci_high"]) == pytest.approx((0.88, 0.92))
    assert list(rows[0]["metrics"]) == list(SPEC.metrics)
    assert rows[0]["metrics"]["f1_macro"] == pytest.approx(0.89)
    by_f1 = board("--metric", "f1_macro")
    assert by_f1[0]["metric"] == "f1_macro" and by_f1[0]["value"] == pytest.approx(0.89)


def test_csv_flattens_metrics_writes_nested_values_as_json_and_defuses_formulas(
    evalboard_home: Path,
) -> None:
    result('=HYPERLINK("http://x")', 0.9)
    result("/models/plain", 0.5)

    completed = cli("leaderboard", "--dataset", "/data/digits", "--split", "test",
                    "--format", "csv")  # fmt: skip

    table = list(csv.DictReader(io.StringIO(completed.stdout)))
    assert {f"metric_{name}" for name in SPEC.metrics} <= set(table[0])
    assert "metrics" not in table[0]
    assert table[0]["model"].startswith("'=")
    assert float(table[1]["metric_accuracy"]) == pytest.approx(0.5)
    assert json.loads(table[1]["stale_reasons"]) == []
    assert json.loads(table[1]["intervals"])["accuracy"] == pytest.approx([0.48, 0.52])


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_an_unknown_metric_exits_non_zero_and_lists_the_valid_ones(
    evalboard_home: Path, fmt: str
) -> None:
    result("/models/alpha", 0.9)
    completed = cli("leaderboard", "--dataset", "/data/digits", "--split", "test",
                    "--metric", "top1", "--format", fmt)  # fmt: skip
    assert completed.returncode == 2
    # JSON asks for the JSON error shape; the others print the error on stderr.
    shown = json.loads(completed.stdout)["error"]["message"] if fmt == "json" else completed.stderr
    assert "top1" in shown
    for name in SPEC.metrics:
        assert name in shown


def test_an_admin_marks_a_baseline_and_hides_a_result_with_an_audit_trail(
    evalboard_home: Path,
) -> None:
    best = result("/models/best", 0.95)
    baseline = result("/models/paper-baseline", 0.80)
    result("/models/plain", 0.60)

    assert cli("moderate", "baseline", str(baseline)).returncode == 0
    hidden = cli("moderate", "hide", str(best), "--reason", "trained on the test split")
    assert hidden.returncode == 0, hidden.stderr
    refused = cli("moderate", "hide", str(baseline))  # a reason is required
    assert refused.returncode == 2

    rows = board()
    assert [(r["display_name"], r["rank"], r["source"]) for r in rows] == [
        ("paper-baseline", None, "baseline"),
        ("plain", 1, "submitted"),
    ]
    history = json.loads(cli("history", "--model", "/models/best", "--json").stdout)
    assert history == []  # hidden from every public read
    marks = json.loads(cli("moderate", "list", "--json").stdout)
    assert {(m["submission_id"], m["baseline"], m["hidden"], m["reason"]) for m in marks} == {
        (baseline, True, False, None),
        (best, False, True, "trained on the test split"),
    }
    with session_scope() as session:
        from db.moderation import events_of

        assert [(e.action, e.reason) for e in events_of(session, best)] == [
            ("hide", "trained on the test split")
        ]

    assert cli("moderate", "unhide", str(best)).returncode == 0
    assert [r["display_name"] for r in board()][:2] == ["best", "paper-baseline"]


def test_moderation_needs_the_admin_secret_in_production(
    evalboard_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submission_id = result("/models/alpha", 0.9)
    production = {"EVALBOARD_ENVIRONMENT": "production", "EVALBOARD_ADMIN_SECRET": "s" * 40}
    refused = cli("moderate", "hide", str(submission_id), "--reason", "x", env=production)
    assert refused.returncode == 2
    assert "admin secret" in refused.stderr
    allowed = cli(
        "moderate", "hide", str(submission_id), "--reason", "x", "--admin-secret", "s" * 40,
        env=production,
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
