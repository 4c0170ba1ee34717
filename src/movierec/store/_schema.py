"""The store's tables (SQLAlchemy Core); the migrations in `migrations/versions` create these.

A test compares the migrated database with this metadata, so a column added here without a
migration (or the reverse) fails the suite.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

#: Users the store knows: the dataset's (registered by the service) and those the API created.
users = sa.Table(
    "users", metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("source", sa.String(16), nullable=False),  # "dataset" or "api"
    sa.Column("created_at", sa.Float, nullable=False),  # unix seconds, server clock
)

#: The latest rating per (user, movie); a new rating replaces the old one (latest wins).
ratings = sa.Table(
    "ratings", metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("item_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("rating", sa.Float, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),  # unix seconds, as in the datasets
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),  # server clock at the write
    # The impressions list the rating was given from (GET ...?log=true), if the client said so.
    sa.Column("list_id", sa.String(64), nullable=True),  # migration 0002
    sa.Index("ix_ratings_updated_at", "updated_at"),
)

#: Lists shown to users, one row per position, so later feedback can cite the list.
impressions = sa.Table(
    "impressions", metadata,
    sa.Column("list_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("item_id", sa.BigInteger, nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("shown_at", sa.Float, nullable=False),
    sa.Index("ix_impressions_user_shown", "user_id", "shown_at"),
)

#: API keys: only a SHA-256 hash of the secret is stored, never the secret.
api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("scope", sa.String(8), nullable=False),  # read, write or admin
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
)

#: Model versions the service has served or may serve; at most one is "active".
model_versions = sa.Table(
    "model_versions", metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # registered, active, retired, rejected
    sa.Column("activated_at", sa.Float, nullable=True),
    sa.Column("note", sa.Text, nullable=False),
)
