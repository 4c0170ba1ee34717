"""Model reload: POST /model/reload and SIGHUP swap the served model without failing a request;
a broken or tampered folder leaves the old model serving."""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from servekit import Gated, app_for, make_client

from movierec.artifact import load_catalog, load_model, save_model

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
httpx = pytest.importorskip("httpx")

from movierec.serve import app_from_folder, create_app  # noqa: E402
from movierec.serve.reload import is_loopback_address  # noqa: E402

LOCAL = "127.0.0.1"


def copy_model(source: Path, target: Path) -> Path:
    """Put the model of `source` into the folder `target` (file by file, as an operator might)."""
    target.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        shutil.copy(f, target / f.name)
    return target


def damage(path: Path) -> None:
    """Flip one byte in the middle of a file (a tampered or corrupted artifact)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def folder(itemknn_dir: Path, tmp_path: Path) -> Path:
    return copy_model(itemknn_dir, tmp_path / "model")


def test_reload_serves_the_new_model(folder: Path, ease_dir: Path) -> None:
    with make_client(app_from_folder(folder), host=LOCAL) as client:
        assert client.get("/model").json()["generation"] == 1
        copy_model(ease_dir, folder)
        answer = client.post("/model/reload")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == "ease" and body["generation"] == 2
        assert body["previous_model"] == "itemknn" and body["previous_generation"] == 1
        assert body["seconds"] >= 0
        info = client.get("/model").json()
        assert info["name"] == "ease" and info["generation"] == 2 and info["loaded_at"]
        assert client.get("/health").json()["model"] == "ease"
        user = client.get("/users", params={"limit": 1}).json()["user_ids"][0]
        recs = client.get(f"/users/{user}/recommendations", params={"k": 3}).json()
        assert recs["model"] == "ease" and len(recs["recommendations"]) == 3


@pytest.mark.parametrize(("breakage", "pattern"), [
    ("weights", r"sha256 does not match"),
    ("items", r"items.json: sha256 does not match"),
    ("meta", r"not valid JSON"),
    ("missing", r"not a model folder"),
    ("truncated", r"sha256 does not match|missing"),
])
def test_broken_folder_keeps_the_old_model(folder: Path, breakage: str, pattern: str) -> None:
    app = app_from_folder(folder)
    with make_client(app, host=LOCAL) as client:
        user = client.get("/users", params={"limit": 1}).json()["user_ids"][0]
        before = client.get(f"/users/{user}/recommendations").json()
        if breakage == "weights":
            damage(folder / "state.safetensors")
        elif breakage == "items":
            damage(folder / "items.json")
        elif breakage == "meta":
            (folder / "model.json").write_text('{"format": 1, "model": ')
        elif breakage == "missing":
            shutil.rmtree(folder)
        else:
            weights = folder / "state.safetensors"
            weights.write_bytes(weights.read_bytes()[:100])
        answer = client.post("/model/reload")
        assert answer.status_code == 409, answer.text
        detail = answer.json()["detail"]
        assert "still serving itemknn (generation 1)" in detail
        assert re.search(pattern, detail), detail
        assert app.state.reloader.last_error
        assert client.get("/model").json()["generation"] == 1
        assert client.get(f"/users/{user}/recommendations").json() == before


def test_model_with_another_rating_scale_is_refused(folder: Path, tmp_path: Path) -> None:
    app = app_from_folder(folder)
    other = load_model(folder)
    other.rating_scale_ = (1.0, 10.0)
    save_model(other, tmp_path / "other", catalog=load_catalog(folder))
    copy_model(tmp_path / "other", folder)
    with make_client(app, host=LOCAL) as client:
        answer = client.post("/model/reload")
        assert answer.status_code == 409
        assert "rating scale 1-10 differs from the served one 0.5-5" in answer.json()["detail"]
        assert "restart" in answer.json()["detail"]
        assert client.get("/model").json()["rating_scale"] == [0.5, 5.0]


@pytest.mark.parametrize("host", ["testclient", "10.1.2.3", "192.168.0.7", "::ffff:10.0.0.1",
                                  "2001:db8::1"])
def test_reload_is_refused_to_other_machines(folder: Path, host: str) -> None:
    app = app_from_folder(folder)
    with make_client(app, host=host) as client:
        answer = client.post("/model/reload")
        assert answer.status_code == 403 and "only clients on the server's machine" in \
            answer.json()["detail"]
    assert app.state.engine.generation == 1


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("::ffff:127.0.0.1", True), ("localhost", False), ("0.0.0.0", False), ("", False),
    (None, False), ("10.0.0.1", False)])
def test_is_loopback_address(host: str | None, loopback: bool) -> None:
    # Names are not trusted: the ASGI server hands over the peer's address, never a name.
    assert is_loopback_address(host) is loopback


def test_reload_without_a_folder_and_while_reloading(itemknn_dir: Path) -> None:
    model = load_model(itemknn_dir)
    with make_client(create_app(model), host=LOCAL) as client:
        answer = client.post("/model/reload")
        assert answer.status_code == 409 and "nothing to reload" in answer.json()["detail"]
    app = app_from_folder(itemknn_dir)
    with make_client(app, host=LOCAL) as client:
        with app.state.reloader._lock:  # a reload (e.g. from SIGHUP) is running
            answer = client.post("/model/reload")
        assert answer.status_code == 409 and "already running" in answer.json()["detail"]
        assert client.post("/model/reload").status_code == 200


def test_request_in_flight_is_answered_by_the_old_model(folder: Path, ease_dir: Path) -> None:
    app = app_for(folder, model_dir=folder)
    gated = Gated(app.state.engine)
    app.state.engine = gated
    user = int(gated.model.user_vocab_.index[0])
    with make_client(app, host=LOCAL) as client, ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(client.get, f"/users/{user}/recommendations")
        assert gated.entered.wait(10)
        copy_model(ease_dir, folder)
        assert client.post("/model/reload").json()["generation"] == 2
        assert client.get(f"/users/{user}/recommendations").json()["model"] == "ease"
        gated.release.set()
        answer = in_flight.result(timeout=30)
    assert answer.status_code == 200 and answer.json()["model"] == "itemknn"


# --- a real server under load ------------------------------------------------------------------
async def _load(base: str, users: list[int], items: list[int], seconds: float,
                clients: int, until: threading.Event) -> dict[str, Any]:
    """`clients` closed-loop clients for at least `seconds` and until `until` is set (at most a
    minute); every answer's status and model."""
    rng = random.Random(0)
    outcome: dict[str, Any] = {"ok": 0, "failed": [], "models": set()}

    async def one(client: Any) -> None:
        end, cap = time.monotonic() + seconds, time.monotonic() + 60
        while (time.monotonic() < end or not until.is_set()) and time.monotonic() < cap:
            kind = rng.randrange(3)
            try:
                if kind == 0:
                    r = await client.get(f"/users/{rng.choice(users)}/recommendations",
                                         params={"k": 5})
                elif kind == 1:
                    picks = rng.sample(items, 3)
                    r = await client.post("/recommendations", json={
                        "ratings": [{"item": i, "rating": 4} for i in picks], "k": 5})
                else:
                    r = await client.get(f"/movies/{rng.choice(items)}/similar")
            except httpx.HTTPError as exc:
                outcome["failed"].append(repr(exc))
                continue
            if r.status_code == 200:
                outcome["ok"] += 1
                if kind < 2:
                    outcome["models"].add(r.json()["model"])
            else:
                outcome["failed"].append(f"{r.status_code} {r.text[:200]}")

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await asyncio.gather(*(one(client) for _ in range(clients)))
    return outcome


