"""Fold-in of a new user for the graph models on ML-100K (per-user random 80/20 split, seed 42).

A model is fitted on the training part. For `--users` test users (drawn with the seed), each
user's TRAINING ratings are folded in as if the user were new (`movierec.fold_in.fold_in`, the
model's own `_score_history`), and the scores are evaluated on the user's test items, next to:

* fitted: the fitted model's own scores for that (training) user, the upper reference;
* item-similarity: the generic fallback that `fold_in` gives a model without its own rule
  (Σ_j w_j cos(q_j, q_i) in the model's item space, w_j the rating centred on the user's mean),
  forced by an instance override of `supports_fold_in`; "(unweighted)" gives every rated item
  weight 1;
* popularity: training counts (what `fold_in` answers when no rated item is known);
* fold-in variants, how the defaults were chosen: "set from items" is the ego row set to the
  normalized sum of the rated items' ego rows without fitting (`fold_in_steps=0`); "zero start"
  fits from a zero ego row; "50 steps" fits longer.

NDCG@10 ranks every training item outside the user's training history; relevant: the user's
test items rated ≥ `--relevance` (default 0: all, as in graph_ml100k.py). Rating models also
get RMSE on the users' test ratings (their fold-in predicts ratings). Each variant's paired
difference to "fitted" is given with its standard error over the users. ms/user is the mean
wall time of one fold-in call with the model's caches warm (rough: 2 shared, loaded cores; the
load average is recorded). Prints a table and writes benchmarks/results/graph_fold_in.json.

    MOVIEREC_DATA_DIR=/work/shared/datasets python benchmarks/graph_fold_in.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from movierec.data import load
from movierec.fold_in import fold_in
from movierec.io import atomic_write_text, json_default
from movierec.metrics import ndcg
from movierec.models import get
from movierec.models.base import Recommender
from movierec.models.baseline import item_popularity
from movierec.split import make_split

# name → (registry name, parameters, default epochs, --quick epochs)
MODELS: dict[str, tuple[str, dict[str, Any], int, int]] = {
    "lightgcn": ("lightgcn", {}, 60, 8),
    "attngraphrec": ("attngraphrec", {"loss": "mse"}, 10, 2),
    "ngcf": ("ngcf", {"n_layers": 2}, 30, 3),
}
# Fold-in variants: instance overrides of the class knobs (see _GraphRecommender).
VARIANTS: dict[str, dict[str, Any]] = {
    "fold-in (default)": {},
    "fold-in: set from items": {"fold_in_steps": 0},
    "fold-in: zero start": {"fold_in_init": "zero"},
    "fold-in: 50 steps": {"fold_in_steps": 50},
}

def ndcg10(scores: np.ndarray, seen: np.ndarray, relevant: np.ndarray) -> float:
    s = np.asarray(scores, dtype=np.float64).copy()
    s[seen] = -np.inf
    top = np.argpartition(-s, 10)[:10]
    top = top[np.argsort(-s[top], kind="stable")]
    return float(ndcg(np.isin(top, relevant)[None], np.array([len(relevant)]))[0])


def user_table(model: Recommender, split, n_users: int, relevance: float, seed: int
               ) -> list[dict[str, Any]]:
    """Per test user: code, training item ids/codes/ratings, test codes/ratings, relevant."""
    train = dict(tuple(split.train.ratings.groupby("user_id")))
    test = dict(tuple(split.test.ratings.groupby("user_id")))
    ids = np.array(sorted(test))
    gen = np.random.default_rng(seed)
    if n_users and n_users < len(ids):
        ids = np.sort(gen.choice(ids, n_users, replace=False))
    rows = []
    for uid in ids:
        h, t = train[uid], test[uid]
        tc = model.item_vocab_.codes(t["item_id"].to_numpy(), missing="negative")
        tr = t["rating"].to_numpy(np.float64)
        known = tc >= 0
        rows.append({"user_id": int(uid), "code": int(model.user_vocab_.codes([uid])[0]),
                     "ids": h["item_id"].to_numpy(), "ratings": h["rating"].to_numpy(np.float64),
                     "codes": model.item_vocab_.codes(h["item_id"].to_numpy()),
                     "test_codes": tc[known], "test_ratings": tr[known],
                     "relevant": tc[known & (tr >= relevance)]})
    return [r for r in rows if len(r["relevant"])]


def evaluate_scorer(label: str, score: Callable[[dict[str, Any]], np.ndarray], users,
                    rates: bool) -> dict[str, Any]:
    nd, se, times = [], [], []
    for u in tqdm(users, desc=label, leave=False, mininterval=1.0):
        t0 = time.perf_counter()
        s = score(u)
        times.append(time.perf_counter() - t0)
        nd.append(ndcg10(s, u["codes"], u["relevant"]))
        if rates:
            se.append((s[u["test_codes"]] - u["test_ratings"]) ** 2)
    out = {"ndcg@10": np.array(nd), "ms_per_user": 1000 * float(np.mean(times))}
    if rates:
        out["rmse"] = float(np.sqrt(np.mean(np.concatenate(se))))
    return out


def run_model(label: str, name: str, params: dict[str, Any], epochs: int, split, args
              ) -> dict[str, Any]:
    t0 = time.perf_counter()
    model = get(name, **params, epochs=epochs, device="cpu").fit(split.train, rng=args.seed,
                                                                 progress=True)
    fit_s = time.perf_counter() - t0
    users = user_table(model, split, args.users, args.relevance, args.seed)
    rates = model.rates
    pop = item_popularity(model)

    def fitted(u: dict[str, Any]) -> np.ndarray:
        return model._score(np.array([u["code"]]))[0]

    def folded(u: dict[str, Any]) -> np.ndarray:
        return fold_in(model, u["ids"], u["ratings"]).scores

    def similarity(u: dict[str, Any], weighted: bool = True) -> np.ndarray:
        r = u["ratings"] if weighted else np.ones_like(u["ratings"])
        return fold_in(model, u["ids"], r).scores

    t0 = time.perf_counter()
    fold_in(model, users[0]["ids"], users[0]["ratings"])  # builds the item-layer cache
    first_s = time.perf_counter() - t0
    results: dict[str, dict[str, Any]] = {}
    results["fitted"] = evaluate_scorer("fitted", fitted, users, rates)
    for variant, knobs in VARIANTS.items():
        for k, v in knobs.items():
            setattr(model, k, v)
        assert fold_in(model, users[0]["ids"], users[0]["ratings"]).method == "model"
        results[variant] = evaluate_scorer(variant, folded, users, rates)
        for k in knobs:
            delattr(model, k)
    model.supports_fold_in = False  # type: ignore[misc]  # the generic fallback
    assert fold_in(model, users[0]["ids"], users[0]["ratings"]).method == "item-similarity"
    # The fallback gives similarity scores, not ratings: no RMSE for it.
    results["item-similarity"] = evaluate_scorer("item-similarity", similarity, users, False)
    results["item-similarity (unweighted)"] = evaluate_scorer(
        "item-similarity (unweighted)", lambda u: similarity(u, weighted=False), users, False)
    del model.supports_fold_in
    results["popularity"] = evaluate_scorer("popularity", lambda u: pop, users, False)
    base = results["fitted"]["ndcg@10"]
    rows = {}
    for key, res in results.items():
        diff = res["ndcg@10"] - base
        rows[key] = {"ndcg@10": float(res["ndcg@10"].mean()),
                     "diff_vs_fitted": float(diff.mean()),
                     "diff_se": float(diff.std(ddof=1) / np.sqrt(len(diff))),
                     **({"rmse": res["rmse"]} if "rmse" in res else {}),
                     "ms_per_user": res["ms_per_user"]}
    print(f"\n{label}: {params or 'defaults'}, {epochs} epochs, fit {fit_s:.0f} s, "
          f"{len(users)} users, first fold-in (cache build) {1000 * first_s:.0f} ms")
    print(pd.DataFrame.from_dict(rows, orient="index").round(4).to_string())
    return {"params": model.params(), "fit_seconds": fit_s, "users": len(users),
            "first_fold_in_ms": 1000 * first_s, "final_train_loss":
            model.history_[-1]["train_loss"], "rows": rows,
            "user_ids": [u["user_id"] for u in users]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=42,
                        help="split, fit and user-draw seed (default 42)")
    parser.add_argument("--users", type=int, default=200,
                        help="test users folded in (default 200; 0: every test user)")
    parser.add_argument("--relevance", type=float, default=0.0,
                        help="test ratings ≥ this are relevant (default 0: every test item)")
    parser.add_argument("--models", default="lightgcn",
                        help=f"comma-separated, from {','.join(MODELS)} (default lightgcn)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs of every model (default per model: "
                             + ", ".join(f"{k} {v[2]}" for k, v in MODELS.items()) + ")")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 40 users, a few epochs; numbers not meaningful")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding ml-100k/ (default: MOVIEREC_DATA_DIR)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    names = [m for m in args.models.split(",") if m]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {list(MODELS)}")
    if args.quick:
        args.users = 40
    torch.set_num_threads(args.threads)
    ds = load("ml-100k", data_dir=args.data_dir)
    split = make_split(ds, "user-random", test_size=0.2, rng=args.seed)
    load_start = os.getloadavg()
    out: dict[str, Any] = {
        "dataset": "ml-100k", "split": split.describe(), "seed": args.seed,
        "relevance": args.relevance, "quick": args.quick, "torch_threads": args.threads,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__, "load_avg_start": load_start},
        "models": {}}
    for label in names:
        name, params, epochs, quick_epochs = MODELS[label]
        n = args.epochs or (quick_epochs if args.quick else epochs)
        out["models"][label] = run_model(label, name, params, n, split, args)
    out["machine"]["load_avg_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("graph_fold_in_quick.json" if args.quick else "graph_fold_in.json")
    atomic_write_text(path, json.dumps(out, indent=2, default=json_default))
    print(f"\nload average (1, 5, 15 min): start {load_start}, end {os.getloadavg()} "
          f"(timings rough)\nwrote {path}")


if __name__ == "__main__":
    main()
