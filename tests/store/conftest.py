"""Store fixtures: every store test runs on SQLite and on a real PostgreSQL 15 server.

The PostgreSQL server is started once per session with initdb/pg_ctl in a temporary folder on a
free port. PostgreSQL refuses to run as root, so under root (CI, these machines) it runs as the
`postgres` system user through `runuser`. Without the binaries the PostgreSQL half skips.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the store tests need the `store` extra")
pytest.importorskip("alembic", reason="the store tests need the `store` extra")

PG_BIN = Path(os.environ.get("MOVIEREC_PG_BIN", "/usr/lib/postgresql/15/bin"))
SCALE = (0.5, 5.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(folder: Path) -> list[str]:
    """The command prefix that runs PostgreSQL binaries as a non-root user."""
    if os.geteuid() != 0:
        return []
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("PostgreSQL refuses to run as root and there is no `postgres` user")
    if shutil.which("runuser") is None:
        pytest.skip("PostgreSQL refuses to run as root and `runuser` is missing")
    os.chown(folder, user.pw_uid, user.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL server; yields the URL of its `postgres` database."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN} (apt-get install postgresql, "
                    "or set MOVIEREC_PG_BIN): PostgreSQL store tests skipped")
    pytest.importorskip("psycopg", reason="the PostgreSQL store tests need psycopg 3")
    folder = Path(tempfile.mkdtemp(prefix="movierec-pg-"))
    prefix = _as_server_user(folder)
    data, port = folder / "data", _free_port()

    def run(*args: str | Path) -> None:
        proc = subprocess.run([*prefix, *map(str, args)], capture_output=True, text=True,
                              timeout=120)
        if proc.returncode:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")

    try:
        run(PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync")
        # fsync stays on: the durability tests must not pass only because of a lax server.
        run(PG_BIN / "pg_ctl", "-D", data, "-l", folder / "server.log", "-w", "-t", "60",
            "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(Exception):
            run(PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


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
