"""Approximate top-10 (movierec.ann, faiss) against exact blocked scoring: recall@10 and speed-up.

For each catalog an MF is fitted, then for a set of query users (seen items excluded in both):

- exact: `model.recommend(users, k=10)`, movierec's blocked scoring (score block, mask, top-k);
- for each index (flat, HNSW at several efSearch, IVF at several nprobe): build seconds, query
  seconds of `ANNIndex.recommend(users, k=10)`, speed-up = exact seconds / query seconds (and
  speedup_vs_flat = faiss's exhaustive "flat" search seconds / query seconds: the gain of the
  approximation alone), recall@10 = mean over users of |ANN top-10 ∩ exact top-10| / |exact
  top-10|, the users scored exactly and the faiss requests per user (retries included).

Catalogs:

- synthetic: 60,000 items x 20,000 users, ~1M interactions drawn with power-law item popularity
  (p ∝ rank^-0.9) and user activity (∝ rank^-0.6, at least 5), 70 % of each user's draws from
  two favourite topics of 50 (so there is taste to learn), 30 % from global popularity; no
  MovieLens content. The vectors are those of an MF fitted on it (loss="bpr", 4 epochs of
  batch 16384, learning rate 0.02, reg 1e-4, weight_decay 0: Adam's weight decay would shrink
  the rows of the many items a batch does not touch to zero and leave only the biases).
- ml-100k and ml-latest-small: MF with its defaults (loss="mse") for `--real-epochs` epochs on
  every rating.

HNSW and IVF are built once each; efSearch / nprobe change between rows without rebuilding, so
their rows repeat the same build seconds. Torch, faiss and numpy run with `--threads` threads
(set OMP_NUM_THREADS too, before starting Python). The machine's load average is recorded with
every row: timings on a shared machine are rough.

    OMP_NUM_THREADS=1 MOVIEREC_DATA_DIR=/work/shared/datasets .venv/bin/python benchmarks/ann.py
    ... benchmarks/ann.py --quick     (2,000 synthetic query users, fewer settings)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from movierec.ann import ANNIndex, import_faiss
from movierec.data import load
from movierec.data.dataset import Dataset
from movierec.io import atomic_write_text, json_default
from movierec.models import get
from movierec.models.base import Recommender

K = 10


def synthetic(n_users: int, n_items: int, n_ratings: int, n_topics: int, seed: int) -> Dataset:
    """Power-law popularity and activity with topical taste (see the module docstring)."""
    rng = np.random.default_rng(seed)
    pop = (1.0 / np.arange(1, n_items + 1) ** 0.9)[rng.permutation(n_items)]
    topic = rng.integers(0, n_topics, n_items)
    activity = 1.0 / np.arange(1, n_users + 1) ** 0.6
    counts = np.maximum(5, np.round(activity / activity.sum() * n_ratings)).astype(np.int64)
    users = np.repeat(np.arange(n_users), counts)
    favourite = rng.integers(0, n_topics, (n_users, 2))
    own = rng.random(len(users)) < 0.7
    chosen = favourite[users, rng.integers(0, 2, len(users))]
    items = np.empty(len(users), dtype=np.int64)
    items[~own] = rng.choice(n_items, size=int((~own).sum()), p=pop / pop.sum())
    order = np.argsort(topic, kind="stable")
    starts = np.searchsorted(topic[order], np.arange(n_topics + 1))
    for t in range(n_topics):
        rows = np.flatnonzero(own & (chosen == t))
        members = order[starts[t]:starts[t + 1]]
        p = pop[members]
        items[rows] = members[rng.choice(len(members), size=len(rows), p=p / p.sum())]
    frame = pd.DataFrame({"user_id": users + 1, "item_id": items + 1}).drop_duplicates()
    frame["rating"] = np.float32(1.0)
    frame["timestamp"] = np.int64(1_000_000_000)
    return Dataset(frame, name=f"synthetic-{n_users}x{n_items}")


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def recall_at_k(ann: pd.DataFrame, exact: pd.DataFrame) -> float:
    """Mean over users of |ANN list ∩ exact list| / |exact list|."""
    key = ["user_id", "item_id"]
    hits = exact.merge(ann[key], on=key, how="left", indicator=True)
    hits["hit"] = hits["_merge"] == "both"
    return float(hits.groupby("user_id")["hit"].mean().mean())


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench(name: str, model: Recommender, users: np.ndarray, settings: list[dict[str, Any]],
          threads: int, seed: int) -> list[dict[str, Any]]:
    """Rows of the table for one fitted model and its query users."""
    exact, exact_s = timed(lambda: model.recommend(users, k=K))
    n_seen = np.diff(model.seen_.indptr)[model.user_vocab_.codes(users)]
    base = {"catalog": name, "items": model.n_items, "query_users": len(users),
            "mean_seen": round(float(n_seen.mean()), 1), "exact_s": round(exact_s, 3)}
    print(f"{name}: exact top-{K} of {len(users)} users x {model.n_items} items "
          f"{exact_s:.2f}s (load {load_avg()})", flush=True)
    rows, built = [], {}
    for setting in settings:
        build_params = {k: v for k, v in setting.items() if k not in ("ef_search", "nprobe")}
        key = json.dumps(build_params, sort_keys=True)
        if key not in built:
            built[key] = ANNIndex.build(model, rng=seed, n_threads=threads, **build_params)
        index = built[key]
        for param in ("ef_search", "nprobe"):
            if param in setting:
                setattr(index, param, setting[param])
        counts = instrument(index)
        ann, query_s = timed(lambda index=index: index.recommend(users, k=K))
        rows.append({**base, "index": _label(setting),
                     "build_s": round(index.build_seconds_, 3), "query_s": round(query_s, 3),
                     "speedup": round(exact_s / query_s, 2),
                     "recall@10": round(recall_at_k(ann, exact), 4),
                     "users_scored_exactly": counts["exact"],
                     "faiss_requests_per_user": round(counts["faiss"] / len(users), 3),
                     "load_avg": load_avg()})
        print({k: rows[-1][k] for k in ("catalog", "index", "build_s", "query_s", "speedup",
                                        "recall@10", "load_avg")}, flush=True)
    return rows


def instrument(index: ANNIndex) -> dict[str, int]:
    """Count the users `index` scores exactly and the per-user faiss requests (a user left
    short of k unseen candidates is asked again), by wrapping its two private steps."""
    counts = {"exact": 0, "faiss": 0}
    exact, search = ANNIndex._exact, ANNIndex._search

    def _exact(codes: np.ndarray, *args: Any) -> Any:
        counts["exact"] += len(codes)
        return exact(index, codes, *args)

    def _search(faiss: Any, codes: np.ndarray, *args: Any) -> Any:
        counts["faiss"] += len(codes)
        return search(index, faiss, codes, *args)

    index._exact, index._search = _exact, _search  # type: ignore[method-assign]
    return counts


def _label(setting: dict[str, Any]) -> str:
    rest = ",".join(f"{k}={v}" for k, v in setting.items() if k != "kind")
    return setting["kind"] + (f"({rest})" if rest else "")


def settings_for(quick: bool) -> list[dict[str, Any]]:
    efs = (16, 64) if quick else (16, 64, 256)
    probes = (4, 16) if quick else (4, 16, 64)
    return ([{"kind": "flat"}] + [{"kind": "hnsw", "ef_search": e} for e in efs]
            + [{"kind": "ivf", "nprobe": p} for p in probes])


def fit_synthetic(args: argparse.Namespace) -> tuple[Recommender, float]:
    ds = synthetic(args.users, args.items, args.ratings, 50, args.seed)
    model = get("mf", loss="bpr", epochs=args.synthetic_epochs, batch_size=16384,
                learning_rate=0.02, reg=1e-4, weight_decay=0.0, patience=None, device="cpu")
    _, seconds = timed(lambda: model.fit(ds, rng=args.seed, progress=not args.no_progress))
    return model, seconds


def fit_real(name: str, args: argparse.Namespace) -> tuple[Recommender, float]:
    ds = load(name, data_dir=args.data_dir)
    model = get("mf", epochs=args.real_epochs, patience=None, device="cpu")
    _, seconds = timed(lambda: model.fit(ds, rng=args.seed, progress=not args.no_progress))
    return model, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=42, help="data, MF and IVF k-means seed")
    parser.add_argument("--quick", action="store_true",
                        help="2,000 synthetic query users and two settings per index kind")
    parser.add_argument("--catalogs", default="synthetic,ml-100k,ml-latest-small",
                        help="comma-separated: synthetic, ml-100k, ml-latest-small")
    parser.add_argument("--items", type=int, default=60_000, help="synthetic catalog size")
    parser.add_argument("--users", type=int, default=20_000, help="synthetic users")
    parser.add_argument("--ratings", type=int, default=1_000_000,
                        help="synthetic interactions drawn (before removing repeats)")
    parser.add_argument("--queries", type=int, default=None,
                        help="synthetic query users (default 10,000; 2,000 with --quick); the "
                             "real catalogs always query every user")
    parser.add_argument("--synthetic-epochs", type=int, default=4, help="MF epochs, synthetic")
    parser.add_argument("--real-epochs", type=int, default=5, help="MF epochs, real catalogs")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and faiss threads (exact and ANN alike)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding ml-100k/ and ml-latest-small/ (default: "
                             "MOVIEREC_DATA_DIR)")
    parser.add_argument("--no-progress", action="store_true", help="no training progress bars")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "ann.json",
                        help="JSON file written (atomically)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss = import_faiss()
    queries = args.queries or (2_000 if args.quick else 10_000)
    settings = settings_for(args.quick)
    rows, fits = [], {}
    for name in args.catalogs.split(","):
        if name == "synthetic":
            model, fit_s = fit_synthetic(args)
            pool = model.user_vocab_.ids(np.arange(model.n_users))
            users = np.random.default_rng(args.seed).choice(pool, min(queries, len(pool)),
                                                            replace=False)
        else:
            model, fit_s = fit_real(name, args)
            users = model.user_vocab_.ids(np.arange(model.n_users))
        fits[name] = {"fit_s": round(fit_s, 2), "users": model.n_users, "items": model.n_items,
                      "ratings": int(model.seen_.nnz), "params": model.params()}
        rows.extend(bench(name, model, np.sort(users), settings, args.threads, args.seed))
    for row in rows:  # the gain of the approximate search itself, beyond faiss's exact one
        flat = next(r for r in rows if r["catalog"] == row["catalog"] and r["index"] == "flat")
        row["speedup_vs_flat"] = round(flat["query_s"] / row["query_s"], 2)
    table = pd.DataFrame(rows)
    print(table.drop(columns=["load_avg"]).to_string(index=False))
    report = {
        "k": K, "seed": args.seed, "quick": args.quick, "threads": args.threads,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "faiss": faiss.__version__,
        "torch": torch.__version__, "fits": fits, "rows": rows,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor(), "python": platform.python_version(),
                    "load_average_at_end": load_avg()},
    }
    atomic_write_text(args.out, json.dumps(report, indent=2, default=json_default))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
