"""Load test of `movierec serve --store`: reads, writes and a 90/10 mix at fixed request rates.

Trains (or reuses) an ML-100K model with `movierec train --models-root`, then for each store
(a SQLite file; a throw-away PostgreSQL 15 server started with initdb/pg_ctl, as the store tests
do) starts `movierec serve ROOT --models-root ROOT --store URL` on 127.0.0.1, creates a write key
with `movierec keys create` (sent as X-API-Key on every request), registers `--users` new users
with 10 stored ratings each, and offers each scenario at each fixed rate (open loop):

* read:  GET /users/{new user}/recommendations?k=10 (the stored ratings folded in)
* write: PUT /users/{new user}/ratings/{movie} with a random rating
* mix:   90 % read, 10 % write

Request i is due at start + i / rate; up to `--connections` keep-alive connections send the due
requests. Latency runs from the due time to the last byte of the answer, so time spent queued
behind a slow server counts (no coordinated omission). An error is a dropped connection, a
malformed answer or any status but 200. Clients (one asyncio loop) and server share the machine.

With `--retrain`, also times `movierec retrain --force` of that model after 10k synthetic
feedback rows were stored with `Store.put_ratings` (once per store).

With `--synthetic ml-1m`, the model is trained on a synthetic release of ML-1M's size (6,040
users, 3,706 movies, 1,000,209 ratings; `movierec data synth`, cached under results/) instead.

Prints a table and writes benchmarks/results/serve_store_load.json (`--out`):

    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/serve_store_load.py \\
        --duration 10 --rates 20,50,100 --retrain
    .venv/bin/python benchmarks/serve_store_load.py --synthetic ml-1m \\
        --out benchmarks/results/serve_store_load_ml1m.json
    .venv/bin/python benchmarks/serve_store_load.py --model mf --scenarios read --rates 20 \\
        --retrain --out benchmarks/results/serve_store_load_mf.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _common import json_default
from rich.table import Table
from serve_load import (
    BLAS_THREAD_VARS,
    SERVE_MAIN,
    BadResponse,
    Run,
    _exchange,
    console,
    free_port,
    stop_server,
    versions,
)

from movierec.io import atomic_write_text

RESULTS = Path(__file__).parent / "results"
CLI = [sys.executable, "-m", "movierec.cli"]
SCENARIOS = ("read", "write", "mix")


# --- model, stores, server --------------------------------------------------------------------
#: `--synthetic` sizes: ML-1M's users, rated movies and ratings, in the csv layout.
SYNTHETIC = {"ml-1m": {"users": 6040, "items": 3706, "ratings": 1_000_209}}


def dataset_arg(args: argparse.Namespace) -> str:
    """The dataset to train on: `--dataset`, or the cached `--synthetic` release's folder."""
    if not args.synthetic:
        return args.dataset
    folder = RESULTS / f"synthetic-{args.synthetic}"
    if not (folder / "ratings.csv").is_file():
        console.print(f"writing a synthetic {args.synthetic}-size release into {folder} ...")
        subprocess.run([*CLI, "data", "synth", "--out", str(folder), "--layout", "ml-25m",
                        *[f"--{k}={v}" for k, v in SYNTHETIC[args.synthetic].items()],
                        "--seed", str(args.seed), "--force", "--no-progress"], check=True)
    return str(folder)


def models_root(args: argparse.Namespace) -> Path:
    """A models root with the trained model as `current` (cached under results/)."""
    tag = f"synthetic-{args.synthetic}" if args.synthetic else args.dataset
    root = RESULTS / f"serve_store_load_{args.model}_{tag}"
    if (root / "current").exists() and not args.train_again:
        console.print(f"reusing {root} (--train-again to train again)")
        return root
    shutil.rmtree(root, ignore_errors=True)
    console.print(f"training {args.model} on {args.dataset} into {root} ...")
    cmd = [*CLI, "train", "--dataset", dataset_arg(args), "--model", args.model, "--models-root",
           str(root), "--no-progress"]
    for p in args.param or []:
        cmd += ["--param", p]
    subprocess.run(cmd, check=True)
    return root


