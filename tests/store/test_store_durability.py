"""Several writers on one database, and acknowledged writes surviving `kill -9`."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from movierec.store import Store, StoreUnavailableError

WRITER = textwrap.dedent("""
    import sys
    from movierec.store import Store, StoreUnavailableError

    store = Store(sys.argv[1])
    i = 0
    while True:
        i += 1
        store.put_rating(1, i, 1.0 + i % 4)
        print(f"ack {i}", flush=True)  # only after put_rating returned: committed
""")


def test_two_stores_on_one_database_see_each_others_writes(store_url):
    with Store(store_url) as a, Store(store_url) as b:
        a.put_rating(1, 10, 3.0)
        assert b.ratings_of(1)["rating"].tolist() == [3.0]
        b.put_rating(1, 10, 4.0)
        assert a.ratings_of(1)["rating"].tolist() == [4.0]
        token = a.create_key("write")
        assert b.verify_key(token, "write").scope == "write"
        b.revoke_key(token.split("_")[1])
        assert a.list_keys()[0].revoked
        b.register_model_version("v1", "/m")
        b.activate_model_version("v1")
        assert a.current_model_version().version == "v1"


@pytest.mark.slow  # a subprocess per database
def test_acknowledged_writes_survive_kill_9_of_the_writer(store_url):
    Store(store_url).close()  # migrate first, so the writer starts writing at once
    proc = subprocess.Popen([sys.executable, "-c", WRITER, store_url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    acked = 0
    try:
        deadline = time.monotonic() + 120
        while acked < 30 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"writer died: {proc.stderr.read()}"
            acked = int(line.split()[1])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert acked >= 30
    with Store(store_url) as st:
        items = set(st.ratings_of(1)["item_id"].tolist())
    assert set(range(1, acked + 1)) <= items  # every acknowledged write is there
    assert proc.returncode == -signal.SIGKILL


def test_concurrent_writers_lose_no_write_and_get_distinct_user_ids(store_url):
    Store(store_url).close()
    stores = [Store(store_url), Store(store_url)]
    created: list[int] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        st = stores[n % 2]
        try:
            for i in range(15):
                st.put_rating(n, i, 3.0)
                st.put_rating(100, i, float(n % 5 + 1))  # every thread fights over these rows
            created.append(st.create_user(above=1000))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        frame = stores[0].all_ratings()
        assert len(frame) == 6 * 15 + 15
        assert sorted(created) == [1001, 1002, 1003, 1004, 1005, 1006]
    finally:
        for st in stores:
            st.close()


def test_a_locked_sqlite_store_refuses_writes_as_unavailable_and_keeps_reading(tmp_path):
    path = tmp_path / "s.db"
    with Store(path, timeout=0.2) as st:
        st.put_rating(1, 10, 3.0)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
        try:
            with pytest.raises(StoreUnavailableError, match="is unavailable: database is locked"):
                st.put_rating(1, 11, 4.0)
            assert st.ratings_of(1)["item_id"].tolist() == [10]  # WAL: reads go on
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        st.put_rating(1, 11, 4.0)
        assert st.ratings_of(1)["item_id"].tolist() == [10, 11]
