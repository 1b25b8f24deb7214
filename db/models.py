"""SQLAlchemy table classes: model and dataset references, submissions, results."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[str]: JSON,
        datetime: DateTime(timezone=True),
    }


class SubmissionState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset(
    {SubmissionState.SUCCEEDED, SubmissionState.FAILED, SubmissionState.CANCELLED}
)


class ModelRef(Base):
    """A model as evaluated: where it comes from and the exact revision that ran."""

    __tablename__ = "model_refs"
    __table_args__ = (
        UniqueConstraint("source", "name", "resolved_revision", name="uq_model_refs_identity"),
        # The model's current revision: its newest last_seen_at, one index probe per name.
        Index("ix_model_refs_name_seen", "name", "last_seen_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # hub | local | trained
    name: Mapped[str] = mapped_column(String(1024))  # Hub id or absolute folder path
    requested_revision: Mapped[str | None] = mapped_column(String(255))
    resolved_revision: Mapped[str] = mapped_column(String(128))  # commit sha or content hash
    # The training submission that produced a ``trained`` model. No foreign key: submissions
    # already reference model_refs, and a cycle would complicate migrations on both backends.
    lineage_submission_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When this revision was last resolved (a submission or a re-evaluation check): the newest
    # one is the model's current revision.
    last_seen_at: Mapped[datetime | None]
    # What the first evaluation of this revision found (the leaderboard's filters use them).
    architecture: Mapped[str | None] = mapped_column(String(255))
    parameter_count: Mapped[int | None] = mapped_column(BigInteger)


class DatasetRef(Base):
    """A dataset as evaluated: name or path, config, and its revision or fingerprint."""

    __tablename__ = "dataset_refs"
    __table_args__ = (
        UniqueConstraint(
            "source", "name", "config", "fingerprint", name="uq_dataset_refs_identity"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # hub | local
    name: Mapped[str] = mapped_column(String(1024))
    config: Mapped[str] = mapped_column(String(255), default="default")
    requested_revision: Mapped[str | None] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The newest fingerprint seen for (name, config) is the dataset's current content.
    last_seen_at: Mapped[datetime | None]


class Submission(Base):
    """The unit of work and of the UI: one evaluation or training request."""

    __tablename__ = "submissions"
    __table_args__ = (
        Index("ix_submissions_state_created", "state", "created_at"),
        Index("ix_submissions_submitter_identity", "submitter", "identity_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # evaluate | train
    task: Mapped[str] = mapped_column(String(64))
    submitter: Mapped[str] = mapped_column(String(255), default="anonymous")
    model_id: Mapped[int] = mapped_column(ForeignKey("model_refs.id"))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset_refs.id"))
    split: Mapped[str | None] = mapped_column(String(255))
    column_mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    spec_name: Mapped[str] = mapped_column(String(128))
    spec_version: Mapped[str] = mapped_column(String(32))
    # sha256 of what the submission measures (db/identity.py): equal keys are duplicates.
    identity_key: Mapped[str | None] = mapped_column(String(64))
    # submitted | scheduled | manual (a re-evaluation), and the submission it re-runs.
    trigger: Mapped[str] = mapped_column(String(16), default="submitted")
    supersedes_submission_id: Mapped[int | None] = mapped_column(Integer)
    due_reasons: Mapped[list[str] | None] = mapped_column(JSON)
    webhook_url: Mapped[str | None] = mapped_column(Text)  # never shown or logged unredacted
    # The model's rank when this submission finished (kept where a webhook will compare it).
    rank_at_finish: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=SubmissionState.QUEUED.value)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    # What the progress counts: {"done", "total", "unit"} (images or steps), and a training's
    # epoch and loss.
    progress_detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # How the processes running it died, one entry per loss ("signal 9 (SIGKILL)", …).
    losses: Mapped[list[str] | None] = mapped_column(JSON)
    heartbeat_at: Mapped[datetime | None]
    failure_category: Mapped[str | None] = mapped_column(String(32))
    failure_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    celery_task_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    model: Mapped[ModelRef] = relationship(foreign_keys=[model_id], lazy="joined")
    dataset: Mapped[DatasetRef] = relationship(lazy="joined")
    results: Mapped[list[Result]] = relationship(back_populates="submission", order_by="Result.id")


class Result(Base):
    """One metric value of one submission, with its provenance. Never updated."""

    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint("submission_id", "metric", name="uq_results_submission_metric"),
        # The leaderboard's one range scan: a view's rows of one metric, by model and date; it
        # covers numbering the newest result per model: no table lookup, no sort.
        Index(
            "ix_results_board",
            "dataset_id",
            "split",
            "metric",
            "spec_name",
            "task",
            "columns_key",  # two label columns of one dataset and split are two boards
            "model_name",
            "created_at",
            "submission_id",  # for the moderation marks
            "id",  # implicit on SQLite; PostgreSQL answers from the index alone
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"))
    model_id: Mapped[int] = mapped_column(ForeignKey("model_refs.id"))
    # The model's name, copied from model_refs when the result is stored (never changes): the
    # leaderboard groups a view's results by it without a join.
    model_name: Mapped[str] = mapped_column(String(1024))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset_refs.id"))
    task: Mapped[str] = mapped_column(String(64))
    split: Mapped[str] = mapped_column(String(255))
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    higher_is_better: Mapped[bool]
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    n_samples: Mapped[int] = mapped_column(Integer)
    spec_name: Mapped[str] = mapped_column(String(128))
    spec_version: Mapped[str] = mapped_column(String(32))
    model_revision: Mapped[str] = mapped_column(String(128))
    dataset_fingerprint: Mapped[str] = mapped_column(String(128))
    # sha256 of the result's identity (task, spec and version, model revision, dataset
    # fingerprint, config, split, columns): equal keys measured the same thing.
    result_key: Mapped[str | None] = mapped_column(String(64), index=True)
    # sha256 of the full column mapping (db/identity.py ``columns_key``): part of the board's
    # identity, so a board is one range of ``ix_results_board``.
    columns_key: Mapped[str] = mapped_column(String(64))
    provenance: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    submission: Mapped[Submission] = relationship(back_populates="results")
    model: Mapped[ModelRef] = relationship(lazy="joined")
    dataset: Mapped[DatasetRef] = relationship(lazy="joined")


class ResultFlag(Base):
    """A remark on a submission's results, such as ``non_deterministic``. Results stay as
    they were stored; flags are added beside them."""

    __tablename__ = "result_flags"
    __table_args__ = (UniqueConstraint("submission_id", "flag", name="uq_result_flags"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    flag: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Moderation(Base):
    """An admin's marks on a submission's results: a baseline (always shown, never ranked) or
    hidden from the public with a reason (kept, and every change audited)."""

    __tablename__ = "moderation"

    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    baseline: Mapped[bool] = mapped_column(default=False)
    hidden: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModerationEvent(Base):
    """The audit trail of moderation: who did what to which submission, when and why."""

    __tablename__ = "moderation_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))  # baseline | unbaseline | hide | unhide
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PredictionSet(Base):
    """The per-sample references and top-k predicted classes of one evaluation, compressed:
    intervals, per-class scores and confusion matrices are recomputed from them."""

    __tablename__ = "predictions"

    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    n_samples: Mapped[int] = mapped_column(Integer)
    k: Mapped[int] = mapped_column(Integer)
    class_names: Mapped[list[str]] = mapped_column(JSON)
    references: Mapped[bytes] = mapped_column(LargeBinary)  # zlib(int32 little-endian [n])
    top_k: Mapped[bytes] = mapped_column(LargeBinary)  # zlib(int32 little-endian [n, k])
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingRun(Base):
    """What a ``train`` submission produced: where, which model, and its evaluation."""

    __tablename__ = "training_runs"

    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    output_dir: Mapped[str] = mapped_column(String(1024))
    resumed_from: Mapped[str | None] = mapped_column(String(1024))
    best_checkpoint: Mapped[str | None] = mapped_column(String(1024))
    trained_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_refs.id"))
    evaluation_submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingLog(Base):
    """One logged training event: step, epoch, loss, learning rate, validation metrics."""

    __tablename__ = "training_logs"
    __table_args__ = (Index("ix_training_logs_submission_step", "submission_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"))
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float | None] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SubmitterToken(Base):
    """A submitter's token, stored only as its sha256; shown once when issued."""

    __tablename__ = "submitter_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    submitter: Mapped[str] = mapped_column(String(255), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
