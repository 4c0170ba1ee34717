"""Store fixtures: every store test runs on SQLite and on a real PostgreSQL 15 server.

The PostgreSQL server is started once per session with initdb/pg_ctl in a temporary folder on a
free port. PostgreSQL refuses to run as root, so under root (CI, these machines) it runs as the
`postgres` system user through `runuser`. Without the binaries the PostgreSQL half skips.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the store tests need the `store` extra")
pytest.importorskip("alembic", reason="the store tests need the `store` extra")

SCALE = (0.5, 5.0)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL server; yields the URL of its `postgres` database."""
    from movierec.store.pgtemp import temporary_postgres, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"{reason}: PostgreSQL store tests skipped")
    pytest.importorskip("psycopg", reason="the PostgreSQL store tests need psycopg 3")
    with temporary_postgres() as url:
        yield url


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty schema on the session's server (much cheaper than a new database)."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    yield f"{postgres_server}?options=-csearch_path%3D{name}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url: str) -> Iterator[object]:
    """A migrated Store on the 0.5..5 scale with batches of at most 5 ratings."""
    from movierec.store import Store

    with Store(store_url, rating_scale=SCALE, max_batch=5) as st:
        yield st
