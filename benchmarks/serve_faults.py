"""Fault run of `movierec serve --store`: 50 concurrent writers for a minute, every write checked.

For each store (a SQLite file; a throw-away PostgreSQL 15 server started with initdb/pg_ctl, as
the store tests do, `movierec.store.pgtemp`) this starts `movierec serve --models-root ROOT
--store URL` on 127.0.0.1 (the model of `serve_store_load.py`, trained once and cached under
results/), creates a write key with `movierec keys create` and a new user per writer through
`POST /users`. Then `--writers` threads (one keep-alive connection and one user each, so that a
user's writes are ordered) write for `--duration` seconds, as fast as the answers come (closed
loop), drawing each write from:

* 60 % PUT    /users/{user}/ratings/{movie}  {"rating": r}
* 20 % DELETE /users/{user}/ratings/{movie}
* 20 % POST   /users/{user}/ratings           a batch of 2-5 distinct movies

over `--movies` movies of the served catalog (few, so that writes overwrite and delete each
other). Each writer keeps the state its acknowledged (200) writes imply, latest first. A write
that got no 200 (5xx, another status, a dropped connection) is not acknowledged: its movies may
hold either the value before it or the value it carried until the next acknowledged write of that
movie. After the run the server is stopped and the store is read directly: a movie whose stored
rating differs from what the acknowledged writes imply (also a deleted rating that is back, or an
acknowledged one that is missing) is "lost".

Prints a table (per store: writes acknowledged, lost, 5xx, other errors, p50/p99 write latency)
and writes benchmarks/results/serve_faults.json (`--out`):

    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/serve_faults.py
    .venv/bin/python benchmarks/serve_faults.py --duration 10 --stores sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _common import json_default
from rich.table import Table
from serve_load import console, free_port, stop_server
from serve_store_load import RESULTS, create_key, models_root, start_server, store_url

from movierec.io import atomic_write_text

#: Share of each write kind (the rest of the draw is a batch).
PUT, DELETE = 0.6, 0.2
#: Sentinel of "no stored rating" in the expected state.
ABSENT = None


@dataclass
class Writer:
    """One writer's user, what its acknowledged writes imply, and its counts."""

    user: int
    expected: dict[int, float | None] = field(default_factory=dict)  # movie -> rating / ABSENT
    maybe: dict[int, set[float | None]] = field(default_factory=dict)  # unacknowledged values
    latencies: list[float] = field(default_factory=list)
    acked: int = 0
    server_errors: int = 0
    other_errors: int = 0
    examples: list[str] = field(default_factory=list)

    def acknowledge(self, values: dict[int, float | None]) -> None:
        self.acked += 1
        for movie, value in values.items():
            self.expected[movie] = value
            self.maybe.pop(movie, None)

    def fail(self, values: dict[int, float | None], what: str, server: bool) -> None:
        if server:
            self.server_errors += 1
        else:
            self.other_errors += 1
        if len(self.examples) < 3:
            self.examples.append(what[:200])
        for movie, value in values.items():
            self.maybe.setdefault(movie, set()).add(value)


def write_loop(writer: Writer, base: str, key: str, movies: list[int],
               scale: tuple[float, float], deadline: list[float], ready: threading.Barrier,
               seed: int) -> None:
    """Write as fast as answers come until the deadline; record every outcome in `writer`.

    Ratings are half stars within the served model's `scale`.
    """
    import httpx

    rng = random.Random(seed)
    halves = (int(scale[0] * 2), int(scale[1] * 2))
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as client:
        ready.wait()
        while time.monotonic() < deadline[0]:
            draw = rng.random()
            path = f"/users/{writer.user}/ratings"
            if draw < PUT + DELETE:
                movie = rng.choice(movies)
                if draw < PUT:
                    rating = rng.randint(*halves) / 2
                    request = client.build_request("PUT", f"{path}/{movie}",
                                                   json={"rating": rating})
                    values: dict[int, float | None] = {movie: rating}
                else:
                    request = client.build_request("DELETE", f"{path}/{movie}")
                    values = {movie: ABSENT}
            else:
                picked = rng.sample(movies, rng.randint(2, 5))
                values = {m: rng.randint(*halves) / 2 for m in picked}
                request = client.build_request("POST", path, json={"ratings": [
                    {"item_id": m, "rating": r} for m, r in values.items()]})
            t0 = time.perf_counter()
            try:
                response = client.send(request)
            except httpx.HTTPError as exc:
                writer.latencies.append(time.perf_counter() - t0)
                writer.fail(values, f"{type(exc).__name__}: {exc}", server=False)
                continue
            writer.latencies.append(time.perf_counter() - t0)
            if response.status_code == 200:
                writer.acknowledge(values)
            else:
                writer.fail(values, f"{request.method} {response.status_code}: "
                            f"{response.text}", server=response.status_code >= 500)


def lost_writes(writers: list[Writer], url: str) -> tuple[int, list[str]]:
    """Movies whose stored rating is not what the acknowledged writes imply (see the module)."""
    from movierec.store import Store

    with Store(url) as store:
        stored = store.all_ratings()
    got = {(int(u), int(i)): float(r) for u, i, r in
           stored[["user_id", "item_id", "rating"]].itertuples(index=False)}
    lost, examples = 0, list[str]()
    for w in writers:
        for movie in set(w.expected) | set(w.maybe):
            allowed = {w.expected.get(movie, ABSENT), *w.maybe.get(movie, set())}
            value = got.get((w.user, movie), ABSENT)
            if value not in allowed:
                lost += 1
                if len(examples) < 5:
                    examples.append(f"user {w.user} movie {movie}: stored {value}, "
                                    f"expected one of {sorted(allowed, key=str)}")
    return lost, examples


