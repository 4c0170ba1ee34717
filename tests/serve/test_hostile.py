"""The service under hostile or careless clients: time limits for model work, request bodies and
headers, idle connections, and the `movierec serve` options that set them."""

from __future__ import annotations

import asyncio
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from servekit import Gated, app_for, make_client
from typer.testing import CliRunner

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
httpx = pytest.importorskip("httpx")

import movierec.cli._serve as serve_cli  # noqa: E402  (registers `serve`)
from movierec.cli import app as cli_app  # noqa: E402
from movierec.serve.guard import BodyLimits  # noqa: E402
from movierec.serve.protocol import with_header_timeout  # noqa: E402

runner = CliRunner()


# --- time limit of model work ------------------------------------------------------------------
def test_slow_model_work_gets_503_while_other_requests_answer(itemknn_dir: Path) -> None:
    app = app_for(itemknn_dir, request_timeout=0.3)
    gated = Gated(app.state.engine)
    app.state.engine = gated
    user = int(gated.model.user_vocab_.index[0])
    with make_client(app) as client:
        try:
            start = time.perf_counter()
            slow = client.get(f"/users/{user}/recommendations")
            waited = time.perf_counter() - start
            assert gated.entered.is_set()
            assert slow.status_code == 503, slow.text
            assert "time limit of 0.3 s" in slow.json()["detail"]
            assert slow.headers["retry-after"] == "1"
            assert 0.25 < waited < 10  # answered at the deadline, not when the work ended
            # The stuck work holds one thread; everything else is answered.
            assert client.get("/health").status_code == 200
            assert client.get("/movies/1/similar", params={"k": 2}).status_code == 200
        finally:
            gated.release.set()
        assert client.get(f"/users/{user}/recommendations").status_code == 200


def test_no_time_limit_waits_for_the_model(itemknn_dir: Path) -> None:
    app = app_for(itemknn_dir, request_timeout=None)
    gated = Gated(app.state.engine)
    app.state.engine = gated
    user = int(gated.model.user_vocab_.index[0])
    threading.Timer(0.5, gated.release.set).start()
    with make_client(app) as client:
        assert client.get(f"/users/{user}/recommendations").status_code == 200
    assert gated.entered.is_set()


@pytest.mark.parametrize("name", ["request_timeout", "read_timeout"])
@pytest.mark.parametrize("value", [0, -1.0])
def test_bad_time_limits_are_refused(itemknn_dir: Path, name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        app_for(itemknn_dir, **{name: value})


def test_openapi_documents_the_new_answers(itemknn_dir: Path) -> None:
    paths = app_for(itemknn_dir).openapi()["paths"]
    assert {"503", "422", "404"} <= set(paths["/users/{user_id}/recommendations"]["get"][
        "responses"])
    assert {"400", "408", "413", "503"} <= set(paths["/recommendations"]["post"]["responses"])
    assert {"200", "403", "409"} <= set(paths["/model/reload"]["post"]["responses"])
    # Every error is the service's JSON error, never FastAPI's list-valued default.
    for path in paths.values():
        for operation in path.values():
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), (status, ref)


# --- request bodies ------------------------------------------------------------------------------
async def _call(middleware: BodyLimits, messages: list[dict[str, Any]], *,
                stall: bool = False, headers: list[tuple[bytes, bytes]] | None = None
                ) -> tuple[list[dict[str, Any]], bytes | None]:
    """Run the middleware on one request; returns what it sent and the body the app saw."""
    queue = list(messages)
    sent: list[dict[str, Any]] = []
    seen: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        if stall:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        seen.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware.app = app
    scope = {"type": "http", "method": "POST", "headers": headers or []}
    await middleware(scope, receive, send)
    return sent, (seen[0] if seen else None)


def test_body_that_stalls_gets_408_and_the_connection_closes() -> None:
    limits = BodyLimits(None, max_bytes=100, timeout=0.2)  # type: ignore[arg-type]
    start = time.perf_counter()
    sent, seen = asyncio.run(_call(limits, [
        {"type": "http.request", "body": b'{"rat', "more_body": True}], stall=True))
    assert time.perf_counter() - start < 5
    assert seen is None and sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert b"not received within 0.2 s" in sent[1]["body"]


def test_bodies_are_read_whole_and_counted() -> None:
    limits = BodyLimits(None, max_bytes=10, timeout=1.0)  # type: ignore[arg-type]
    parts = [{"type": "http.request", "body": b"12345", "more_body": True},
             {"type": "http.request", "body": b"678", "more_body": False}]
    sent, seen = asyncio.run(_call(limits, parts))
    assert seen == b"12345678" and sent[0]["status"] == 200
    parts[1]["body"] = b"678901"  # 11 bytes in two chunks, no Content-Length
    sent, seen = asyncio.run(_call(limits, parts))
    assert seen is None and sent[0]["status"] == 413
    sent, seen = asyncio.run(_call(limits, [], headers=[(b"content-length", b"11")]))
    assert seen is None and sent[0]["status"] == 413  # refused before reading
    sent, seen = asyncio.run(_call(limits, [{"type": "http.disconnect"}]))
    assert seen is None and sent == []  # the client left: nobody to answer


# --- `movierec serve` options --------------------------------------------------------------------
class _FakeUvicorn:
    calls: list[dict[str, Any]] = []
    during: list[Any] = []

    @staticmethod
    def run(app: Any, **kwargs: Any) -> None:
        _FakeUvicorn.calls.append({"app": app, **kwargs})
        if hasattr(signal, "SIGHUP"):
            _FakeUvicorn.during.append(signal.getsignal(signal.SIGHUP))


