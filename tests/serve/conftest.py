"""Fixtures of the service tests: a synthetic release, trained model folders, a live server.

Everything is written under pytest's temporary folders; the live server listens on 127.0.0.1
only, on a free port, and is always terminated.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servekit import SERVE_MAIN, free_port, start_server, stop, wait_until_up
from typer.testing import CliRunner

from movierec.data.synthetic import write_release

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")


@pytest.fixture(autouse=True)
def _store_outside_the_working_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`movierec serve` run in-process opens its default store in a temporary folder."""
    monkeypatch.setenv("MOVIEREC_STORE", str(tmp_path / "movierec-state.db"))


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic csv release (titles with accents, commas, no year; half stars)."""
    return write_release("csv", tmp_path_factory.mktemp("data") / "ml-synth", n_users=60,
                         n_items=40, n_ratings=1000, rng=5)


def train(release: Path, out: Path, model: str, *params: str) -> Path:
    """`movierec train` on the release (user-random split); returns the model folder."""
    from movierec.cli import app

    args = ["train", "--dataset", str(release), "--model", model, "--out", str(out),
            "--relevance", "0", "--no-progress"]
    for p in params:
        args += ["--param", p]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def itemknn_dir(release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(release, tmp_path_factory.mktemp("models") / "itemknn", "itemknn",
                 "n_neighbors=10")


@pytest.fixture(scope="session")
def ease_dir(release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(release, tmp_path_factory.mktemp("models") / "ease", "ease")


@pytest.fixture(scope="session")
def mf_dir(release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    return train(release, tmp_path_factory.mktemp("models") / "mf", "mf", "embedding_size=8",
                 "epochs=5", "batch_size=128", "device=cpu")


@pytest.fixture(scope="session")
def server(itemknn_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `movierec serve` process on 127.0.0.1 and a free port; yields its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           # The feedback store goes beside the log, never into the working folder.
           "MOVIEREC_STORE": str(log.parent / "movierec-state.db")}
    with open(log, "w") as out:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE_MAIN, "serve", str(itemknn_dir), "--host",
             "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, f"{base}/health", log)
        yield base
    finally:
        stop(proc)


@dataclass
class LiveServer:
    """A running `movierec serve`: its URL, the folder it serves, the process and its log."""

    base: str
    folder: Path
    proc: subprocess.Popen
    log: Path


# Short read and keep-alive limits, so that the hostile-client tests take about a second each.
LIVE_OPTIONS = ("--read-timeout", "1", "--keep-alive-timeout", "1", "--request-timeout", "5")


@pytest.fixture(scope="session")
def live(itemknn_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`movierec serve` on a private copy of the itemknn folder (tests replace or damage the
    copy to reload it), with the short limits of LIVE_OPTIONS."""
    root = tmp_path_factory.mktemp("live")
    folder = root / "model"
    shutil.copytree(itemknn_dir, folder)
    log = root / "serve.log"
    proc, base = start_server(folder, log, *LIVE_OPTIONS)
    try:
        yield LiveServer(base, folder, proc, log)
    finally:
        stop(proc)
