"""Store URL fixtures shared by every test that runs on SQLite and on a real PostgreSQL 15.

The PostgreSQL server is started with initdb/pg_ctl in a temporary folder on a free port
(`movierec.store.pgtemp`). PostgreSQL refuses to run as root, so under root (CI, these machines)
it runs as the `postgres` system user through `runuser`. Without the binaries the PostgreSQL
half skips.

A test module (or conftest) binds the fixtures it needs (an assignment, not `from ... import`,
so that the test parameters of the same name are not flagged as redefinitions)::

    import pgstore

    postgres_server, pg_url, store_url = pgstore.postgres_server, pgstore.pg_url, pgstore.store_url

The server is started once per module that imports `postgres_server` (fixtures are owned by
the module that defines or imports them); each test gets a fresh schema on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


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
    return str(request.getfixturevalue("pg_url"))
