"""leaderboard product: model facts, moderation with its audit trail, the view index

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_refs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("architecture", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("parameter_count", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_index("ix_results_board")
        batch_op.create_index(
            "ix_results_view",
            ["dataset_id", "split", "metric", "spec_name", "task", "created_at"],
            unique=False,
        )
    op.create_table(
        "moderation",
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("baseline", sa.Boolean(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"]),
        sa.PrimaryKeyConstraint("submission_id"),
    )
    op.create_table(
        "moderation_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("moderation_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_moderation_events_submission_id"), ["submission_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("moderation_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_moderation_events_submission_id"))
    op.drop_table("moderation_events")
    op.drop_table("moderation")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_index("ix_results_view")
        batch_op.create_index(
            "ix_results_board", ["task", "dataset_id", "split", "metric"], unique=False
        )
    with op.batch_alter_table("model_refs", schema=None) as batch_op:
        batch_op.drop_column("parameter_count")
        batch_op.drop_column("architecture")
