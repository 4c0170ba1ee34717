"""FeatureNet on ML-100K's u1 fold: the default model, refit, ablations, optionally cleaned.

Trains on u1.base minus a 10% validation carve-out (early stopping only) and evaluates on u1.test
(full protocol, relevance 4): FeatureNet with its defaults (wide branch, user and item implicit
feedback, side features; every choice made on the carve-out, see `--tune`), the same model
refit on all of u1.base for the epoch count the carve-out chose ("featurenet+refit"), and the
bias baseline for reference. `--ablations` adds the model without user features, without item
features, without both, and with the first release's defaults (no wide branch, no implicit
feedback, dropout 0.5, learning rate 1e-3, no weight decay). Prints a table and writes
benchmarks/results/featurenet_ml100k.json (RMSE/MAE/NDCG@10, epochs, seconds per epoch and in
total, machine and load average: timings on a shared machine are rough).

`--clean` applies the seed project's cleaning to the training part only: movies with fewer than
5 ratings, without a genre, or released before 1930 are dropped
(`Dataset.filter(min_item_ratings=5, require_genres=True, min_year=1930)`); their test ratings
are then predicted with the unknown-item fallback.

`--tune` instead fits a small grid of the optional parts and ranks it by the best validation
RMSE (u1.test is not read): the record of how FeatureNet's defaults were chosen. It writes
featurenet_ml100k_tune.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from movierec.cli import print_table
from movierec.data import load
from movierec.data.movielens import resolve
from movierec.data.releases import RELEASES
from movierec.evaluate import evaluate
from movierec.io import atomic_write_text, json_default
from movierec.models import get
from movierec.split import Split, predefined_split

KEYS = ["rmse", "mae", "ndcg@10", "precision@10"]
#: The first release's defaults, before the wide branch and the implicit feedback.
V1: dict[str, Any] = {"wide_size": 0, "implicit": "none", "item_implicit": "none",
                      "dropout": 0.5, "learning_rate": 1e-3, "weight_decay": 0.0}
VARIANTS: dict[str, dict[str, Any]] = {
    "featurenet": {},
    "featurenet -user": {"user_features": False},
    "featurenet -item": {"item_features": False},
    "featurenet -both": {"user_features": False, "item_features": False},
    "featurenet v1": V1,
}
GRID: dict[str, list[Any]] = {
    "implicit": ["none", "wide"],
    "item_implicit": ["none", "both"],
    "dropout": [0.5, 0.7],
}


def make_split(args: argparse.Namespace, valid_size: float = 0.1) -> Split:
    """u1 with a validation carve-out of u1.base (none at 0), the training part cleaned on
    request."""
    folder = resolve(RELEASES["ml-100k"], data_dir=args.data_dir)
    ds = load("ml-100k", data_dir=folder.parent)
    split = predefined_split(ds, "u1", data_dir=folder, valid_size=valid_size, rng=args.seed)
    if args.clean:
        train = split.train.filter(min_item_ratings=5, require_genres=True, min_year=1930)
        split = dataclasses.replace(split, train=train,
                                    params={**split.params, "clean": True})
    return split


def fit(name: str, params: dict[str, Any], split: Split, seed: int) -> tuple[Any, float]:
    model = get(name, **params)
    t0 = time.perf_counter()
    model.fit(split.train, split.valid, rng=seed, progress=False)
    return model, time.perf_counter() - t0


def epoch_stats(model: Any, fit_s: float) -> dict[str, Any]:
    history = getattr(model, "history_", [])
    seconds = [h["seconds"] for h in history]
    valid = [h["valid_metric"] for h in history if h.get("valid_metric") is not None]
    return {"fit_seconds": fit_s, "epochs": len(history) or None,
            "best_epoch": getattr(model, "best_epoch_", None),
            "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
            "valid_rmse": min(valid) if valid else None}


def measure(model: Any, split: Split, fit_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(table row, report entry) of a fitted model on `split`'s test part."""
    results = evaluate(model, split, ks=(10,), relevance=4.0, protocol="full")
    stats = epoch_stats(model, fit_s)
    row = {**{k: results.summary.get(k) for k in KEYS}, **stats}
    entry = {"params": model.params(), "summary": results.summary, **stats,
             "history": getattr(model, "history_", []),
             "device": str(getattr(model, "device_", "cpu")), "train": split.train.n_ratings,
             "load_average": [round(x, 2) for x in os.getloadavg()]}
    return row, entry


def compare(args: argparse.Namespace, split: Split) -> dict[str, Any]:
    rows, report = {}, {}
    variants = VARIANTS if args.ablations else {"featurenet": VARIANTS["featurenet"]}
    runs = [("bias", "bias", {})] + [(label, "featurenet", {"device": args.device, **over})
                                     for label, over in variants.items()]
    for label, name, params in runs:
        model, fit_s = fit(name, params, split, args.seed)
        rows[label], report[label] = measure(model, split, fit_s)
        if label == "featurenet":
            # The same parameters and the validation-chosen epoch count, refit on all u1.base.
            full = make_split(args, valid_size=0.0)
            refit = {**model.params(), "epochs": model.best_epoch_, "patience": None}
            model, fit_s = fit(name, refit, full, args.seed)
            rows["featurenet+refit"], report["featurenet+refit"] = measure(model, full, fit_s)
    clean = " · cleaned train" if args.clean else ""
    print_table(pd.DataFrame.from_dict(rows, orient="index"),
                title=f"ML-100K u1 (10% of u1.base for validation){clean} · seed {args.seed}")
    return report


def tune(args: argparse.Namespace, split: Split) -> dict[str, Any]:
    rows, report = {}, {}
    keys = list(GRID)
    for values in itertools.product(*GRID.values()):
        over = dict(zip(keys, values, strict=True))
        label = " ".join(f"{k}={v}" for k, v in over.items())
        model, fit_s = fit("featurenet", {"device": args.device, **over}, split, args.seed)
        stats = epoch_stats(model, fit_s)
        report[label] = {"params": model.params(), **stats}
        # Shown as "rmse" so the table lists it with the accuracy metrics: it is validation RMSE.
        rows[label] = {"rmse": stats.pop("valid_rmse"), **stats}
    table = pd.DataFrame.from_dict(rows, orient="index").sort_values("rmse")
    print_table(table, title=f"FeatureNet grid on the u1.base validation carve-out · seed "
                             f"{args.seed} (u1.test unused)")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=42, help="carve-out and model seed")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding ml-100k/")
    parser.add_argument("--device", default="auto", help='"auto", "cpu" or "cuda"')
    parser.add_argument("--clean", action="store_true",
                        help="drop movies with < 5 ratings, no genre or before 1930 from train")
    parser.add_argument("--tune", action="store_true",
                        help="rank a grid of the optional parts by validation RMSE instead")
    parser.add_argument("--ablations", action="store_true",
                        help="also fit and test the model without user/item/all features and "
                             "with the first release's defaults")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 keeps timings steady on a shared machine)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    split = make_split(args)
    report = tune(args, split) if args.tune else compare(args, split)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "featurenet_ml100k" + ("_tune" if args.tune else "") + ("_clean" if args.clean else "")
    out = args.out / f"{stem}.json"
    meta = {"split": split.describe(), "seed": args.seed, "clean": args.clean,
            "torch_threads": torch.get_num_threads(),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "torch": torch.__version__,
                        "load_average": [round(x, 2) for x in os.getloadavg()]}}
    atomic_write_text(out, json.dumps({**meta, "models": report}, indent=2,
                                      default=json_default))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
