"""`movierec serve`: the JSON API and web page over one saved model (the `serve` extra)."""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

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


def reload_and_report(reloader: Any) -> None:
    """Reload the served model (SIGHUP) and print the outcome; a failure keeps the old model."""
    from movierec.serve.reload import ReloadError

    try:
        done = reloader.reload()
    except ReloadError as exc:
        err_console.print(Text.assemble(("error:", "red"), f" {exc}"), highlight=False)
        return
    err_console.print(f"reloaded {done['model']} from {reloader.folder} in {done['seconds']:.2f} s "
                      f"(generation {done['generation']})", highlight=False)


def install_reload_signal(reloader: Any) -> Callable[[], None]:
    """Reload on SIGHUP (where the platform has it); returns what restores the old handler.

    The handler only starts a thread: loading a model must not stop the event loop, which runs
    in this (the main) thread.
    """
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_hangup(signum: int, frame: object) -> None:
        threading.Thread(target=reload_and_report, args=(reloader,), name="movierec-reload",
                         daemon=True).start()

    previous = signal.signal(signal.SIGHUP, on_hangup)

    def restore() -> None:
        signal.signal(signal.SIGHUP, previous)

    return restore


def is_loopback(host: str) -> bool:
    """True when `host` names only this machine (127.0.0.0/8, ::1 or localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_port(host: str, port: int) -> None:
    """Fail early, with one line, when `host:port` cannot be listened on.

    A busy port or an address that is not this machine's gives one line, instead of uvicorn's log
    lines and exit code after "serving on ...".

    Binds and closes a socket with the options uvicorn uses (SO_REUSEADDR), so a port left in
    TIME_WAIT by a previous server counts as free, as it does for uvicorn.

    Raises:
        OSError: the port is in use, or the address is not one of this machine's; the message
            names host and port.
    """
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"--host {host}: cannot resolve the address ({exc.strerror})") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(f"port {port} on {host} is already in use (another server "
                                  "is listening there?): stop it or pick another --port"
                                  ) from None
                raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def open_serve_store(url: str | None, *, max_ratings: int) -> Any:
    """The store `movierec serve` uses.

    None when none was asked for and the `store` extra is missing (a note says so). An explicit
    `--store` without the extra is an error.
    """
    try:
        from movierec.store import Store
    except ImportError as exc:
        if url is not None:
            raise MissingExtraError(f"--store needs SQLAlchemy and Alembic ({exc.name} is "
                                    "missing): pip install 'movierec[store]'") from None
        err_console.print("note: no feedback store (the `store` extra is not installed): "
                          "ratings are not stored", highlight=False, style="dim")
        return None
    return Store(url, max_batch=max_ratings)


def report_store(store: Any, *, require_key: bool) -> None:
    """Say where feedback goes and who may write: one line each on stderr."""
    err_console.print(f"feedback store: {store.display_url}", highlight=False)
    if not store.has_keys():
        err_console.print("[yellow]note:[/yellow] no API key in the store: writes (ratings, new "
                          "users) and reload are accepted only from this machine (loopback)"
                          f"{' and so are reads' if require_key else ''}; create a key with "
                          "`movierec keys create --scope write --store URL`", highlight=False,
                          soft_wrap=True)


@app.command()
@_friendly_errors
def serve(
    model_dir: Annotated[Path | None, typer.Argument(
        help="Model folder written by `movierec train` (or give --models-root).")] = None,
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
    request_timeout: Annotated[float, typer.Option(
        help="Seconds one request's model work may take, waiting for a worker thread "
        "included; past it the client gets HTTP 503 (the work finishes in the background).",
        min=0.001)] = 10.0,
    read_timeout: Annotated[float, typer.Option(
        help="Seconds a client has to send a request's headers, and again its body; slower "
        "clients get HTTP 408 and are disconnected (guards against slowloris).",
        min=0.001)] = 10.0,
    keep_alive_timeout: Annotated[float, typer.Option(
        help="Seconds an idle keep-alive connection stays open.", min=0.001)] = 5.0,
    max_connections: Annotated[int, typer.Option(
        help="Most open connections; requests beyond get HTTP 503.", min=1)] = 1000,
    models_root: Annotated[Path | None, typer.Option(
        "--models-root", metavar="DIR", help="Serve the version DIR/current names (written by "
        "`movierec train|retrain --models-root`); reloads follow the pointer.")] = None,
    poll: Annotated[float, typer.Option(
        help="With --models-root: every this many seconds, look at DIR/current and load a new "
        "version (0: only on SIGHUP or POST /model/reload).", min=0.0)] = 0.0,
    keep: Annotated[int, typer.Option(
        help="With --models-root --poll: after switching, keep the newest N versions (plus the "
        "current one and the rollback target); 0 deletes nothing.", min=0)] = 0,
    store: Annotated[str | None, typer.Option(
        "--store", metavar="URL", show_default=False,
        help="Feedback store (ratings, users, impressions, API keys): sqlite:///FILE, "
        "postgresql://USER@HOST/DB or a file path. Default: $MOVIEREC_STORE, else "
        "movierec-state.db in the working folder (needs the `store` extra).")] = None,
    no_store: Annotated[bool, typer.Option(
        "--no-store", help="Serve the model only: no stored ratings, no keys.")] = False,
    require_key: Annotated[bool, typer.Option(
        "--require-key", help="Reads need an API key too (writes always do, except from this "
        "machine while the store has no key).")] = False,
) -> None:
    """Serve recommendations over HTTP: JSON API (docs at /docs) and a web page at /.

    Reload the model without stopping: send SIGHUP, or POST /model/reload from this machine
    (loopback clients only). The folder is re-read; a broken or tampered one leaves the old
    model serving, and requests in flight are answered by the old or the new model.
    """
    try:
        import uvicorn

        from movierec.serve import app_from_folder
        from movierec.serve.protocol import with_header_timeout
    except ImportError as exc:
        error = exc if isinstance(exc, MissingExtraError) else MissingExtraError(
            f"`movierec serve` needs {exc.name or 'fastapi and uvicorn'}: "
            "pip install 'movierec[serve]'")
        # Printed here without markup: rich would read "[serve]" as a style tag and drop it.
        err_console.print(Text.assemble(("error:", "red"), f" {error}"), highlight=False)
        raise typer.Exit(2) from None
    check_port(host, port)
    if no_store and (store is not None or require_key):
        raise ValueError("--no-store cannot be combined with --store or --require-key")
    if (model_dir is None) == (models_root is None):
        raise ValueError("give a model folder or --models-root DIR (not both)")
    if models_root is not None:
        from movierec.versions import current_path

        model_dir = current_path(models_root)
    assert model_dir is not None
    from movierec.artifact import read_meta

    read_meta(model_dir)  # a clear error for a wrong folder before a store file is created
    opened = None if no_store else open_serve_store(store, max_ratings=max_ratings)
    if opened is None and require_key:
        raise ValueError("--require-key needs a store (the keys live in it): install the "
                         "`store` extra or pass --store URL")
    if not is_loopback(host):
        guard = ("has no authentication" if opened is None else "reads need no key"
                 if not require_key else "every request needs an API key")
        err_console.print(f"[yellow]warning:[/yellow] listening on {host}: the service is "
                          f"reachable from other machines and {guard}", highlight=False)
    service = app_from_folder(model_dir, max_k=max_k, max_ratings=max_ratings,
                              request_timeout=request_timeout, read_timeout=read_timeout,
                              store=opened, require_key=require_key)
    if opened is not None:
        report_store(opened, require_key=require_key)
    preset = any(os.environ.get(var) for var in BLAS_THREAD_VARS)
    if blas_threads and not limit_native_threads(blas_threads) and not preset:
        err_console.print(f"note: cannot limit BLAS threads to {blas_threads} (threadpoolctl "
                          "is not installed); under concurrent load start with "
                          f"OPENBLAS_NUM_THREADS={blas_threads}", highlight=False, style="dim")
    engine = service.state.engine
    shown = f"[{host}]" if ":" in host else host
    err_console.print(f"serving {engine.model.name} from {model_dir} "
                      f"({engine.model.n_users:,} users, {engine.model.n_items:,} movies) on "
                      f"http://{shown}:{port}/ (API docs at /docs); Ctrl+C stops"
                      f"{', SIGHUP reloads' if hasattr(signal, 'SIGHUP') else ''}",
                      highlight=False)
    restore = install_reload_signal(service.state.reloader)
    poller = _start_poller(service.state.reloader, models_root, poll, keep)
    try:
        uvicorn.run(service, host=host, port=port, log_level="warning", access_log=access_log,
                    http=with_header_timeout(read_timeout),
                    # uvicorn annotates int, but passes the seconds to loop.call_later: floats work.
                    timeout_keep_alive=keep_alive_timeout,  # type: ignore[arg-type]
                    limit_concurrency=max_connections, timeout_graceful_shutdown=10)
    except SystemExit as exc:
        # uvicorn exits 3 when it cannot start (e.g. the port was taken since `check_port`);
        # it has logged why.
        if exc.code in (0, None):
            raise
        err_console.print(Text.assemble(("error:", "red"), f" the server could not start on "
                                        f"{host}:{port} (see the message above)"),
                          highlight=False)
        raise typer.Exit(2) from None
    finally:
        if poller is not None:
            poller.stop()
        restore()


def _start_poller(reloader: Any, root: Path | None, poll: float, keep: int) -> Any:
    """With a models root: reloads follow DIR/current; with poll > 0 a thread watches it."""
    if root is None:
        return None
    from movierec.serve.reload import VersionPoller

    reloader.follow(root)
    if not poll:
        return None

    def told(done: dict[str, Any]) -> None:
        err_console.print(f"now serving {done['version']} ({done['model']}, generation "
                          f"{done['generation']})", highlight=False)

    poller = VersionPoller(reloader, root, poll, keep=keep or None, on_reload=told)
    poller.start()
    return poller
