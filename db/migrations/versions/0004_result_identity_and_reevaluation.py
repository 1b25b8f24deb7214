"""result identity, re-evaluation, history flags, stored predictions and webhooks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 19:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_refs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_column("task")
    with op.batch_alter_table("dataset_refs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        # Every submission so far was an image classification.
        batch_op.add_column(
            sa.Column(
                "task", sa.String(length=64), nullable=False,
                server_default="image-classification",
            )
        )  # fmt: skip
        batch_op.add_column(sa.Column("identity_key", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("trigger", sa.String(length=16), nullable=False, server_default="submitted")
        )
        batch_op.add_column(sa.Column("supersedes_submission_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("due_reasons", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("webhook_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("rank_at_finish", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_submissions_submitter_identity", ["submitter", "identity_key"], unique=False
        )
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.alter_column("task", server_default=None)
        batch_op.alter_column("trigger", server_default=None)
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result_key", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_results_result_key"), ["result_key"], unique=False)
    op.create_table(
        "result_flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("flag", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("submission_id", "flag", name="uq_result_flags"),
    )
    with op.batch_alter_table("result_flags", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_result_flags_submission_id"), ["submission_id"], unique=False
        )
    op.create_table(
        "predictions",
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("class_names", sa.JSON(), nullable=False),
        sa.Column("references", sa.LargeBinary(), nullable=False),
        sa.Column("top_k", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"]),
        sa.PrimaryKeyConstraint("submission_id"),
    )


def downgrade() -> None:
    op.drop_table("predictions")
    with op.batch_alter_table("result_flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_result_flags_submission_id"))
    op.drop_table("result_flags")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_results_result_key"))
        batch_op.drop_column("result_key")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index("ix_submissions_submitter_identity")
        for column in (
            "rank_at_finish", "webhook_url", "due_reasons", "supersedes_submission_id", "trigger",
            "identity_key", "task",
        ):  # fmt: skip
            batch_op.drop_column(column)
    with op.batch_alter_table("dataset_refs", schema=None) as batch_op:
        batch_op.drop_column("last_seen_at")
    with op.batch_alter_table("model_refs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "task", sa.String(length=64), nullable=False,
                server_default="image-classification",
            )
        )  # fmt: skip
