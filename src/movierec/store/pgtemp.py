"""A throw-away PostgreSQL server in a temporary folder, for tests and benchmarks.

`temporary_postgres()` runs initdb and pg_ctl on a free loopback port and yields the URL of its
`postgres` database; the folder is removed on exit. PostgreSQL refuses to run as root, so under
root (CI, these machines) the server runs as the `postgres` system user through `runuser`.
fsync stays on: durability measured here is not a lax server's.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: Where the server binaries are (Debian's PostgreSQL 15); $MOVIEREC_PG_BIN overrides.
PG_BIN = Path(os.environ.get("MOVIEREC_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here (binaries, user or runuser missing)."""


def unavailable_reason() -> str | None:
    """Why no server can be started here, or None when one can."""
    if not (PG_BIN / "initdb").exists():
        return (f"PostgreSQL binaries not found in {PG_BIN} (apt-get install postgresql, or set "
                "MOVIEREC_PG_BIN)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "PostgreSQL refuses to run as root and there is no `postgres` user"
        if shutil.which("runuser") is None:
            return "PostgreSQL refuses to run as root and `runuser` is missing"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def temporary_postgres() -> Iterator[str]:
    """Start a throw-away server; yields `postgresql://postgres@127.0.0.1:PORT/postgres`.

    Raises:
        PostgresUnavailable: see `unavailable_reason`.
        RuntimeError: initdb or pg_ctl failed (the message ends with their stderr).
    """
    reason = unavailable_reason()
    if reason is not None:
        raise PostgresUnavailable(reason)
    folder = Path(tempfile.mkdtemp(prefix="movierec-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()

    def run(*args: str | Path) -> None:
        proc = subprocess.run([*prefix, *map(str, args)], capture_output=True, text=True,
                              timeout=120)
        if proc.returncode:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")

    try:
        run(PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync")
        run(PG_BIN / "pg_ctl", "-D", data, "-l", folder / "server.log", "-w", "-t", "60",
            "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(Exception):
            run(PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["PG_BIN", "PostgresUnavailable", "temporary_postgres", "unavailable_reason"]