def _wait_for_generation(base: str, generation: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = httpx.get(f"{base}/model", timeout=10).json()
        if info["generation"] >= generation or time.monotonic() > deadline:
            return info
        time.sleep(0.05)


def test_no_request_fails_across_reloads_under_load(live: Any, itemknn_dir: Path,
                                                    ease_dir: Path) -> None:
    base = live.base
    users = httpx.get(f"{base}/users", params={"limit": 1000}).json()["user_ids"]
    items = load_model(itemknn_dir).item_vocab_.index.tolist()
    start = httpx.get(f"{base}/model").json()["generation"]
    reloads: list[Any] = []
    done = threading.Event()

    def reload_twice() -> None:
        try:
            time.sleep(0.8)
            copy_model(ease_dir, live.folder)
            reloads.append(httpx.post(f"{base}/model/reload", timeout=30))
            time.sleep(0.8)
            copy_model(itemknn_dir, live.folder)
            if hasattr(signal, "SIGHUP"):
                os.kill(live.proc.pid, signal.SIGHUP)
                reloads.append(_wait_for_generation(base, start + 2))
            time.sleep(0.3)  # and some requests after the last reload
        finally:
            done.set()

    trigger = threading.Thread(target=reload_twice)
    trigger.start()
    outcome = asyncio.run(_load(base, users, items, seconds=2.5, clients=8, until=done))
    trigger.join(timeout=60)
    assert outcome["failed"] == [], outcome["failed"][:5]
    assert outcome["ok"] > 30, "too few requests to say anything"
    assert reloads[0].status_code == 200, reloads[0].text
    assert reloads[0].json()["generation"] == start + 1
    assert outcome["models"] == {"itemknn", "ease"}  # both models answered during the run
    if hasattr(signal, "SIGHUP"):
        assert reloads[1]["generation"] == start + 2 and reloads[1]["name"] == "itemknn"


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_with_a_tampered_folder_keeps_serving(live: Any, itemknn_dir: Path) -> None:
    base = live.base
    copy_model(itemknn_dir, live.folder)
    before = httpx.get(f"{base}/model").json()
    damage(live.folder / "state.safetensors")
    try:
        os.kill(live.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "sha256 does not match" not in live.log.read_text():
            assert time.monotonic() < deadline, live.log.read_text()
            time.sleep(0.05)
        assert "still serving itemknn" in live.log.read_text()
        after = httpx.get(f"{base}/model").json()
        assert after["generation"] == before["generation"]
        assert after["loaded_at"] == before["loaded_at"]
        assert httpx.get(f"{base}/movies/1/similar").status_code == 200
    finally:
        copy_model(itemknn_dir, live.folder)
