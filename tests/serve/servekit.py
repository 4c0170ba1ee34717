"""Helpers of the service tests that start `movierec serve` as a real process."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

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
