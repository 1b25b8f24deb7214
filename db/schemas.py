"""Input and output schemas, separate from the table classes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ModelRefCreate(BaseModel):
    source: str  # hub | local | trained
    name: str
    requested_revision: str | None = None
    resolved_revision: str
    lineage_submission_id: int | None = None


class DatasetRefCreate(BaseModel):
    source: str
    name: str
    config: str = "default"
    requested_revision: str | None = None
    fingerprint: str


class SubmissionCreate(BaseModel):
    kind: str = "evaluate"
    task: str
    submitter: str = "anonymous"
    model: ModelRefCreate
    dataset: DatasetRefCreate
    split: str | None = None
    column_mapping: dict[str, str] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    spec_name: str
    spec_version: str
    trigger: str = "submitted"  # submitted | scheduled | manual
    supersedes_submission_id: int | None = None
    due_reasons: list[str] | None = None
    webhook_url: str | None = None


class MetricResult(BaseModel):
    """One metric value as the engine computed it, before it is stored."""

    metric: str
    value: float
    higher_is_better: bool
    ci_low: float | None = None
    ci_high: float | None = None


class LeaderboardRow(BaseModel):
    """One row of a leaderboard: the JSON and CSV export contract (``evalboard leaderboard``)."""

    rank: int | None  # None: stale (an older spec, dataset or model revision) or a baseline
    model: str  # the Hub id or the folder's full path
    display_name: str  # the Hub id, the folder's name, or "<base> fine-tuned (run N)"
    revision: str
    source: str  # submitted | trained | baseline
    value: float  # of the ranking metric
    ci_low: float | None  # its 95% interval
    ci_high: float | None
    metric: str
    metrics: dict[str, float] = Field(default_factory=dict)  # every metric of the result
    intervals: dict[str, list[float | None]] = Field(default_factory=dict)
    n_samples: int
    submission_id: int
    model_source: str  # hub | local | trained
    higher_is_better: bool
    dataset: str
    config: str
    split: str
    dataset_fingerprint: str
    spec_name: str
    spec_version: str
    status: str = "ranked"  # ranked | stale | baseline
    stale_reasons: list[str] = Field(default_factory=list)
    # Its 95% interval overlaps the ranked row above: not significantly different.
    overlaps_previous: bool = False
    architecture: str | None = None
    parameter_count: int | None = None
    submitter: str | None = None
    lineage_submission_id: int | None = None
    base_model: str | None = None  # for a trained model: what it was fine-tuned from
    training_parameters: dict[str, Any] | None = None
    evaluated_at: datetime
    # Role → column the board read (every role): two label columns of a split are two boards.
    columns: dict[str, str] = Field(default_factory=dict)


class HistoryEntry(BaseModel):
    """One result set of a model, in the order they were measured."""

    submission_id: int
    model: str
    revision: str
    dataset: str
    config: str
    split: str
    dataset_fingerprint: str
    spec_name: str
    spec_version: str
    metrics: dict[str, float]
    n_samples: int
    created_at: datetime
    trigger: str
    supersedes_submission_id: int | None = None
    columns: dict[str, str] = Field(default_factory=dict)  # role → column, every role
    # Against the previous result on the same board (dataset, config, split, columns): which
    # parts of the identity changed (empty for a re-run of the same identity; None for the
    # first result).
    changed: list[str] | None = None
    flags: list[str] = Field(default_factory=list)
