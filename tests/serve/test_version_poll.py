"""`movierec serve --models-root DIR --poll N`: the server follows DIR/current without failing a
request, GET /model shows the version, a broken version is skipped, rollback is picked up."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from servekit import make_client

from movierec import versions
from movierec.artifact import load_catalog, load_model

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")

from movierec.serve import app_from_folder  # noqa: E402
from movierec.serve.reload import VersionPoller  # noqa: E402


def wait_for(condition, timeout: float = 30.0) -> bool:  # noqa: ANN001
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def root(itemknn_dir: Path, ease_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for folder in (itemknn_dir, ease_dir):
        versions.write_version(root, load_model(folder), catalog=load_catalog(folder))
    versions.set_current(root, "v0001")
    return root


def test_poll_picks_up_a_new_current_version_without_failing_requests(root: Path) -> None:
    app = app_from_folder(versions.current_path(root))
    switched: list[dict] = []
    poller = VersionPoller(app.state.reloader, root, 0.05, on_reload=switched.append)
    statuses: list[int] = []
    stop = threading.Event()
    with make_client(app) as client:
        assert client.get("/model").json()["version"] == "v0001"
        user = client.get("/users").json()["user_ids"][0]

        def hammer() -> None:
            while not stop.is_set():
                statuses.append(client.get(f"/users/{user}/recommendations").status_code)

        worker = threading.Thread(target=hammer)
        poller.start()
        worker.start()
        try:
            versions.set_current(root, "v0002")
            assert wait_for(lambda: client.get("/model").json()["version"] == "v0002")
            time.sleep(0.1)  # a few more requests on the new model
        finally:
            stop.set()
            worker.join()
            poller.stop()
        info = client.get("/model").json()
        assert (info["name"], info["generation"]) == ("ease", 2)
    assert statuses and set(statuses) == {200}
    assert [s["version"] for s in switched] == ["v0002"]


def test_a_broken_version_is_skipped_until_the_pointer_moves(root: Path) -> None:
    app = app_from_folder(versions.current_path(root))
    poller = VersionPoller(app.state.reloader, root, 60.0)  # driven by hand: check()
    weights = root / "v0002" / "state.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])  # truncated after it was published
    versions.set_current(root, "v0002")
    assert poller.check() is None and poller.failed == "v0002"
    assert app.state.engine.meta["version"] == "v0001"  # the old model keeps serving
    assert poller.check() is None  # not retried every poll
    versions.rollback(root)
    assert poller.check() is None  # v0001 is what is served: nothing to do
    assert poller.failed == "v0002"


def test_rollback_is_served_at_the_next_poll(root: Path) -> None:
    app = app_from_folder(versions.current_path(root))
    poller = VersionPoller(app.state.reloader, root, 60.0, keep=1)
    versions.set_current(root, "v0002")
    assert poller.check()["version"] == "v0002"
    versions.rollback(root)
    done = poller.check()
    assert done is not None and done["version"] == "v0001" and done["model"] == "itemknn"
    # keep=1 after the switch: v0001 is current and v0002 the newest, so nothing is deleted.
    assert versions.list_versions(root) == ["v0001", "v0002"]


def test_reload_follows_the_pointer(root: Path) -> None:
    """POST /model/reload (and SIGHUP) read the version `current` names at that moment."""
    app = app_from_folder(versions.current_path(root))
    app.state.reloader.follow(root)
    versions.set_current(root, "v0002")
    with make_client(app, host="127.0.0.1") as client:
        answer = client.post("/model/reload")
        assert answer.status_code == 200, answer.text
        assert client.get("/model").json()["version"] == "v0002"


@pytest.mark.slow
def test_serve_models_root_poll_cli(root: Path, tmp_path: Path) -> None:
    """The real command: `movierec serve --models-root DIR --poll 0.2` follows a switch."""
    import os
    import subprocess
    import sys

    import httpx
    from servekit import SERVE_MAIN, free_port, stop, wait_until_up

    log, port = tmp_path / "serve.log", free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "MOVIEREC_STORE": str(tmp_path / "movierec-state.db")}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE_MAIN, "serve", "--models-root", str(root), "--poll",
             "0.2", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, f"{base}/health", log)
        assert httpx.get(f"{base}/model").json()["version"] == "v0001"
        versions.set_current(root, "v0002")
        assert wait_for(lambda: httpx.get(f"{base}/model").json()["version"] == "v0002"), \
            log.read_text()
    finally:
        stop(proc)
    assert "now serving v0002 (ease, generation 2)" in log.read_text()
