"""submitter tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 17:52:33.636513
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "submitter_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submitter", sa.String(length=255), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("submitter_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_submitter_tokens_submitter"), ["submitter"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("submitter_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submitter_tokens_submitter"))

    op.drop_table("submitter_tokens")
