"""Database URLs, engines (SQLite pragmas, psycopg 3) and Alembic migrations run from code."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from movierec.errors import MovieRecError

#: The store used when neither `--store` nor MOVIEREC_STORE names one: a file in the working folder.
DEFAULT_STORE = "movierec-state.db"
MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x6D6F7669  # "movi": the advisory lock id held while migrating PostgreSQL


class StoreError(MovieRecError):
    """The store cannot be opened or used: bad URL, unknown schema revision, unknown key id."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or stays locked; retrying later may work (HTTP 503)."""


def resolve_url(url: str | os.PathLike[str] | None = None) -> str:
    """The SQLAlchemy URL for a `--store` value.

    Args:
        url: `sqlite:///path`, `postgresql://user@host/db` (mapped to psycopg 3), a plain file
            path (a SQLite file), or None for MOVIEREC_STORE, else `movierec-state.db` in the
            working folder.

    Returns:
        A URL with an explicit driver (`sqlite://` or `postgresql+psycopg://`).

    Raises:
        StoreError: the scheme is neither SQLite nor PostgreSQL.
    """
    text = os.fspath(url) if url is not None else os.environ.get("MOVIEREC_STORE") or DEFAULT_STORE
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    scheme, rest = text.split("://", 1)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}"
    if scheme in ("sqlite", "sqlite+pysqlite"):
        return text
    raise StoreError(f"store URL {_redact(text)!r}: expected sqlite:///FILE, "
                     "postgresql://USER@HOST/DB or a file path")


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("@")[-1]


def create_engine(url: str, *, timeout: float = 10.0) -> Engine:
    """An engine for a resolved URL; SQLite gets WAL, synchronous=FULL and explicit BEGINs.

    WAL + synchronous=FULL makes a commit durable (fsynced) before it returns, so a write
    acknowledged over HTTP survives `kill -9` and power loss. pysqlite's own transaction handling
    is switched off so that writes can take the lock at BEGIN (`BEGIN IMMEDIATE`) instead of
    upgrading a read lock later, which under concurrency fails with "database is locked".
    `timeout` (seconds) bounds waiting for SQLite's write lock or a PostgreSQL connection.
    """
    if url.startswith("sqlite"):
        path = sa.make_url(url).database
        if path and path != ":memory:" and not Path(path).parent.is_dir():
            raise StoreError(f"store {path}: folder {Path(path).parent} does not exist")
        engine = sa.create_engine(url, connect_args={"timeout": timeout})
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        from movierec.errors import MissingExtraError

        raise MissingExtraError("a PostgreSQL store needs psycopg 3: "
                                "pip install 'movierec[store]'") from exc
    return sa.create_engine(url, pool_pre_ping=True, pool_timeout=timeout,
                            connect_args={"connect_timeout": max(1, round(timeout))})


def _sqlite_connect(dbapi_connection: object, record: object) -> None:
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]  # we issue BEGIN
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write")
                         else "BEGIN")


def _alembic_config(connection: Connection):  # noqa: ANN202  (alembic is imported lazily)
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> str:
    """Bring the schema to the newest revision this package ships; a no-op when it is there.

    Returns:
        The revision the database is at afterwards.

    Raises:
        StoreError: the database is at a revision this package does not know (written by a
            newer movierec), or holds tables but no revision.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with engine.connect().execution_options(write=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":  # two servers starting at once migrate one by one
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        config = _alembic_config(conn)
        script = ScriptDirectory.from_config(config)
        head = script.get_current_head()
        current = MigrationContext.configure(conn).get_current_revision()
        if current is None and "ratings" in sa.inspect(conn).get_table_names():
            raise StoreError(f"store {_redact(str(engine.url))} has movierec tables but no "
                             "schema revision (alembic_version); it was not created by movierec")
        if current is not None and current not in {s.revision for s in script.walk_revisions()}:
            raise StoreError(f"store {_redact(str(engine.url))} is at schema revision {current!r}, "
                             f"which this movierec does not know (newest known: {head!r}); "
                             "it was written by a newer movierec: upgrade movierec")
        if current != head:
            command.upgrade(config, "head")
        return head or ""


def current_revision(engine: Engine) -> str | None:
    """The schema revision recorded in the database (None for an empty one)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
