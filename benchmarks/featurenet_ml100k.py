"""FeatureNet on ML-100K's u1 fold: with and without side features, optionally cleaned.

Trains on u1.base minus a 10% validation carve-out (early stopping only) and evaluates on u1.test
(full protocol, relevance 4): the full model, the ablations without user features, without item
features and without both (embeddings only), and the bias baseline for reference. Prints a
table and writes benchmarks/results/featurenet_ml100k.json (RMSE/MAE/NDCG@10, epochs, seconds
per epoch and in total).

`--clean` applies the seed project's cleaning to the training part only: movies with fewer than
5 ratings, without a genre, or released before 1930 are dropped
(`Dataset.filter(min_item_ratings=5, require_genres=True, min_year=1930)`); their test ratings
are then predicted with the unknown-item fallback.

`--tune` instead fits a small grid of hyper-parameters and ranks it by the best validation RMSE
(u1.test is not read): this is how FeatureNet's defaults were chosen. It writes
featurenet_ml100k_tune.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
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
from movierec.models import get
from movierec.split import Split, predefined_split

KEYS = ["rmse", "mae", "ndcg@10", "precision@10"]
VARIANTS: dict[str, dict[str, Any]] = {
    "featurenet": {},
    "featurenet -user": {"user_features": False},
    "featurenet -item": {"item_features": False},
    "featurenet -both": {"user_features": False, "item_features": False},
}
GRID: dict[str, list[Any]] = {
    "embedding_size": [32, 64],
    "hidden_size": [64, 128],
    "dropout": [0.2, 0.5],
}


def make_split(args: argparse.Namespace) -> Split:
    """u1 with a 10% validation carve-out of u1.base, the training part cleaned on request."""
    folder = resolve(RELEASES["ml-100k"], data_dir=args.data_dir)
    ds = load("ml-100k", data_dir=folder.parent)
    split = predefined_split(ds, "u1", data_dir=folder, valid_size=0.1, rng=args.seed)
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


def compare(args: argparse.Namespace, split: Split) -> dict[str, Any]:
    rows, report = {}, {}
    runs = [("bias", "bias", {})] + [(label, "featurenet", {"device": args.device, **over})
                                     for label, over in VARIANTS.items()]
    for label, name, params in runs:
        model, fit_s = fit(name, params, split, args.seed)
        results = evaluate(model, split, ks=(10,), relevance=4.0, protocol="full")
        stats = epoch_stats(model, fit_s)
        rows[label] = {**{k: results.summary.get(k) for k in KEYS}, **stats}
        report[label] = {"params": model.params(), "summary": results.summary, **stats,
                         "history": getattr(model, "history_", []),
                         "device": str(getattr(model, "device_", "cpu"))}
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
                        help="rank a hyper-parameter grid by validation RMSE instead")
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
            "torch_threads": torch.get_num_threads()}
    out.write_text(json.dumps({**meta, "models": report}, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
