"""Ratings cite the list they were given from: `ratings.list_id` (an impressions list id).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable `ratings.list_id` column."""
    with op.batch_alter_table("ratings") as batch:
        batch.add_column(sa.Column("list_id", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop the `ratings.list_id` column."""
    with op.batch_alter_table("ratings") as batch:
        batch.drop_column("list_id")