@pytest.fixture
def fake_uvicorn(monkeypatch: pytest.MonkeyPatch) -> type[_FakeUvicorn]:
    """uvicorn.run records its arguments and the SIGHUP handler in place (nothing is bound)."""
    monkeypatch.setitem(sys.modules, "uvicorn", _FakeUvicorn)
    monkeypatch.setattr(serve_cli, "limit_native_threads", lambda n: True)
    _FakeUvicorn.calls.clear()
    _FakeUvicorn.during.clear()
    return _FakeUvicorn


def test_serve_sets_the_time_limits(itemknn_dir: Path, fake_uvicorn: Any) -> None:
    result = runner.invoke(cli_app, ["serve", str(itemknn_dir)])
    assert result.exit_code == 0, result.output
    call = fake_uvicorn.calls[-1]
    assert call["timeout_keep_alive"] == 5.0 and call["limit_concurrency"] == 1000
    assert call["http"].header_timeout == 10.0 and call["timeout_graceful_shutdown"] > 0
    result = runner.invoke(cli_app, [
        "serve", str(itemknn_dir), "--request-timeout", "2.5", "--read-timeout", "3",
        "--keep-alive-timeout", "4", "--max-connections", "50"])
    assert result.exit_code == 0, result.output
    call = fake_uvicorn.calls[-1]
    assert call["http"].header_timeout == 3.0 and call["timeout_keep_alive"] == 4.0
    assert call["limit_concurrency"] == 50
    assert call["app"].state.reloader.folder == itemknn_dir
    for bad in (["--request-timeout", "0"], ["--read-timeout", "-1"], ["--max-connections", "0"]):
        assert runner.invoke(cli_app, ["serve", str(itemknn_dir), *bad]).exit_code == 2


def test_serve_help_documents_limits_and_reload() -> None:
    result = runner.invoke(cli_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("--request-timeout", "HTTP 503", "--read-timeout", "HTTP 408",
                 "--keep-alive-timeout", "--max-connections", "SIGHUP", "/model/reload"):
        assert text in result.output, text


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_handler_is_installed_while_serving_and_restored(itemknn_dir: Path,
                                                                fake_uvicorn: Any) -> None:
    before = signal.getsignal(signal.SIGHUP)
    result = runner.invoke(cli_app, ["serve", str(itemknn_dir)])
    assert result.exit_code == 0, result.output
    handler = fake_uvicorn.during[-1]
    assert callable(handler) and handler is not before
    assert signal.getsignal(signal.SIGHUP) is before
    app = fake_uvicorn.calls[-1]["app"]
    handler(signal.SIGHUP, None)  # what the signal does: reload in a background thread
    deadline = time.monotonic() + 30
    while app.state.engine.generation == 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.state.engine.generation == 2


def test_header_timeout_must_be_positive() -> None:
    assert with_header_timeout(0.5).header_timeout == 0.5
    with pytest.raises(ValueError, match="header timeout"):
        with_header_timeout(0)


# --- a live server and slow clients --------------------------------------------------------------
def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_until_closed(sock: socket.socket, limit: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took.

    A reset counts as closed (the server closing with unread input resets the connection)."""
    start = time.perf_counter()
    sock.settimeout(limit)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return data, time.perf_counter() - start
        data += chunk


def test_silent_connection_is_closed(live: Any) -> None:
    with _connect(live.base) as sock:
        data, waited = _read_until_closed(sock)
    assert data == b"" and 0.5 < waited < 8  # --read-timeout 1


def test_headers_sent_slowly_get_408_despite_trickling(live: Any) -> None:
    with _connect(live.base) as sock:
        start = time.perf_counter()
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            if select.select([sock], [], [], 0.2)[0]:  # one byte each 0.2 s until answered
                break
            sock.sendall(bytes([byte]))
        data, _ = _read_until_closed(sock)
        waited = time.perf_counter() - start
    assert data.startswith(b"HTTP/1.1 408") and b"headers not received within 1 s" in data
    assert waited < 8, "the deadline must not be renewed by each byte"


def test_body_sent_slowly_gets_408(live: Any) -> None:
    with _connect(live.base) as sock:
        sock.sendall(b"POST /recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: 100\r\n\r\n{\"ratings\": [")
        data, waited = _read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408") and b"body not received within 1 s" in data
    assert waited < 8


def test_idle_keep_alive_connection_is_closed(live: Any) -> None:
    with _connect(live.base) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data, waited = _read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in data
    assert 0.5 < waited < 8  # --keep-alive-timeout 1


def test_slow_clients_do_not_block_others(live: Any) -> None:
    hogs = [_connect(live.base) for _ in range(20)]
    try:
        for sock in hogs:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
        start = time.perf_counter()
        with httpx.Client(base_url=live.base, timeout=10) as client:
            assert client.get("/health").status_code == 200
            assert client.get("/movies/1/similar").status_code == 200
        assert time.perf_counter() - start < 5
    finally:
        for sock in hogs:
            sock.close()


def test_malformed_requests_get_400_not_500(live: Any) -> None:
    for raw in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                b"GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"):
        with _connect(live.base) as sock:
            sock.sendall(raw)
            data, _ = _read_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 400"), data[:80]
    with _connect(live.base) as sock:  # headers over h11's 16 KiB: refused, maybe reset
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        except OSError:  # the server closed before reading everything
            pass
        data, _ = _read_until_closed(sock)
    assert data == b"" or data.startswith(b"HTTP/1.1 400"), data[:80]
    with httpx.Client(base_url=live.base, timeout=10) as client:
        assert client.get("/health").status_code == 200
