"""training runs and logs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:30:14.026752
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "training_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Float(), nullable=True),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("learning_rate", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("training_logs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_training_logs_submission_step", ["submission_id", "step"], unique=False
        )

    op.create_table(
        "training_runs",
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("output_dir", sa.String(length=1024), nullable=False),
        sa.Column("resumed_from", sa.String(length=1024), nullable=True),
        sa.Column("best_checkpoint", sa.String(length=1024), nullable=True),
        sa.Column("trained_model_id", sa.Integer(), nullable=True),
        sa.Column("evaluation_submission_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_submission_id"],
            ["submissions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["trained_model_id"],
            ["model_refs.id"],
        ),
        sa.PrimaryKeyConstraint("submission_id"),
    )


def downgrade() -> None:
    op.drop_table("training_runs")
    with op.batch_alter_table("training_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_training_logs_submission_step")

    op.drop_table("training_logs")
