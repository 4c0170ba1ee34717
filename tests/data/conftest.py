"""Fixtures of the data tests: a local HTTP server on 127.0.0.1 and synthetic zip archives."""

from __future__ import annotations

import functools
import hashlib
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from movierec.data.synthetic import write_release


@dataclass
class LocalServer:
    """A folder served over HTTP; `requests` lists the paths asked for."""

    root: Path
    base_url: str
    requests: list[str] = field(default_factory=list)


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, server_state: LocalServer, **kwargs) -> None:  # noqa: ANN002, ANN003
        self._state = server_state
        super().__init__(*args, directory=str(server_state.root), **kwargs)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._state.requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[LocalServer]:
    """Serve tmp_path/served on 127.0.0.1 at a free port, in a thread."""
    root = tmp_path / "served"
    root.mkdir()
    state = LocalServer(root=root, base_url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_Handler, server_state=state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def make_zip(folder: Path, archive: Path, arcname: str) -> dict[str, str]:
    """Zip `folder` as `arcname/...` into `archive`; return its md5 and sha256."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{arcname}/", "")
        for f in sorted(folder.iterdir()):
            zf.write(f, f"{arcname}/{f.name}")
    data = archive.read_bytes()
    return {"md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest()}


@pytest.fixture
def synthetic_archive(tmp_path: Path, http_server: LocalServer) -> dict[str, str]:
    """A synthetic ml-100k-style release zipped as ml-100k.zip and served; returns digests."""
    folder = write_release("ml100k", tmp_path / "build" / "ml-100k", rng=1)
    return make_zip(folder, http_server.root / "ml-100k.zip", "ml-100k")
