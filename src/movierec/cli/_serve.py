"""`movierec serve`: the JSON API and web page over one saved model (the `serve` extra)."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from movierec.cli._app import _friendly_errors, app, err_console
from movierec.errors import MissingExtraError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def limit_native_threads(n: int) -> bool:
    """Limit this process's BLAS/OpenMP threads to `n` (torch's too, when it is loaded).

    Requests run concurrently and each is small: a BLAS call that spreads over every core
    makes them queue behind each other (about 6x lower throughput on 2 busy cores, see
    benchmarks/serve_load.py). numpy's BLAS is already loaded here, so its pool is resized
    through threadpoolctl when that is installed.

    Returns:
        True when the BLAS pools were limited (threadpoolctl present), else False.
    """
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(limits=n)
    return True


def is_loopback(host: str) -> bool:
    """True when `host` names only this machine (127.0.0.0/8, ::1 or localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command()
@_friendly_errors
def serve(
    model_dir: Annotated[Path, typer.Argument(help="Model folder written by `movierec train`.")],
    host: Annotated[str, typer.Option(
        help="Address to listen on. The default answers only this machine; any other address "
        "exposes the service to the network (a warning is printed).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    max_k: Annotated[int, typer.Option(
        help="Largest k a request may ask for.", min=1, max=10_000)] = 100,
    max_ratings: Annotated[int, typer.Option(
        help="Most ratings one new-user request may post.", min=1, max=100_000)] = 500,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    blas_threads: Annotated[int, typer.Option(
        help="BLAS/OpenMP threads per process (0: leave as they are). Requests run "
        "concurrently, so one thread each is fastest; needs threadpoolctl, or set "
        "OPENBLAS_NUM_THREADS=1 before starting.", min=0)] = 1,
) -> None:
    """Serve recommendations over HTTP: JSON API (docs at /docs) and a web page at /."""
    try:
        import uvicorn

        from movierec.serve import app_from_folder
    except ImportError as exc:
        error = exc if isinstance(exc, MissingExtraError) else MissingExtraError(
            f"`movierec serve` needs {exc.name or 'fastapi and uvicorn'}: "
            "pip install 'movierec[serve]'")
        # Printed here without markup: rich would read "[serve]" as a style tag and drop it.
        err_console.print(Text.assemble(("error:", "red"), f" {error}"), highlight=False)
        raise typer.Exit(2) from None
    if not is_loopback(host):
        err_console.print(f"[yellow]warning:[/yellow] listening on {host}: the service is "
                          "reachable from other machines and has no authentication",
                          highlight=False)
    service = app_from_folder(model_dir, max_k=max_k, max_ratings=max_ratings)
    preset = any(os.environ.get(var) for var in BLAS_THREAD_VARS)
    if blas_threads and not limit_native_threads(blas_threads) and not preset:
        err_console.print(f"note: cannot limit BLAS threads to {blas_threads} (threadpoolctl "
                          "is not installed); under concurrent load start with "
                          f"OPENBLAS_NUM_THREADS={blas_threads}", highlight=False, style="dim")
    engine = service.state.engine
    shown = f"[{host}]" if ":" in host else host
    err_console.print(f"serving {engine.model.name} from {model_dir} "
                      f"({engine.model.n_users:,} users, {engine.model.n_items:,} movies) on "
                      f"http://{shown}:{port}/ (API docs at /docs); Ctrl+C stops",
                      highlight=False)
    uvicorn.run(service, host=host, port=port, log_level="warning", access_log=access_log)
