"""Item-item linear models of issue #21 (rp3beta, slim, edlae) against tuned EASE.

For each split (per-user random 80/20, or per-user time-ordered 80/20), each model is tuned with
`movierec.tune` (Optuna TPE, NDCG@10 with every held-out rating relevant) on a validation
carve-out of the training part only: 10 % per user, random with the seed, or each user's latest
10 % on the time-ordered split, exactly as `movierec tune` carves it. The default and the tuned
model are then fitted on the whole training part and evaluated once on the test part (full
ranking minus the user's training items, relevance 0), as `movierec benchmark` does:

    MOVIEREC_DATA_DIR=../shared/datasets MOVIEREC_THREADS=1 OMP_NUM_THREADS=1 \
        .venv/bin/python benchmarks/linear_ml100k.py --split user-random
    ... --split user-time
    ... --dataset ml-latest-small --split user-time --models ease,rp3beta,edlae

The same figures from the command line, per model (best.json from the study):

    movierec tune --model rp3beta --dataset ml-100k --split user-random --test-size 0.2 \
        --seed 1 --metric ndcg@10 --relevance 0 --trials 20 --out runs/tune-rp3beta
    movierec benchmark --dataset ml-100k --split user-random --test-size 0.2 --seed 1 \
        --relevance 0 --models ease,rp3beta --params-file runs/tune-rp3beta/best.json ...

Rows are merged into benchmarks/results/linear_<dataset>.json (one entry per split and model),
so each split can run on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from movierec.data import load
from movierec.evaluate import evaluate
from movierec.io import atomic_write_text
from movierec.models import get
from movierec.split import carve_validation, make_split
from movierec.tune import tune

RESULTS = Path(__file__).resolve().parent / "results"
# SLIM fits one regression per item (about half a minute on ML-100K): fewer trials.
TRIALS = {"slim": 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", help="MovieLens release name")
    parser.add_argument("--split", default="user-random", help="user-random or user-time")
    parser.add_argument("--models", default="ease,rp3beta,edlae,slim",
                        help="comma-separated registered model names")
    parser.add_argument("--untuned", default="",
                        help="comma-separated models run with their defaults only (no study), "
                             "e.g. slim on ml-latest-small, where one fit takes minutes")
    parser.add_argument("--trials", type=int, default=20,
                        help="trials per study (slim: at most 10)")
    parser.add_argument("--timeout", type=float, default=420.0,
                        help="seconds per study (stop starting new trials after it)")
    parser.add_argument("--seed", type=int, default=1, help="split, carve-out and sampler seed")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the releases (default: MOVIEREC_DATA_DIR or cache)")
    args = parser.parse_args()

    ds = load(args.dataset, data_dir=args.data_dir)
    split = make_split(ds, args.split, test_size=0.2, rng=args.seed)
    latest = bool(split.params.get("time_aware"))
    fit_part, valid = carve_validation(split.train, 0.1, args.seed, time_ordered=latest)
    print(f"{args.dataset} {args.split} seed {args.seed}: fit {fit_part.n_ratings:,} / valid "
          f"{valid.n_ratings:,} / test {split.test.n_ratings:,}; {split.train.n_items:,} items; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    untuned = {m.strip() for m in args.untuned.split(",") if m.strip()}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        row: dict[str, Any] = {"split": args.split, "model": name}
        runs: list[tuple[str, dict[str, Any]]] = [("default", {})]
        if name not in untuned:
            trials = min(args.trials, TRIALS.get(name, args.trials))
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                res = tune(name, fit_part, valid, metric="ndcg@10", trials=trials,
                           timeout=args.timeout, rng=args.seed, relevance=0.0, out=tmp,
                           progress=False)
                row["tune_seconds"] = time.perf_counter() - t0
            row.update({"valid_ndcg@10": res.value, "trials": res.trials,
                        "tuned_params": dict(res.params)})
            runs.append(("tuned", dict(res.params)))
        for label, params in runs:
            model = get(name, **params)
            load_before = os.getloadavg()[0]
            t0 = time.perf_counter()
            model.fit(split.train, rng=args.seed, progress=False)
            fit_s = time.perf_counter() - t0
            ev = evaluate(model, split, ks=[10], relevance=0.0)
            row[f"{label}_ndcg@10"] = ev.summary["ndcg@10"]
            row[f"{label}_recall@10"] = ev.summary["recall@10"]
            row[f"{label}_fit_seconds"] = fit_s
            row[f"{label}_load"] = load_before
        rows.append(row)
        best = "tuned" if "tuned_ndcg@10" in row else "default"
        tuned = (f"valid {row['valid_ndcg@10']:.4f} ({row['trials']} trials, "
                 f"{row['tune_seconds']:.0f} s), " if best == "tuned" else "untuned, ")
        print(f"{name:<8} {tuned}test NDCG@10 default {row['default_ndcg@10']:.4f}, "
              f"{best} {row[f'{best}_ndcg@10']:.4f} | fit {row[f'{best}_fit_seconds']:.1f} s "
              f"(load {row[f'{best}_load']:.2f}) | {row.get('tuned_params', {})}", flush=True)
    table = pd.DataFrame(rows).set_index("model")
    if "tuned_ndcg@10" not in table:
        table["tuned_ndcg@10"] = float("nan")
    # A model run untuned is compared by its default figure.
    table["best_ndcg@10"] = table["tuned_ndcg@10"].fillna(table["default_ndcg@10"])
    if "ease" in table.index:
        table["vs_tuned_ease"] = table["best_ndcg@10"] / table.loc["ease", "best_ndcg@10"] - 1
    cols = [c for c in ["valid_ndcg@10", "default_ndcg@10", "tuned_ndcg@10", "vs_tuned_ease",
                        "default_fit_seconds", "tuned_fit_seconds", "trials"] if c in table]
    print(table[cols].round(4).to_string())
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"linear_{args.dataset.replace('-', '')}.json"
    previous = json.loads(out.read_text()) if out.exists() else {"runs": []}
    keep = [r for r in previous["runs"] if (r["split"], r["model"]) not in
            {(r2["split"], r2["model"]) for r2 in rows}]
    atomic_write_text(out, json.dumps({"dataset": args.dataset, "seed": args.seed,
                                       "metric": "ndcg@10", "relevance": 0.0,
                                       "runs": keep + rows}, indent=2, default=str) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
