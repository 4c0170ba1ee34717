"""Alembic environment: runs on the connection `Store.migrate()` hands over (no ini, no URL)."""

from __future__ import annotations

from alembic import context

from movierec.store._schema import metadata

connection = context.config.attributes["connection"]
# render_as_batch: later migrations that alter columns must also work on SQLite.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
