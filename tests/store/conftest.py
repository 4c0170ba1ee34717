"""Store fixtures: every store test runs on SQLite and on a real PostgreSQL 15 server.

The URL fixtures (`store_url`, `pg_url`, `postgres_server`) live in tests/pgstore.py, shared with
the service, retrain and online-evaluation tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("sqlalchemy", reason="the store tests need the `store` extra")
pytest.importorskip("alembic", reason="the store tests need the `store` extra")

import pgstore  # noqa: E402

# SQLite and a throw-away PostgreSQL server (tests/pgstore.py).
postgres_server, pg_url, store_url = pgstore.postgres_server, pgstore.pg_url, pgstore.store_url

SCALE = (0.5, 5.0)


@pytest.fixture
def store(store_url: str) -> Iterator[object]:
    """A migrated Store on the 0.5..5 scale with batches of at most 5 ratings."""
    from movierec.store import Store

    with Store(store_url, rating_scale=SCALE, max_batch=5) as st:
        yield st
