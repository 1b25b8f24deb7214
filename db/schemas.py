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
    rank: int | None  # None: stale (measured on an older spec, dataset or model revision)
    model: str
    model_source: str
    revision: str
    value: float
    metric: str
    higher_is_better: bool
    n_samples: int
    submission_id: int
    dataset: str
    config: str
    split: str
    dataset_fingerprint: str
    spec_name: str
    spec_version: str
    status: str = "ranked"  # ranked | stale
    stale_reasons: list[str] = Field(default_factory=list)
    lineage_submission_id: int | None = None
    base_model: str | None = None  # for a trained model: what it was fine-tuned from
    training_parameters: dict[str, Any] | None = None
    evaluated_at: datetime


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
    # Against the previous result on the same dataset, config and split: which parts of the
    # identity changed (empty for a re-run of the same identity; None for the first result).
    changed: list[str] | None = None
    flags: list[str] = Field(default_factory=list)
