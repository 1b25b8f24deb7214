"""boards keyed on the column mapping: results carry its key, and the board index has it

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-14 10:00:00.000000
"""

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The task defaults of the time, frozen: rows stored with ``{}`` were read with these.
DEFAULT_COLUMNS = {"image-classification": {"image": "image", "label": "label"}}
BOARD_INDEX = [
    "dataset_id", "split", "metric", "spec_name", "task", "columns_key", "model_name",
    "created_at", "submission_id", "id",
]  # fmt: skip
OLD_BOARD_INDEX = [c for c in BOARD_INDEX if c != "columns_key"]


def columns_key(task: str, mapping: Any) -> str:
    """db.identity.columns_key as it is at this revision."""
    columns = {str(k): str(v) for k, v in dict(mapping or {}).items()}
    columns = {**DEFAULT_COLUMNS.get(task, {}), **columns}
    canonical = json.dumps(
        dict(sorted(columns.items())), sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("columns_key", sa.String(length=64), nullable=True))
    submissions = sa.table(
        "submissions",
        sa.column("id", sa.Integer),
        sa.column("task", sa.String),
        sa.column("column_mapping", sa.JSON),
    )
    results = sa.table(
        "results", sa.column("submission_id", sa.Integer), sa.column("columns_key", sa.String)
    )
    connection = op.get_bind()
    measured = connection.execute(
        sa.select(submissions.c.id, submissions.c.task, submissions.c.column_mapping).where(
            submissions.c.id.in_(sa.select(results.c.submission_id).distinct())
        )
    ).all()
    keys = [{"sid": sid, "key": columns_key(task, mapping)} for sid, task, mapping in measured]
    if keys:
        connection.execute(
            results.update()
            .where(results.c.submission_id == sa.bindparam("sid"))
            .values(columns_key=sa.bindparam("key")),
            keys,
        )
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.alter_column("columns_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_index("ix_results_board")
        batch_op.create_index("ix_results_board", BOARD_INDEX, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_index("ix_results_board")
        batch_op.create_index("ix_results_board", OLD_BOARD_INDEX, unique=False)
        batch_op.drop_column("columns_key")
