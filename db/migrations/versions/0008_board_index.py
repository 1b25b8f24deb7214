"""the leaderboard's covering index: results carry their model's name

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_name", sa.String(length=1024), nullable=True))
    op.execute(
        "UPDATE results SET model_name = "
        "(SELECT name FROM model_refs WHERE model_refs.id = results.model_id)"
    )
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.alter_column("model_name", existing_type=sa.String(length=1024), nullable=False)
        batch_op.drop_index("ix_results_view")
        batch_op.create_index(
            "ix_results_board",
            [
                "dataset_id",
                "split",
                "metric",
                "spec_name",
                "task",
                "model_name",
                "created_at",
                "submission_id",
                "id",
            ],  # fmt: skip
            unique=False,
        )
    op.execute("UPDATE model_refs SET last_seen_at = created_at WHERE last_seen_at IS NULL")
    with op.batch_alter_table("model_refs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_model_refs_name_seen", ["name", "last_seen_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("model_refs", schema=None) as batch_op:
        batch_op.drop_index("ix_model_refs_name_seen")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_index("ix_results_board")
        batch_op.create_index(
            "ix_results_view",
            ["dataset_id", "split", "metric", "spec_name", "task", "created_at"],
            unique=False,
        )
        batch_op.drop_column("model_name")
