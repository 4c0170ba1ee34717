"""Does tuning help? `movierec tune` on a validation carve-out, then defaults vs tuned on the test.

For each model: the split's training part is cut into fit (90 % per user) and validation (10 %:
random with seed 42, or each user's latest 10 % when the split is time-ordered); the study tunes
NDCG@10 (or RMSE with --metric rmse) on the validation part only; then the default and the tuned
model are both fitted on the fit part (neural models early-stop on the same validation part) and
evaluated once on the test part. Also reports the tuning cost (trials
per minute) and, for neural models, the epochs the median pruner saved.

    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/tune_ranking.py \
        --dataset ml-100k --split user-random --models ease,mf,lightgcn --trials 20
    ... --dataset ml-latest-small --split user-time
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from movierec.data import load
from movierec.evaluate import evaluate
from movierec.io import atomic_write_text
from movierec.models import get, get_class
from movierec.split import carve_validation, make_split
from movierec.tune import tune

RESULTS = Path(__file__).resolve().parent / "results"

# Held fixed while tuning (and for the default run): the ranking objective, and a cap on epochs
# so that one study fits in minutes on 2 cores.
FIXED = {
    "mf": {"loss": "bpr", "epochs": 30},
    "lightgcn": {"epochs": 60},
    "ngcf": {"epochs": 60},
    "neumf": {"loss": "bce", "epochs": 20},
}
QUICK = {"mf": {"epochs": 5}, "lightgcn": {"epochs": 5}, "ngcf": {"epochs": 5},
         "neumf": {"epochs": 3}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", help="MovieLens release name")
    parser.add_argument("--split", default="user-random",
                        help="user-random (per-user random 80/20) or user-time (time-ordered)")
    parser.add_argument("--models", default="ease,mf,lightgcn",
                        help="comma-separated registered model names")
    parser.add_argument("--metric", default="ndcg@10", help="validation metric tuned")
    parser.add_argument("--relevance", type=float, default=0.0,
                        help="rating threshold of a relevant item (0: every test item)")
    parser.add_argument("--trials", type=int, default=20, help="trials per study")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per study (stop starting new trials after it)")
    parser.add_argument("--seed", type=int, default=42,
                        help="split, carve-out, sampler and model seed")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="few trials and epochs (smoke run)")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the releases (default: MOVIEREC_DATA_DIR or cache)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    trials = 3 if args.quick else args.trials

    ds = load(args.dataset, data_dir=args.data_dir)
    split = make_split(ds, args.split, test_size=0.2, rng=args.seed)
    # Time-ordered test, time-ordered validation (each user's latest 10 %), as `movierec tune`.
    latest = bool(split.params.get("time_aware"))
    fit_part, valid = carve_validation(split.train, 0.1, args.seed, time_ordered=latest)
    print(f"{args.dataset} {args.split}: fit {fit_part.n_ratings:,} / valid {valid.n_ratings:,} "
          f"/ test {split.test.n_ratings:,}; metric {args.metric} (relevance {args.relevance})")
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        fixed = {**FIXED.get(name, {}), **(QUICK.get(name, {}) if args.quick else {})}
        if "device" in get_class(name).param_names():
            fixed.setdefault("device", "cpu")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = tune(name, fit_part, valid, metric=args.metric, trials=trials,
                       timeout=args.timeout, rng=args.seed, relevance=args.relevance,
                       fixed=fixed, out=tmp, progress=True)
            minutes = (time.perf_counter() - t0) / 60
            frame = pd.read_csv(Path(tmp) / "trials.csv")
        saved = _epochs_saved(frame, fixed.get("epochs"))
        scores = {}
        for label, params in (("default", fixed), ("tuned", res.params)):
            model = get(name, **params)
            t0 = time.perf_counter()
            model.fit(fit_part, valid, rng=args.seed, progress=False)
            fit_s = time.perf_counter() - t0
            ev = evaluate(model, split, ks=[10], relevance=args.relevance)
            scores[label] = {"ndcg@10": ev.summary["ndcg@10"],
                             "recall@10": ev.summary["recall@10"],
                             "rmse": ev.summary.get("rmse"), "fit_seconds": fit_s}
        rows.append({"model": name, "valid_best": res.value, "trials": res.trials,
                     "pruned": res.pruned, "trials_per_minute": res.trials / minutes,
                     "epochs_saved_by_pruning": saved, "tuned_params":
                     {k: res.params[k] for k in res.tuned},
                     **{f"{lab}_{k}": v for lab, d in scores.items() for k, v in d.items()}})
        r = rows[-1]
        print(f"{name:<10} valid {args.metric} {res.value:.4f} | test NDCG@10 default "
              f"{r['default_ndcg@10']:.4f} → tuned {r['tuned_ndcg@10']:.4f} | recall@10 "
              f"{r['default_recall@10']:.4f} → {r['tuned_recall@10']:.4f} | "
              f"{r['trials_per_minute']:.2f} trials/min, {res.pruned} pruned, "
              f"{saved} epochs saved", flush=True)
    table = pd.DataFrame(rows).set_index("model")
    cols = ["valid_best", "default_ndcg@10", "tuned_ndcg@10", "default_recall@10",
            "tuned_recall@10", "trials", "pruned", "trials_per_minute",
            "epochs_saved_by_pruning"]
    print(table[cols].round(4).to_string())
    RESULTS.mkdir(exist_ok=True)
    # One file per dataset, split and model set (a lightgcn-only study keeps the 3-model file).
    models = "" if args.models == parser.get_default("models") else "_" + args.models.replace(
        ",", "-")
    out = RESULTS / f"tune_{args.dataset}_{args.split}{models}{'_quick' if args.quick else ''}.json"
    atomic_write_text(out, json.dumps({"dataset": args.dataset, "split": args.split,
                                       "metric": args.metric, "relevance": args.relevance,
                                       "seed": args.seed, "rows": rows}, indent=2,
                                      default=str) + "\n")
    print(f"wrote {out}")


def _epochs_saved(frame: pd.DataFrame, epochs: int | None) -> int:
    """Epochs the pruner cut: for each pruned trial, max epochs − the epoch it stopped at."""
    if epochs is None or "user_attrs_pruned_at_epoch" not in frame:
        return 0
    stopped = frame.loc[frame["state"] == "PRUNED", "user_attrs_pruned_at_epoch"].dropna()
    return int((epochs - stopped).clip(lower=0).sum())


if __name__ == "__main__":
    main()
