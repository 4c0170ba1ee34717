"""I-AutoRec (default hyper-parameters) on ML-100K's u1 fold, next to MF and the bias baseline.

Every model trains on u1.base minus a 10% validation carve-out (used only for early stopping) and
is evaluated on u1.test with the full protocol (relevance 4); rows "+refit" then retrain the same
parameters on all of u1.base for the validation-chosen number of epochs. Prints a table and writes
benchmarks/results/autorec_ml100k.json (validation and test metrics, fit seconds, histories).

`--grid` instead fits the small AutoRec grid the defaults were chosen from and reports the
validation RMSE only; it never reads u1.test's ratings. It writes autorec_ml100k_grid.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import ml100k

from movierec.cli import print_table
from movierec.evaluate import evaluate
from movierec.io import atomic_write_text, json_default
from movierec.models import get
from movierec.split import predefined_split

KEYS = ["rmse", "mae", "precision@10", "recall@10", "ndcg@10"]

# (hidden_size, reg, learning_rate, batch_size, dropout): the configurations tried on validation.
GRID = [
    (500, 1.0, 1e-3, 64, 0.0), (500, 100.0, 1e-3, 64, 0.0), (500, 300.0, 1e-3, 64, 0.0),
    (500, 1000.0, 1e-3, 64, 0.0), (500, 100.0, 3e-4, 64, 0.0), (500, 200.0, 3e-4, 64, 0.0),
    (500, 400.0, 3e-4, 64, 0.0), (500, 200.0, 3e-4, 64, 0.2), (1000, 200.0, 3e-4, 64, 0.0),
    (250, 100.0, 3e-4, 64, 0.0), (250, 150.0, 3e-4, 64, 0.0), (120, 150.0, 3e-4, 64, 0.0),
]


def valid_rmse(model, split) -> float:
    r = split.valid.ratings
    pred = model.predict(r["user_id"].to_numpy(), r["item_id"].to_numpy())
    return float(np.sqrt(np.mean((pred - r["rating"].to_numpy()) ** 2)))


def fit(model, train, valid, seed: int) -> float:
    t0 = time.perf_counter()
    model.fit(train, valid, rng=seed, progress=False)
    return time.perf_counter() - t0


def measure(model, split, fit_s: float) -> tuple[dict, dict]:
    """(table row, JSON report) of a fitted model on split.test."""
    results = evaluate(model, split, ks=(10,), relevance=4.0, protocol="full")
    history = getattr(model, "history_", [])
    row = {**{k: results.summary.get(k) for k in KEYS}, "fit_seconds": fit_s,
           "epochs": len(history) or None}
    report = {"params": model.params(), "summary": results.summary, "fit_seconds": fit_s,
              "history": history, "best_epoch": getattr(model, "best_epoch_", None),
              "device": str(getattr(model, "device_", "cpu"))}
    return row, report


def run_grid(split, args: argparse.Namespace) -> None:
    rows = []
    for hidden, reg, lr, batch, dropout in GRID:
        params = {"hidden_size": hidden, "reg": reg, "learning_rate": lr, "batch_size": batch,
                  "dropout": dropout, "epochs": 200, "patience": 20, "device": args.device}
        model = get("autorec", **params)
        t0 = time.perf_counter()
        model.fit(split.train, split.valid, rng=args.seed, progress=False)
        rows.append({**params, "valid_rmse": valid_rmse(model, split),
                     "best_epoch": model.best_epoch_, "fit_seconds": time.perf_counter() - t0})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows).sort_values("valid_rmse")
    print(table.to_string(index=False))
    out = args.out / "autorec_ml100k_grid.json"
    atomic_write_text(out, json.dumps({"split": split.describe(), "seed": args.seed,
                                       "runs": rows}, indent=2, default=json_default))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=42, help="carve-out and model seed")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding ml-100k/")
    parser.add_argument("--device", default="auto", help='device ("auto", "cpu", "cuda")')
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--grid", action="store_true", help="validation grid for AutoRec only")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    ds, folder = ml100k(args.data_dir)
    split = predefined_split(ds, "u1", data_dir=folder, valid_size=0.1, rng=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.grid:
        run_grid(split, args)
        return
    # "+refit": the same parameters and the validation-chosen epoch count, refit on all u1.base.
    full = predefined_split(ds, "u1", data_dir=folder)
    rows, report = {}, {}
    for name, params in (("bias", {}), ("mf", {"device": args.device}),
                         ("autorec", {"device": args.device})):
        model = get(name, **params)
        fit_s = fit(model, split.train, split.valid, args.seed)
        rows[name], report[name] = measure(model, split, fit_s)
        report[name]["valid_rmse"] = rows[name]["valid_rmse"] = valid_rmse(model, split)
        if name != "bias":
            refit = get(name, **{**model.params(), "epochs": model.best_epoch_,
                                 "patience": None})
            fit_s = fit(refit, full.train, None, args.seed)
            rows[f"{name}+refit"], report[f"{name}+refit"] = measure(refit, full, fit_s)
    table = pd.DataFrame.from_dict(rows, orient="index")
    print_table(table, title=f"ML-100K u1 (10% of u1.base for validation) · seed {args.seed}")
    out = args.out / "autorec_ml100k.json"
    atomic_write_text(out, json.dumps({"split": split.describe(), "seed": args.seed,
                                       "threads": torch.get_num_threads(), "models": report},
                                      indent=2, default=json_default))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