def run_store(kind: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The fault run on one store kind; returns its row of the table."""
    import httpx

    from movierec.artifact import load_catalog
    from movierec.versions import current_path

    catalog = load_catalog(current_path(root))
    if catalog is None:
        raise RuntimeError(f"{current_path(root)} has no items.json to draw movies from")
    movies = sorted(int(i) for i in catalog["item_id"])[:args.movies]
    with tempfile.TemporaryDirectory(prefix="movierec-faults-") as tmp, \
            store_url(kind, Path(tmp)) as url:
        key = create_key(url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(root, url, port, args, Path(tmp) / "serve.log")
        try:
            with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as c:
                lo, hi = c.get("/model").json().get("rating_scale") or (1.0, 5.0)
                scale = (float(lo), float(hi))
                writers = [Writer(c.post("/users").json()["user_id"])
                           for _ in range(args.writers)]
            deadline: list[float] = []
            # The clock starts once every writer has built its client (that is slow).
            ready = threading.Barrier(len(writers) + 1, action=lambda: deadline.append(
                time.monotonic() + args.duration))
            threads = [threading.Thread(target=write_loop, args=(
                w, base, key, movies, scale, deadline, ready, args.seed * 1000 + n))
                for n, w in enumerate(writers)]
            for thread in threads:
                thread.start()
            ready.wait()
            start = deadline[0] - args.duration
            for thread in threads:
                thread.join()
            seconds = time.monotonic() - start
        finally:
            stop_server(proc)
        lost, lost_examples = lost_writes(writers, url)
    lat = np.concatenate([np.asarray(w.latencies) for w in writers]) * 1000.0
    p50, p99 = np.percentile(lat, [50, 99]) if len(lat) else (np.nan, np.nan)
    row: dict[str, Any] = {
        "store": kind, "writers": len(writers), "seconds": round(seconds, 1),
        "writes": int(len(lat)), "acknowledged": sum(w.acked for w in writers), "lost": lost,
        "http_5xx": sum(w.server_errors for w in writers),
        "other_errors": sum(w.other_errors for w in writers),
        "writes_per_s": round(len(lat) / seconds, 1), "p50_ms": round(float(p50), 2),
        "p99_ms": round(float(p99), 2), "max_ms": round(float(lat.max()), 1) if len(lat) else None}
    examples = [e for w in writers for e in w.examples][:5]
    if examples:
        row["error_examples"] = examples
    if lost_examples:
        row["lost_examples"] = lost_examples
    return row


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("store", "writes", "acknowledged", "lost", "5xx", "other errors", "writes/s",
                "p50 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="left" if col == "store" else "right")
    for r in rows:
        table.add_row(r["store"], f"{r['writes']:,}", f"{r['acknowledged']:,}", str(r["lost"]),
                      str(r["http_5xx"]), str(r["other_errors"]), f"{r['writes_per_s']:.1f}",
                      f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['max_ms']:.1f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", help="release the model is trained on")
    parser.add_argument("--model", default="ease", help="registry name of the served model")
    parser.add_argument("--param", action="append", help="KEY=VALUE for `movierec train`")
    parser.add_argument("--train-again", action="store_true", help="ignore a cached model")
    parser.add_argument("--stores", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql")
    parser.add_argument("--writers", type=int, default=50, help="concurrent writers")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of writing")
    parser.add_argument("--movies", type=int, default=40, help="movies the writers rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas-threads", default="1",
                        help='BLAS/OpenMP threads of the server ("default": unset)')
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_faults.json")
    args = parser.parse_args()
    args.synthetic = None  # serve_store_load.models_root's other source
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if set(stores) - {"sqlite", "postgresql"} or not stores:
        parser.error("--stores from sqlite,postgresql")
    if args.writers < 1 or args.duration <= 0 or args.movies < 5:
        parser.error("--writers >= 1, --duration > 0, --movies >= 5")

    RESULTS.mkdir(parents=True, exist_ok=True)
    root = models_root(args)
    load_before = os.getloadavg()
    rows = []
    for kind in stores:
        rows.append(run_store(kind, root, args))
        r = rows[-1]
        console.print(f"  {kind:<10} {r['writes']:,} writes, {r['acknowledged']:,} acknowledged, "
                      f"lost {r['lost']}, 5xx {r['http_5xx']}, other {r['other_errors']}, "
                      f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")
    load_after = os.getloadavg()
    title = (f"movierec serve --store: {args.writers} writers for {args.duration:g} s "
             f"(60 % PUT, 20 % DELETE, 20 % batch of 2-5, {args.movies} movies), "
             f"{os.cpu_count()} CPUs shared by writers, server and database; load average "
             f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print_table(rows, title)
    record = {"benchmark": "serve_faults", "when": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(),
                          "loadavg_before": load_before, "loadavg_after": load_after},
              "model": args.model, "dataset": args.dataset, "writers": args.writers,
              "duration_s": args.duration, "movies": args.movies, "seed": args.seed,
              "mix": {"put": PUT, "delete": DELETE, "batch": round(1 - PUT - DELETE, 2)},
              "rows": rows}
    atomic_write_text(args.out, json.dumps(record, indent=2, default=json_default) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