def postgres_server() -> contextlib.AbstractContextManager[str]:
    """A throw-away PostgreSQL server (`movierec.store.pgtemp`, as the store tests use)."""
    from movierec.store.pgtemp import temporary_postgres

    return temporary_postgres()


@contextlib.contextmanager
def store_url(kind: str, tmp: Path) -> Iterator[str]:
    """An empty store of `kind` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'state.db'}"
    else:
        with postgres_server() as url:
            yield url


def start_server(root: Path, url: str, port: int, args: argparse.Namespace,
                 log: Path) -> subprocess.Popen:
    """`movierec serve ROOT --models-root ROOT --store URL`; returns once /health answers."""
    import httpx

    env = dict(os.environ)
    if args.blas_threads != "default":
        env.update(dict.fromkeys(BLAS_THREAD_VARS, args.blas_threads))
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", SERVE_MAIN, "serve", "--models-root",
                                 str(root), "--store", url, "--host", "127.0.0.1", "--port",
                                 str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + args.startup_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"movierec serve exited with {proc.returncode}:\n"
                               f"{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return proc
        time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"movierec serve did not answer within {args.startup_timeout:.0f} s")


def create_key(url: str) -> str:
    """`movierec keys create --scope write --store URL`: the printed key."""
    out = subprocess.run([*CLI, "keys", "create", "--scope", "write", "--store", url],
                         check=True, capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()][-1]


# --- requests ---------------------------------------------------------------------------------
def prepare(port: int, key: str, root: Path, args: argparse.Namespace
            ) -> dict[str, list[bytes]]:
    """New users with 10 stored ratings each; raw HTTP/1.1 request pools per scenario.

    Ratings go to movies of the served version's catalog (its training movies): the service
    answers 404 for others.
    """
    import httpx

    from movierec.artifact import load_catalog
    from movierec.versions import current_path

    catalog = load_catalog(current_path(root))
    if catalog is None:
        raise RuntimeError(f"{current_path(root)} has no items.json to draw movies from")
    movies = sorted(int(i) for i in catalog["item_id"])
    rng = random.Random(args.seed)
    headers = {"X-API-Key": key}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as c:
        info = c.get("/model").json()
        users = []
        for _ in range(args.users):
            user = c.post("/users").json()["user_id"]
            ratings = [{"item_id": i, "rating": rng.randint(1, 5)}
                       for i in rng.sample(movies[:300], 10)]
            answer = c.post(f"/users/{user}/ratings", json={"ratings": ratings})
            answer.raise_for_status()
            users.append(user)
    head = f"Host: 127.0.0.1:{port}\r\nX-API-Key: {key}\r\n"
    reads = [f"GET /users/{rng.choice(users)}/recommendations?k={args.k} HTTP/1.1\r\n{head}\r\n"
             .encode() for _ in range(4000)]
    writes = []
    for _ in range(4000):
        body = json.dumps({"rating": rng.randint(1, 5)}).encode()
        writes.append(f"PUT /users/{rng.choice(users)}/ratings/{rng.choice(movies)} HTTP/1.1"
                      f"\r\n{head}Content-Type: application/json\r\nContent-Length: "
                      f"{len(body)}\r\n\r\n".encode() + body)
    mix = [writes[i] if rng.random() < 0.1 else reads[i] for i in range(4000)]
    return {"read": reads, "write": writes, "mix": mix, "_info": info}  # type: ignore[dict-item]


async def _sender(port: int, pool: list[bytes], due: list[float], cursor: list[int],
                  warm_end: float, run: Run) -> None:
    """Take the next due request, wait for its time, send it, record latency from due time."""
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    try:
        while cursor[0] < len(due):
            i = cursor[0]
            cursor[0] += 1
            wait = due[i] - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            failure = None
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                status, body = await _exchange(reader, writer, pool[i % len(pool)])
                if status != 200:
                    failure = f"HTTP {status}: {body[:200]!r}"
            except (OSError, asyncio.IncompleteReadError, BadResponse, ValueError) as exc:
                failure = f"{type(exc).__name__}: {exc}"
                if writer is not None:
                    writer.close()
                writer = reader = None
            if due[i] >= warm_end:
                run.latencies.append(time.perf_counter() - due[i])
                if failure is not None:
                    run.error(failure)
    finally:
        if writer is not None:
            writer.close()


async def offer(port: int, pool: list[bytes], rate: float, duration: float, warmup: float,
                connections: int) -> Run:
    """Offer `rate` requests per second for warmup + duration seconds; measure after warm-up."""
    run = Run()
    start = time.perf_counter() + 0.05
    warm_end = start + warmup
    due = [start + i / rate for i in range(int((warmup + duration) * rate))]
    cursor = [0]
    await asyncio.gather(*(_sender(port, pool, due, cursor, warm_end, run)
                           for _ in range(connections)))
    run.seconds = max(time.perf_counter() - warm_end, duration)
    return run


def summarize(store: str, scenario: str, rate: float, run: Run) -> dict[str, Any]:
    lat = np.asarray(run.latencies) * 1000.0
    p50, p99 = np.percentile(lat, [50, 99]) if len(lat) else (np.nan, np.nan)
    row = {"store": store, "scenario": scenario, "rate_rps": rate, "requests": len(lat),
           "errors": run.errors, "achieved_rps": round(len(lat) / run.seconds, 1),
           "p50_ms": round(float(p50), 2), "p99_ms": round(float(p99), 2),
           "max_ms": round(float(lat.max()), 1) if len(lat) else None}
    if run.error_examples:
        row["error_examples"] = run.error_examples
    return row


# --- retrain ----------------------------------------------------------------------------------
def time_retrain(root: Path, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Store `--feedback-rows` synthetic ratings, then time `movierec retrain --force`.

    Retrains a copy of the models root, so the cached one keeps a single version.
    """
    from movierec.artifact import load_catalog
    from movierec.store import Store
    from movierec.versions import current_path

    copy = Path(tempfile.mkdtemp(prefix="movierec-retrain-")) / "root"
    shutil.copytree(root, copy, symlinks=True)
    rng = np.random.default_rng(args.seed)
    n, per_user = args.feedback_rows, 50
    catalog = load_catalog(current_path(root))
    movies = np.sort(catalog["item_id"].to_numpy()) if catalog is not None else np.arange(1, 1683)
    users = 10_000 + np.repeat(np.arange(n // per_user), per_user)  # above ML-1M's 6,040 users
    items = np.concatenate([rng.choice(movies, per_user, replace=False)
                            for _ in range(n // per_user)])
    ratings = rng.integers(1, 6, n).astype(float)
    try:
        with Store(url) as store:
            store.add_users(sorted(set(users.tolist())), source="api")
            for lo in range(0, n, 1000):
                store.put_ratings([{"user_id": int(u), "item_id": int(i), "rating": float(r)}
                                   for u, i, r in zip(users[lo:lo + 1000], items[lo:lo + 1000],
                                                      ratings[lo:lo + 1000], strict=True)],
                                  source="synthetic")
            stored = store.count_ratings()
        t0 = time.perf_counter()
        proc = subprocess.run([*CLI, "retrain", "--models-root", str(copy), "--store", url,
                               "--force", "--no-progress", "--json"],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode:
            return {"error": proc.stderr[-2000:], "seconds": round(seconds, 2)}
        out = json.loads(proc.stdout)
        return {"seconds": round(seconds, 2), "stored_ratings": stored,
                "feedback_ratings": out.get("feedback_ratings"),
                "heldout_ratings": out.get("heldout_ratings"), "version": out.get("version")}
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)


# --- main -------------------------------------------------------------------------------------
def print_table(rows: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("store", "scenario", "offered/s", "achieved/s", "requests", "errors", "p50 ms",
                "p99 ms", "max ms"):
        table.add_column(col, justify="left" if col in ("store", "scenario") else "right")
    for r in rows:
        table.add_row(r["store"], r["scenario"], f"{r['rate_rps']:g}", f"{r['achieved_rps']:.1f}",
                      f"{r['requests']:,}", str(r["errors"]), f"{r['p50_ms']:.1f}",
                      f"{r['p99_ms']:.1f}", f"{r['max_ms']:.1f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", help="release to train on")
    parser.add_argument("--model", default="ease", help="registry name of the model to train")
    parser.add_argument("--param", action="append", help="KEY=VALUE for `movierec train`")
    parser.add_argument("--synthetic", choices=sorted(SYNTHETIC),
                        help="train on a synthetic release of this size instead of --dataset "
                             "(written once with `movierec data synth`, cached under results/)")
    parser.add_argument("--train-again", action="store_true", help="ignore a cached model")
    parser.add_argument("--stores", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql")
    parser.add_argument("--scenarios", default="read,write,mix", help="read, write, mix")
    parser.add_argument("--rates", default="20,50,100",
                        help="comma-separated offered request rates (per second)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=32,
                        help="most requests in flight (keep-alive connections)")
    parser.add_argument("--users", type=int, default=100, help="new users with stored ratings")
    parser.add_argument("--k", type=int, default=10, help="recommendations per read")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas-threads", default="1",
                        help='BLAS/OpenMP threads of the server ("default": unset)')
    parser.add_argument("--retrain", action="store_true",
                        help="also time `movierec retrain` with --feedback-rows stored ratings")
    parser.add_argument("--feedback-rows", type=int, default=10_000)
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_store_load.json")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not rates or min(rates) <= 0 or args.duration <= 0 or args.connections < 1:
        parser.error("--rates must be positive, --duration > 0, --connections >= 1")
    if set(stores) - {"sqlite", "postgresql"} or set(scenarios) - set(SCENARIOS):
        parser.error(f"--stores from sqlite,postgresql; --scenarios from {','.join(SCENARIOS)}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    root = models_root(args)
    rows: list[dict[str, Any]] = []
    retrains: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for kind in stores:
        with tempfile.TemporaryDirectory(prefix="movierec-bench-") as tmp, \
                store_url(kind, Path(tmp)) as url:
            key = create_key(url)
            port = free_port()
            proc = start_server(root, url, port, args, Path(tmp) / "serve.log")
            try:
                pools = prepare(port, key, root, args)
                info = pools.pop("_info")  # type: ignore[assignment]
                for scenario in scenarios:
                    for rate in rates:
                        run = asyncio.run(offer(port, pools[scenario], rate, args.duration,
                                                args.warmup, args.connections))
                        rows.append(summarize(kind, scenario, rate, run))
                        r = rows[-1]
                        console.print(f"  {kind:<10} {scenario:<5} {rate:>6g}/s -> "
                                      f"{r['achieved_rps']:>6.1f}/s  p50 {r['p50_ms']:.1f} ms  "
                                      f"p99 {r['p99_ms']:.1f} ms  errors {r['errors']}")
            finally:
                stop_server(proc)
            if args.retrain:
                retrains[kind] = time_retrain(root, url, args)
                console.print(f"  {kind:<10} retrain: {retrains[kind]}")
    title = (f"movierec serve --store, {info.get('name')} on {info.get('dataset')}, "
             f"k={args.k}, open loop, {args.duration:g} s per cell, up to {args.connections} "
             f"in flight, {os.cpu_count()} CPUs shared by clients, server and database "
             f"(load average {os.getloadavg()[0]:.1f} at end)")
    print_table(rows, title)
    for kind, r in retrains.items():
        console.print(f"retrain ({kind}): {r.get('seconds')} s with "
                      f"{r.get('feedback_ratings')} feedback ratings" if "error" not in r
                      else f"retrain ({kind}) failed: {r['error']}")
    report = {
        "benchmark": "serve_store_load",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {key: info.get(key) for key in ("name", "params", "dataset", "n_users",
                                                 "n_items")} | {"models_root": str(root)},
        "settings": {"stores": stores, "scenarios": scenarios, "rates_rps": rates,
                     "duration_s": args.duration, "warmup_s": args.warmup,
                     "connections": args.connections, "users": args.users, "k": args.k,
                     "seed": args.seed, "blas_threads": args.blas_threads,
                     "mix": "90 % reads, 10 % writes",
                     "latency": "from each request's due time (open loop) to its last byte",
                     "server": "one uvicorn process on 127.0.0.1, X-API-Key on every request",
                     "postgresql": "15, local, fsync on, started by the benchmark"},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_end": list(os.getloadavg())},
        "versions": versions(),
        "results": rows,
        "retrain": retrains,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2, default=json_default))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
