"""`movierec serve` as a real process on 127.0.0.1, and the command's own checks."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from servekit import SERVE_MAIN, stop
from typer.testing import CliRunner

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
httpx = pytest.importorskip("httpx")

import movierec.cli._serve as serve_cli  # noqa: E402  (registers `serve`)
from movierec.cli import app  # noqa: E402

runner = CliRunner()


def test_live_server_answers_every_endpoint(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10.0) as client:
        assert client.get("/health").json()["status"] == "ok"
        info = client.get("/model").json()
        assert info["name"] == "itemknn" and info["dataset"] == "ml-synth"
        user = client.get("/users", params={"limit": 1}).json()["user_ids"][0]
        recs = client.get(f"/users/{user}/recommendations", params={"k": 3}).json()
        assert len(recs["recommendations"]) == 3
        answer = client.post("/recommendations", json={
            "ratings": [{"item": 1, "rating": 5}, {"item": 2, "rating": 4},
                        {"item": 3, "rating": 1}], "k": 4})
        assert answer.status_code == 200 and len(answer.json()["recommendations"]) == 4
        assert client.get("/movies/1/similar", params={"k": 2}).status_code == 200
        assert client.get("/movies/search", params={"q": "synthetic"}).json()["results"]
        missing = client.get("/users/31337/recommendations")
        assert missing.status_code == 404 and "31337" in missing.json()["detail"]
        bad = client.post("/recommendations", content=b"[[[",
                          headers={"content-type": "application/json"})
        assert bad.status_code == 422 and bad.json()["detail"]
        assert client.get("/").text.lstrip().lower().startswith("<!doctype html>")
        assert client.get("/docs").status_code == 200


def test_port_in_use_exits_with_an_error(itemknn_dir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE_MAIN, "serve", str(itemknn_dir), "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = proc.communicate(timeout=60)
        finally:
            stop(proc)
    # One error line and exit 2, before "serving on ..." (uvicorn alone printed that, then
    # its own log lines, and exited 3).
    assert proc.returncode == 2, out
    assert out.strip() == f"error: port {port} on 127.0.0.1 is already in use (another server " \
        "is listening there?): stop it or pick another --port"


def test_port_in_use_is_checked_before_loading(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"port {port} on 127.0.0.1 is already in use"):
            serve_cli.check_port("127.0.0.1", port)
    serve_cli.check_port("127.0.0.1", port)  # free again once closed: no error
    with pytest.raises(OSError, match="cannot listen on 192.0.2.1:"):  # not this machine's
        serve_cli.check_port("192.0.2.1", port)


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "not a model folder" in result.output


@pytest.mark.parametrize("argv", [["--port", "0"], ["--port", "70000"], ["--max-k", "0"]])
def test_bad_options_are_refused(itemknn_dir: Path, argv: list[str]) -> None:
    result = runner.invoke(app, ["serve", str(itemknn_dir), *argv])
    assert result.exit_code == 2


class _FakeUvicorn:
    calls: list[dict[str, Any]] = []

    @staticmethod
    def run(app: Any, **kwargs: Any) -> None:
        _FakeUvicorn.calls.append({"app": app, **kwargs})


@pytest.fixture
def fake_uvicorn(monkeypatch, tmp_path) -> type[_FakeUvicorn]:  # noqa: ANN001
    """uvicorn.run records its arguments (nothing is bound); thread limits are recorded too."""
    monkeypatch.setenv("MOVIEREC_STORE", str(tmp_path / "movierec-state.db"))  # not in cwd
    import movierec.serve.protocol  # noqa: F401  (imports the real uvicorn before the fake)

    monkeypatch.setitem(sys.modules, "uvicorn", _FakeUvicorn)
    _FakeUvicorn.calls.clear()
    limits: list[int] = []
    monkeypatch.setattr(serve_cli, "limit_native_threads", lambda n: limits.append(n) or True)
    _FakeUvicorn.limits = limits  # type: ignore[attr-defined]
    checked: list[tuple[str, int]] = []
    monkeypatch.setattr(serve_cli, "check_port", lambda host, port: checked.append((host, port)))
    _FakeUvicorn.checked = checked  # type: ignore[attr-defined]
    return _FakeUvicorn


def test_uvicorn_start_failure_is_one_error_line(itemknn_dir: Path, fake_uvicorn,  # noqa: ANN001
                                                 monkeypatch) -> None:  # noqa: ANN001
    def fail(app: Any, **kwargs: Any) -> None:
        raise SystemExit(3)  # what uvicorn does when it cannot bind

    monkeypatch.setattr(fake_uvicorn, "run", fail)
    result = runner.invoke(app, ["serve", str(itemknn_dir), "--port", "8124"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == \
        "error: the server could not start on 127.0.0.1:8124 (see the message above)"
    assert fake_uvicorn.checked == [("127.0.0.1", 8124)]


def test_defaults_and_warning_for_other_hosts(itemknn_dir: Path, fake_uvicorn) -> None:  # noqa: ANN001
    result = runner.invoke(app, ["serve", str(itemknn_dir), "--max-k", "7"])
    assert result.exit_code == 0, result.output
    call = _FakeUvicorn.calls[-1]
    assert call["host"] == "127.0.0.1" and call["port"] == 8000
    assert call["app"].state.engine.max_k == 7
    assert "warning:" not in result.output and "http://127.0.0.1:8000/" in result.output
    result = runner.invoke(app, ["serve", str(itemknn_dir), "--host", "0.0.0.0", "--port",
                                 "8123"])
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "reachable from other machines" in result.output
    assert _FakeUvicorn.calls[-1]["host"] == "0.0.0.0"
    assert fake_uvicorn.limits == [1, 1]  # one BLAS thread per request by default
    result = runner.invoke(app, ["serve", str(itemknn_dir), "--blas-threads", "0"])
    assert result.exit_code == 0 and fake_uvicorn.limits == [1, 1]


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def set_num_threads(self, n: int) -> None:
        self.calls.append(n)

    def threadpool_limits(self, limits: int) -> None:
        self.calls.append(limits)


def test_native_thread_limits(monkeypatch) -> None:  # noqa: ANN001
    torch, pools = _Recorder(), _Recorder()
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "threadpoolctl", pools)
    assert serve_cli.limit_native_threads(1) is True
    assert torch.calls == [1] and pools.calls == [1]
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # not installed
    assert serve_cli.limit_native_threads(2) is False and torch.calls == [1, 2]


def test_note_when_threads_cannot_be_limited(itemknn_dir: Path, fake_uvicorn,  # noqa: ANN001
                                             monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(serve_cli, "limit_native_threads", lambda n: False)
    for var in serve_cli.BLAS_THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    result = runner.invoke(app, ["serve", str(itemknn_dir)])
    assert result.exit_code == 0 and "OPENBLAS_NUM_THREADS=1" in result.output
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    result = runner.invoke(app, ["serve", str(itemknn_dir)])
    assert result.exit_code == 0 and "OPENBLAS_NUM_THREADS" not in result.output


def test_missing_extra_names_the_install_command(itemknn_dir: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    result = runner.invoke(app, ["serve", str(itemknn_dir)])
    assert result.exit_code == 2
    assert "needs uvicorn" in result.output and "pip install 'movierec[serve]'" in result.output
    for name in [m for m in sys.modules if m.startswith("movierec.serve")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.setitem(sys.modules, "uvicorn", _FakeUvicorn)
    result = runner.invoke(app, ["serve", str(itemknn_dir)])
    assert result.exit_code == 2
    assert "needs fastapi" in result.output and "pip install 'movierec[serve]'" in result.output


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.1.10", False),
    ("example.org", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert serve_cli.is_loopback(host) is loopback
