"""Input and output schemas, separate from the table classes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ModelRefCreate(BaseModel):
    source: str
    name: str
    requested_revision: str | None = None
    resolved_revision: str
    task: str = "image-classification"
    lineage_submission_id: int | None = None


class DatasetRefCreate(BaseModel):
    source: str
    name: str
    config: str = "default"
    requested_revision: str | None = None
    fingerprint: str


class SubmissionCreate(BaseModel):
    kind: str = "evaluate"
    submitter: str = "anonymous"
    model: ModelRefCreate
    dataset: DatasetRefCreate
    split: str | None = None
    column_mapping: dict[str, str] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    spec_name: str
    spec_version: str


class MetricResult(BaseModel):
    """One metric value as the engine computed it, before it is stored."""

    metric: str
    value: float
    higher_is_better: bool
    ci_low: float | None = None
    ci_high: float | None = None


class LeaderboardRow(BaseModel):
    rank: int
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
    lineage_submission_id: int | None = None
    base_model: str | None = None  # for a trained model: what it was fine-tuned from
    training_parameters: dict[str, Any] | None = None
    evaluated_at: datetime
