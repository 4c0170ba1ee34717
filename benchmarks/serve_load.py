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
server as possible; client and server share the machine, which the JSON records.

Prints a table and writes benchmarks/results/serve_load.json. Data come from
MOVIEREC_DATA_DIR (e.g. ../shared/datasets) or the download cache, e.g.:

    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/serve_load.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
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

RESULTS = Path(__file__).parent / "results"
SERVE_MAIN = "import movierec.cli._serve; from movierec.cli import main; main()"
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
console = Console()


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


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    raw: bytes) -> int:
    """Send one request, read the whole response; returns the status code."""
    writer.write(raw)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = None
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise RuntimeError("response without Content-Length")
    await reader.readexactly(length)
    return status


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0


async def _client(port: int, pool: list[bytes], offset: int, start: float, warm_end: float,
                  end: float, run: Run) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = offset
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                break
            status = await _exchange(reader, writer, pool[n % len(pool)])
            t1 = time.perf_counter()
            n += 1
            if t0 >= warm_end:
                run.latencies.append(t1 - t0)
                run.errors += status != 200
    finally:
        writer.close()
        await writer.wait_closed()


async def load(port: int, pool: list[bytes], clients: int, duration: float,
               warmup: float) -> Run:
    """`clients` closed-loop clients for warmup + duration seconds; measures after warm-up."""
    run = Run()
    start = time.perf_counter()
    warm_end, end = start + warmup, start + warmup + duration
    await asyncio.gather(*(_client(port, pool, c * 97, start, warm_end, end, run)
                           for c in range(clients)))
    run.seconds = max(time.perf_counter(), end) - warm_end
    return run


def summarize(scenario: str, clients: int, run: Run) -> dict[str, Any]:
    lat = np.asarray(run.latencies) * 1000.0
    p50, p95, p99 = (np.percentile(lat, [50, 95, 99]) if len(lat) else (np.nan,) * 3)
    return {"scenario": scenario, "clients": clients, "requests": len(lat),
            "errors": run.errors, "seconds": round(run.seconds, 2),
            "throughput_rps": round(len(lat) / run.seconds, 1),
            "p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2),
            "p99_ms": round(float(p99), 2), "mean_ms": round(float(lat.mean()), 2)}


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
    for col in ("scenario", "clients", "requests", "errors", "req/s", "p50 ms", "p95 ms",
                "p99 ms"):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    for r in rows:
        table.add_row(r["scenario"], str(r["clients"]), f"{r['requests']:,}", str(r["errors"]),
                      f"{r['throughput_rps']:.1f}", f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}",
                      f"{r['p99_ms']:.2f}")
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
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_load.json")
    args = parser.parse_args()
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
        for scenario, pool in pools.items():
            for clients in client_counts:
                run = asyncio.run(load(port, pool, clients, args.duration, args.warmup))
                rows.append(summarize(scenario, clients, run))
                console.print(f"  {scenario:<10} clients={clients:<3} "
                              f"{rows[-1]['throughput_rps']:>8.1f} req/s  "
                              f"p99 {rows[-1]['p99_ms']:.1f} ms")
    finally:
        stop_server(proc)
    title = (f"movierec serve, {info['name']} on {info['dataset']} ({info['n_users']:,} users, "
             f"{info['n_items']:,} movies), k={args.k}, {args.duration:g} s per run, "
             f"BLAS threads {args.blas_threads}, {os.cpu_count()} CPUs shared by clients and "
             "server")
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
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
