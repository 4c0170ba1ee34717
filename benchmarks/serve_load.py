"""Load test of `movierec serve` on loopback: throughput and latency percentiles.

Trains (or reuses) an ML-100K model with `movierec train`, starts `movierec serve` on
127.0.0.1 and a free port, then, for each scenario and each number of concurrent clients, runs
that many clients for a fixed time, each sending its next request as soon as the previous one is
answered (closed loop, one keep-alive connection per client):

* known-user: GET /users/{random training user}/recommendations?k=10
* fold-in:    POST /recommendations with `--n-ratings` random ratings of popular movies, k=10

Latency is measured per request on the client (send to last byte); throughput is completed
requests per second over the measured window (after a warm-up). The clients are one asyncio loop
with a minimal HTTP/1.1 client, so that on a small machine they take as little CPU from the
server as possible; client and server share the machine, which the JSON records. A request
that gets no answer (connection dropped, malformed response) or an answer other than 200 is an
error; the client then reconnects and goes on.

With `--reload http` (POST /model/reload) or `--reload sighup`, every run also reloads the
model once, halfway through the measured window: the server re-reads the model folder and swaps
the model while the clients keep going. The table then shows the reload's time; the error count
must stay 0.

Prints a table and writes benchmarks/results/serve_load.json (serve_load_reload.json with
--reload). Data come from MOVIEREC_DATA_DIR (e.g. ../shared/datasets) or the download cache:

    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/serve_load.py
    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/serve_load.py \\
        --reload http --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from movierec.io import atomic_write_text

RESULTS = Path(__file__).parent / "results"
SERVE_MAIN = "import movierec.cli._serve; from movierec.cli import main; main()"
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
console = Console(width=None if sys.stdout.isatty() else 150)  # wide tables in logs too


# --- model and server -------------------------------------------------------------------------
def model_folder(args: argparse.Namespace) -> Path:
    """The model to serve: --model-dir, else a cached one under results/, else train it."""
    from movierec.artifact import read_meta
    from movierec.errors import ArtifactError

    if args.model_dir is not None:
        return args.model_dir
    folder = RESULTS / f"serve_load_{args.model}"
    try:
        if not args.retrain and read_meta(folder).get("model") == args.model:
            console.print(f"reusing {folder} (--retrain to train again)")
            return folder
    except ArtifactError:
        pass
    console.print(f"training {args.model} on {args.dataset} into {folder} ...")
    cmd = [sys.executable, "-m", "movierec.cli", "train", "--dataset", args.dataset, "--model",
           args.model, "--out", str(folder), "--no-progress"]
    for p in args.param or []:
        cmd += ["--param", p]
    subprocess.run(cmd, check=True)
    return folder


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(folder: Path, port: int, timeout: float, blas_threads: str
                 ) -> subprocess.Popen:
    """`movierec serve` on 127.0.0.1:port; returns once /health answers (or raises).

    `blas_threads` ("default" or a number) sets OPENBLAS/OMP/MKL_NUM_THREADS of the server:
    requests run concurrently, so one BLAS thread each avoids oversubscribing the cores.
    """
    import httpx

    env = dict(os.environ)
    if blas_threads != "default":
        for var in BLAS_THREAD_VARS:
            env[var] = blas_threads
    proc = subprocess.Popen([sys.executable, "-c", SERVE_MAIN, "serve", str(folder), "--host",
                             "127.0.0.1", "--port", str(port)], env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"movierec serve exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"movierec serve did not answer within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- requests ---------------------------------------------------------------------------------
def request_pools(port: int, args: argparse.Namespace) -> dict[str, list[bytes]]:
    """Raw HTTP/1.1 requests per scenario, drawn once (seeded) before the clients start."""
    import httpx

    base = f"http://127.0.0.1:{port}"
    users = httpx.get(f"{base}/users", params={"limit": 1000}).json()["user_ids"]
    rng = random.Random(args.seed)
    # Popular movies: what people who rate "a handful of movies" usually pick.
    popular: list[int] = []
    for q in ("a", "e", "i", "o", "the"):
        hits = httpx.get(f"{base}/movies/search", params={"q": q, "limit": 100}).json()
        popular += [h["item_id"] for h in hits["results"]]
    popular = sorted(set(popular))
    host = f"Host: 127.0.0.1:{port}\r\n"
    known = [f"GET /users/{rng.choice(users)}/recommendations?k={args.k} HTTP/1.1\r\n{host}\r\n"
             .encode() for _ in range(2000)]
    fold = []
    for _ in range(2000):
        items = rng.sample(popular, args.n_ratings)
        body = json.dumps({"ratings": [{"item": i, "rating": rng.randint(1, 5)} for i in items],
                           "k": args.k}).encode()
        fold.append(f"POST /recommendations HTTP/1.1\r\n{host}Content-Type: application/json"
                    f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    return {"known-user": known, "fold-in": fold}


class BadResponse(Exception):
    """The server closed the connection or answered something that is not HTTP/1.1."""


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    raw: bytes) -> tuple[int, bytes]:
    """Send one request, read the whole response; returns the status code and the body."""
    writer.write(raw)
    await writer.drain()
    first = (await reader.readline()).split()
    if len(first) < 2 or not first[1].isdigit():
        raise BadResponse(f"status line {b' '.join(first)[:80]!r}")
    status = int(first[1])
    length = None
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise BadResponse("response without Content-Length")
    return status, await reader.readexactly(length)


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    reload: dict[str, Any] | None = None

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_examples) < 5:
            self.error_examples.append(what)


async def _client(port: int, pool: list[bytes], offset: int, start: float, warm_end: float,
                  end: float, run: Run) -> None:
    writer: asyncio.StreamWriter | None = None
    n = offset
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                break
            failure = None
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                status, body = await _exchange(reader, writer, pool[n % len(pool)])
                if status != 200:
                    failure = f"HTTP {status}: {body[:200]!r}"
            except (OSError, asyncio.IncompleteReadError, BadResponse, ValueError) as exc:
                failure = f"{type(exc).__name__}: {exc}"
                writer = _close(writer)
            t1 = time.perf_counter()
            n += 1
            if t0 >= warm_end:
                run.latencies.append(t1 - t0)
                if failure is not None:
                    run.error(failure)
    finally:
        _close(writer)


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()


async def _reload(port: int, at: float, via: str, pid: int, run: Run) -> None:
    """At time `at`, reload the model (POST /model/reload or SIGHUP) and wait until served."""
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    host = f"Host: 127.0.0.1:{port}\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        model = f"GET /model HTTP/1.1\r\n{host}\r\n".encode()
        before = json.loads((await _exchange(reader, writer, model))[1])["generation"]
        t0 = time.perf_counter()
        if via == "http":
            status, body = await _exchange(reader, writer, f"POST /model/reload HTTP/1.1\r\n"
                                           f"{host}Content-Length: 0\r\n\r\n".encode())
            answer = json.loads(body)
        else:
            os.kill(pid, signal.SIGHUP)
            status, answer = 0, {}
            while time.perf_counter() - t0 < 120:
                answer = json.loads((await _exchange(reader, writer, model))[1])
                if answer["generation"] > before:
                    status = 200
                    break
                await asyncio.sleep(0.01)
        run.reload = {"via": via, "status": status, "seconds": round(time.perf_counter() - t0, 3),
                      "generation_before": before, "generation_after": answer.get("generation"),
                      "detail": answer.get("detail")}
    finally:
        writer.close()


async def load(port: int, pool: list[bytes], clients: int, duration: float,
               warmup: float, reload: str = "none", pid: int = 0) -> Run:
    """`clients` closed-loop clients for warmup + duration seconds; measures after warm-up.

    With `reload` "http" or "sighup", one reload of the model starts halfway through the
    measured window (server process `pid` for SIGHUP).
    """
    run = Run()
    start = time.perf_counter()
    warm_end, end = start + warmup, start + warmup + duration
    tasks = [_client(port, pool, c * 97, start, warm_end, end, run) for c in range(clients)]
    if reload != "none":
        tasks.append(_reload(port, warm_end + duration / 2, reload, pid, run))
    await asyncio.gather(*tasks)
    run.seconds = max(time.perf_counter(), end) - warm_end
    return run


def summarize(scenario: str, clients: int, run: Run) -> dict[str, Any]:
    lat = np.asarray(run.latencies) * 1000.0
    p50, p95, p99 = (np.percentile(lat, [50, 95, 99]) if len(lat) else (np.nan,) * 3)
    row = {"scenario": scenario, "clients": clients, "requests": len(lat),
           "errors": run.errors, "seconds": round(run.seconds, 2),
           "throughput_rps": round(len(lat) / run.seconds, 1),
           "p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2),
           "p99_ms": round(float(p99), 2), "mean_ms": round(float(lat.mean()), 2),
           "max_ms": round(float(lat.max()), 2) if len(lat) else None}
    if run.error_examples:
        row["error_examples"] = run.error_examples
    if run.reload is not None:
        row["reload"] = run.reload
    return row


# --- report -----------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("movierec", "numpy", "scipy", "torch", "fastapi", "starlette", "uvicorn",
                "pydantic"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title, title_justify="left")
    reloads = any("reload" in r for r in rows)
    cols = ["scenario", "clients", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms",
            "max ms"] + (["reload"] if reloads else [])
    for col in cols:
        table.add_column(col, justify="left" if col == "scenario" else "right")
    for r in rows:
        cells = [r["scenario"], str(r["clients"]), f"{r['requests']:,}", str(r["errors"]),
                 f"{r['throughput_rps']:.1f}", f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}",
                 f"{r['p99_ms']:.2f}", f"{r['max_ms']:.1f}"]
        if reloads:
            done = r.get("reload") or {}
            cells.append(f"{done.get('via')} {done.get('status')} {done.get('seconds', 0):.2f} s"
                         if done else "-")
        table.add_row(*cells)
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", help="release to train on")
    parser.add_argument("--model", default="mf", help="registry name of the model to train")
    parser.add_argument("--param", action="append", help="KEY=VALUE for `movierec train`")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="serve this model folder instead of training one")
    parser.add_argument("--retrain", action="store_true", help="ignore a cached model")
    parser.add_argument("--clients", default="1,8,32",
                        help="comma-separated numbers of concurrent clients")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--k", type=int, default=10, help="recommendations per request")
    parser.add_argument("--n-ratings", type=int, default=10,
                        help="ratings posted per fold-in request")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request pools")
    parser.add_argument("--blas-threads", default="1",
                        help='BLAS/OpenMP threads of the server process ("default": unset)')
    parser.add_argument("--reload", choices=["none", "http", "sighup"], default="none",
                        help="reload the model once in every run, halfway through: "
                        "POST /model/reload or SIGHUP")
    parser.add_argument("--scenarios", default="known-user,fold-in",
                        help="comma-separated scenarios to run (known-user, fold-in)")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON report (default results/serve_load.json, or "
                        "serve_load_reload.json with --reload)")
    args = parser.parse_args()
    if args.out is None:
        args.out = RESULTS / ("serve_load.json" if args.reload == "none"
                              else "serve_load_reload.json")
    if args.reload == "sighup" and not hasattr(signal, "SIGHUP"):
        parser.error("--reload sighup needs a platform with SIGHUP")
    client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    if not client_counts or min(client_counts) < 1 or args.duration <= 0:
        parser.error("--clients must be positive integers and --duration > 0")
    if args.blas_threads != "default" and not args.blas_threads.isdigit():
        parser.error('--blas-threads must be a positive integer or "default"')

    RESULTS.mkdir(parents=True, exist_ok=True)
    folder = model_folder(args)
    port = free_port()
    proc = start_server(folder, port, args.startup_timeout, args.blas_threads)
    rows: list[dict[str, Any]] = []
    try:
        import httpx

        info = httpx.get(f"http://127.0.0.1:{port}/model").json()
        pools = request_pools(port, args)
        wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = set(wanted) - set(pools)
        if unknown:
            parser.error(f"unknown scenario(s) {sorted(unknown)}; known: {sorted(pools)}")
        for scenario in wanted:
            for clients in client_counts:
                run = asyncio.run(load(port, pools[scenario], clients, args.duration,
                                       args.warmup, args.reload, proc.pid))
                rows.append(summarize(scenario, clients, run))
                done = rows[-1].get("reload")
                console.print(f"  {scenario:<10} clients={clients:<3} "
                              f"{rows[-1]['throughput_rps']:>8.1f} req/s  "
                              f"p99 {rows[-1]['p99_ms']:.1f} ms  errors {rows[-1]['errors']}"
                              + (f"  reload {done['status']} in {done['seconds']:.2f} s "
                                 f"(generation {done['generation_after']})" if done else ""))
    finally:
        stop_server(proc)
    title = (f"movierec serve, {info['name']} on {info['dataset']} ({info['n_users']:,} users, "
             f"{info['n_items']:,} movies), k={args.k}, {args.duration:g} s per run, "
             f"BLAS threads {args.blas_threads}, {os.cpu_count()} CPUs shared by clients and "
             "server" + (f", one reload per run ({args.reload})" if args.reload != "none" else ""))
    print_table(rows, title)
    report = {
        "benchmark": "serve_load",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {"name": info["name"], "params": info["params"], "dataset": info["dataset"],
                  "n_users": info["n_users"], "n_items": info["n_items"],
                  "folder": str(folder)},
        "settings": {"clients": client_counts, "duration_s": args.duration,
                     "warmup_s": args.warmup, "k": args.k, "n_ratings": args.n_ratings,
                     "seed": args.seed, "blas_threads": args.blas_threads,
                     "reload": args.reload,
                     "server": "one uvicorn process on 127.0.0.1",
                     "client": "asyncio, one keep-alive HTTP/1.1 connection per client, "
                     "closed loop"},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor(),
                    "load_average_at_end": list(os.getloadavg())},
        "versions": versions(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
