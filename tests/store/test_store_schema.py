"""Schema migrations, URLs and opening a store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from movierec.store import DEFAULT_STORE, Store, StoreError, StoreUnavailableError, resolve_url
from movierec.store._schema import metadata

HEAD = "0002"  # the newest migration shipped (0002 adds ratings.list_id)
TABLES = {"users", "ratings", "impressions", "api_keys", "model_versions", "alembic_version"}


def test_migrating_an_empty_database_creates_the_tables(store_url):
    with Store(store_url) as st:
        assert st.revision == HEAD
        names = set(sa.inspect(st._engine).get_table_names())
    assert names == TABLES


def test_the_migrations_create_exactly_the_tables_the_code_uses(store_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with Store(store_url) as st, st._engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrating_again_is_a_no_op_that_keeps_the_data(store_url):
    with Store(store_url) as st:
        st.put_rating(1, 10, 4.0)
    with Store(store_url) as st:
        assert st.migrate() == HEAD
        assert st.migrate() == HEAD
        assert st.revision == HEAD
        assert st.all_ratings()[["user_id", "item_id", "rating"]].values.tolist() == [[1, 10, 4.0]]


def test_a_0001_database_upgrades_to_the_head_keeping_its_ratings(store_url):
    from alembic import command

    from movierec.store import _engine

    with Store(store_url) as st, st._engine.begin() as conn:
        command.downgrade(_engine._alembic_config(conn), "0001")
    with Store(store_url, migrate=False) as st:
        assert st.revision == "0001"
        with st._engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO ratings (user_id, item_id, rating, timestamp, "
                                 "source, updated_at) VALUES (1, 10, 4.5, 7, 'api', 1.0)"))
    with Store(store_url) as st:
        assert st.revision == HEAD
        frame = st.ratings_of(1)
    assert frame[["item_id", "rating"]].values.tolist() == [[10, 4.5]]
    assert frame["list_id"].tolist() == [None]


def test_a_database_from_a_newer_movierec_is_refused(store_url):
    with Store(store_url) as st, st._engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match=r"revision '9999'.*newer movierec"):
        Store(store_url)


def test_without_migrate_nothing_is_created(store_url):
    with Store(store_url, migrate=False) as st:
        assert st.revision is None
        assert sa.inspect(st._engine).get_table_names() == []


@pytest.mark.parametrize(("given", "expected"), [
    ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgres://u:pw@h:5433/db", "postgresql+psycopg://u:pw@h:5433/db"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_urls_get_an_explicit_driver(given, expected):
    assert resolve_url(given) == expected


def test_a_path_and_the_default_are_sqlite_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MOVIEREC_STORE", raising=False)
    assert resolve_url(None) == f"sqlite:///{tmp_path / DEFAULT_STORE}"
    assert resolve_url("a.db") == f"sqlite:///{tmp_path / 'a.db'}"
    monkeypatch.setenv("MOVIEREC_STORE", "postgresql://u@h/db")
    assert resolve_url(None) == "postgresql+psycopg://u@h/db"


def test_bad_urls_and_folders_are_named():
    with pytest.raises(StoreError, match="'mysql://u@h/db'"):
        resolve_url("mysql://u@h/db")
    with pytest.raises(StoreError, match="folder /nonexistent-movierec does not exist"):
        Store("/nonexistent-movierec/state.db")


def test_an_unreachable_server_gives_one_clear_error_without_the_password():
    pytest.importorskip("psycopg")
    with pytest.raises(StoreUnavailableError, match="cannot connect") as info:
        Store("postgresql://u:secretpw@127.0.0.1:1/db")
    assert "secretpw" not in str(info.value)


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path):
    with Store(tmp_path / "s.db") as st, st._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_the_migrations_are_shipped_as_package_data():
    import tomllib

    root = Path(__file__).parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["movierec"]
    shipped = {p for pattern in patterns for p in (root / "src/movierec").glob(pattern)}
    migrations = set((root / "src/movierec/store/migrations").rglob("*.py"))
    assert migrations and migrations <= shipped


def test_importing_movierec_and_its_cli_loads_no_database_library():
    code = ("import sys, movierec, movierec.cli\n"
            "loaded = [m for m in ('sqlalchemy', 'alembic', 'psycopg') if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
