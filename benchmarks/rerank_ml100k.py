"""Rerank (candidate generators + LightGBM LambdaRank) against EASE on ML-100K.

Two splits of ML-100K, both per user 80/20 with split seed 1: `user-random` and `user-time`
(each user's latest 20%). Relevance 0 (every test rating is relevant), full ranking over the
unseen training items, NDCG@10 on the test part.

Nothing is chosen on the test part:
* EASE's λ: the default 500, and λ tuned on a validation carve-out of the training part
  (`carve_validation`, 10% per user, the latest ratings on user-time) over `LAMBDAS`, then
  refit on the whole training part;
* rerank: its defaults (EASE λ=500, item-kNN, popularity; 100 candidates each; LambdaRank early
  stopped on its own users), with `holdout` following the split's kind ("random" on
  user-random, "latest" on user-time), and the same with its EASE generator at the tuned λ.

Also reported: fit seconds, and serving latency: `recommend(user, k=10)` for one user at a
time, median and 95th percentile over `--users` users, in ms. Threads: 1 (MOVIEREC_THREADS,
OMP_NUM_THREADS, LightGBM's n_threads); the 1-minute load average is recorded.

Prints a table and writes benchmarks/results/rerank_ml100k.json atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from movierec.data import load
from movierec.evaluate import evaluate
from movierec.io import atomic_write_text
from movierec.models import get
from movierec.split import Split, carve_validation, make_split

LAMBDAS = (100.0, 200.0, 500.0, 1000.0, 2000.0)
SPLITS = ("user-random", "user-time")
KEY = "ndcg@10"


def ndcg10(model: Any, split: Split) -> float:
    """NDCG@10, relevance 0, full ranking."""
    return float(evaluate(model, split, ks=(10,), relevance=0.0)[KEY])


def tune_lambda(train: Any, time_ordered: bool, seed: int) -> tuple[float, dict[str, float]]:
    """EASE's λ with the best NDCG@10 on a 10% validation carve-out of `train` only."""
    rest, valid = carve_validation(train, 0.1, seed, time_ordered=time_ordered)
    inner = Split(train=rest, test=valid, name="valid")
    scores = {str(lam): ndcg10(get("ease", lambda_=lam).fit(rest), inner) for lam in LAMBDAS}
    best = max(scores, key=scores.__getitem__)
    return float(best), scores


def latency_ms(model: Any, users: np.ndarray) -> dict[str, float]:
    """Median and p95 milliseconds of `recommend(user, k=10)`, one user per call."""
    model.recommend(int(users[0]), k=10)  # warm caches
    times = []
    for user in users:
        start = time.perf_counter()
        model.recommend(int(user), k=10)
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95))}


def run_split(ds: Any, kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    split = make_split(ds, kind, test_size=0.2, rng=args.split_seed)
    ordered = kind == "user-time"
    lam, valid_scores = tune_lambda(split.train, ordered, args.seed)
    print(f"{kind}: EASE λ on validation {valid_scores} -> {lam:g}", flush=True)
    holdout = "latest" if ordered else "random"
    tuned_generators = (("ease", {"lambda_": lam}), ("itemknn", {}), ("pop", {}))
    candidates: list[tuple[str, str, dict[str, Any]]] = [
        ("ease λ=500", "ease", {}),
        (f"ease λ={lam:g} (valid)", "ease", {"lambda_": lam}),
        ("rerank", "rerank", {"holdout": holdout}),
        (f"rerank, ease λ={lam:g}", "rerank", {"holdout": holdout,
                                              "generators": tuned_generators}),
    ]
    users = np.random.default_rng(args.seed).choice(split.train.user_vocab.index,
                                                      size=args.users, replace=False)
    rows = []
    for label, name, params in candidates:
        start = time.perf_counter()
        model = get(name, **params).fit(split.train, rng=args.seed, progress=False)
        fit_seconds = time.perf_counter() - start
        row = {"split": kind, "model": label, "params": model.params(), KEY: ndcg10(model, split),
               "fit_s": fit_seconds, **latency_ms(model, users),
               "load_1min": os.getloadavg()[0]}
        if name == "rerank":
            top = sorted(model.feature_importances_.items(), key=lambda kv: -kv[1])[:5]
            row["top_features_gain"] = dict(top)
            row["ranker_users"] = model.n_ranker_users_
        rows.append(row)
        print(f"  {label:<24} {KEY}={row[KEY]:.4f} fit={fit_seconds:.1f}s "
              f"latency={row['median_ms']:.1f}ms load={row['load_1min']:.2f}", flush=True)
    base = rows[0][KEY]
    for row in rows:
        row["vs_ease500"] = row[KEY] / base
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split-seed", type=int, default=1, help="seed of the user-random split")
    parser.add_argument("--seed", type=int, default=42, help="model and carve-out seed")
    parser.add_argument("--users", type=int, default=200, help="users timed one by one")
    parser.add_argument("--splits", default=",".join(SPLITS), help="comma-separated split kinds")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding ml-100k/")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    for var in ("MOVIEREC_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    ds = load("ml-100k", data_dir=args.data_dir)
    rows = [row for kind in args.splits.split(",") for row in run_split(ds, kind, args)]
    print(f"\nML-100K · per-user 80/20, split seed {args.split_seed} · relevance 0 · NDCG@10")
    print(f"{'split':<12} {'model':<24} {'NDCG@10':>8} {'×EASE500':>9} {'fit s':>7} "
          f"{'ms/req':>7} {'p95 ms':>7} {'load':>5}")
    for r in rows:
        print(f"{r['split']:<12} {r['model']:<24} {r[KEY]:>8.4f} {r['vs_ease500']:>9.3f} "
              f"{r['fit_s']:>7.1f} {r['median_ms']:>7.1f} {r['p95_ms']:>7.1f} "
              f"{r['load_1min']:>5.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "rerank_ml100k.json"
    atomic_write_text(out, json.dumps({
        "dataset": "ml-100k", "split_seed": args.split_seed, "seed": args.seed,
        "test_size": 0.2, "relevance": 0.0, "threads": 1, "lambdas": list(LAMBDAS),
        "rows": rows}, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
