"""Helpers of the service tests that start `movierec serve` as a real process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

# `import movierec.cli._serve` registers the command even before cli/__init__ imports it.
SERVE_MAIN = "import movierec.cli._serve; from movierec.cli import main; main()"
STARTUP_SECONDS = 60.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(proc: subprocess.Popen, url: str, log: Path,
                  timeout: float = STARTUP_SECONDS) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it dies or times out."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"movierec serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"movierec serve did not answer {url} within {timeout:.0f} s:\n"
                f"{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    """Terminate the server (SIGTERM, then SIGKILL after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def start_server(folder: Path, log: Path, *options: str) -> tuple[subprocess.Popen, str]:
    """`movierec serve folder --host 127.0.0.1 --port <free> *options`, up and answering.

    Returns the process and its base URL; the caller stops it (`stop`). The log is a file, not
    a pipe: a full pipe would block the server.
    """
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           # The feedback store goes beside the log, never into the working folder.
           "MOVIEREC_STORE": str(log.parent / "movierec-state.db")}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE_MAIN, "serve", str(folder), "--host", "127.0.0.1",
             "--port", str(port), *options], stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, f"{base}/health", log)
    except BaseException:
        stop(proc)
        raise
    return proc, base


# --- in-process apps ------------------------------------------------------------------------
def make_client(app: Any, host: str = "testclient") -> Any:
    """A TestClient whose requests come from `host` (not a loopback address by default)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient
    return TestClient(app, raise_server_exceptions=False, client=(host, 50000))


class Gated:
    """An engine whose recommendations wait for `release` (model work that takes long)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def recommend_user(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.entered.set()
        self.release.wait(30)
        return self.engine.recommend_user(*args, **kwargs)


def app_for(folder: Path, **kwargs: Any) -> Any:
    """`create_app` over a model folder, with `create_app`'s keyword arguments."""
    from movierec.artifact import load_catalog, load_model, read_meta
    from movierec.serve import create_app

    return create_app(load_model(folder), load_catalog(folder), read_meta(folder), **kwargs)
