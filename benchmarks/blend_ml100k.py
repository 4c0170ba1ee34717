"""Blend (stacked ensemble) on ML-100K's u1 fold, with each member's own u1.test numbers.

Members: bias, item- and user-kNN (explicit ratings, pearson_baseline, 40 neighbours,
shrinkage 100), MF and FeatureNet (defaults), plus SVD++ and AutoRec (defaults) when
`movierec.models.get_class` can import them: with torch installed, the members of the default
`blend` (`movierec.models.blend.STRONG_MEMBERS`). The blend carves its ridge holdout (10%) out
of its own training data; nothing is chosen on u1.test. With `--valid-size` > 0 a share of
u1.base is set aside for the members' early stopping (as the other u1 benchmarks do); with 0
(default) every member trains on all of u1.base for its fixed number of epochs.

Prints a table (RMSE/MAE on u1.test per member and for the blend, fit seconds) and writes
benchmarks/results/blend_ml100k.json atomically.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from movierec.cli import print_table
from movierec.data import load
from movierec.data.movielens import resolve
from movierec.data.releases import RELEASES
from movierec.errors import MissingExtraError
from movierec.evaluate import evaluate
from movierec.io import atomic_write_text
from movierec.models import get, get_class
from movierec.split import predefined_split

KEYS = ["rmse", "mae", "ndcg@10"]
KNN = {"n_neighbors": 40, "similarity": "pearson_baseline", "shrinkage": 100.0,
       "feedback": "explicit"}


def members(device: str, only: list[str] | None) -> list[tuple[str, dict[str, Any]]]:
    """The candidate members that are registered and importable (others are named and skipped)."""
    candidates: list[tuple[str, dict[str, Any]]] = [
        ("bias", {}), ("itemknn", dict(KNN)), ("userknn", dict(KNN)),
        ("mf", {"device": device}), ("featurenet", {"device": device}),
        ("svdpp", {"device": device}), ("autorec", {"device": device}),
    ]
    out = []
    for name, params in candidates:
        if only is not None and name not in only:
            continue
        try:
            get_class(name)
        except (KeyError, ImportError, MissingExtraError, AttributeError) as exc:
            print(f"note: skipping member {name!r} ({type(exc).__name__}: {exc})")
            continue
        out.append((name, params))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=42, help="carve-out and model seed")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding ml-100k/")
    parser.add_argument("--device", default="auto", help='torch device ("auto", "cpu", "cuda")')
    parser.add_argument("--valid-size", type=float, default=0.0,
                        help="share of u1.base for the members' early stopping (default 0)")
    parser.add_argument("--members", default=None,
                        help="comma list restricting the candidate members (default: all)")
    parser.add_argument("--alpha", type=float, default=10.0, help="ridge alpha of the blend")
    parser.add_argument("--no-meta", action="store_true", help="blend without meta-features")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 keeps timings steady on a shared machine)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    folder = resolve(RELEASES["ml-100k"], data_dir=args.data_dir)
    ds = load("ml-100k", data_dir=folder.parent)
    split = predefined_split(ds, "u1", data_dir=folder, valid_size=args.valid_size,
                             rng=args.seed)
    only = None if args.members is None else args.members.split(",")
    blend = get("blend", members=tuple(members(args.device, only)), alpha=args.alpha,
                meta_features=not args.no_meta)
    t0 = time.perf_counter()
    blend.fit(split.train, split.valid, rng=args.seed, progress=False)
    fit_s = time.perf_counter() - t0

    rows, report = {}, {}
    labels = [*blend.fit_seconds_]
    for label, model in [*zip(labels, blend.members_, strict=True), ("blend", blend)]:
        results = evaluate(model, split, ks=(10,), relevance=4.0, protocol="full")
        seconds = fit_s if model is blend else blend.fit_seconds_[label]
        rows[label] = {**{k: results.summary.get(k) for k in KEYS},
                       "holdout_rmse": blend.holdout_rmse_.get(label), "fit_seconds": seconds}
        report[label] = {"params": model.params(), "summary": results.summary,
                         "holdout_rmse": blend.holdout_rmse_.get(label), "fit_seconds": seconds,
                         "epochs": len(getattr(model, "history_", [])) or None}
    table = pd.DataFrame.from_dict(rows, orient="index")
    # Member seconds count both stages; holdout_rmse is on the blend's carve-out of u1.base.
    print_table(table, title=f"ML-100K u1 · blend · seed {args.seed}")
    print("weights:", {k: round(v, 4) for k, v in blend.weights_.items()})
    out = args.out / "blend_ml100k.json"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps({
        "split": split.describe(), "seed": args.seed, "torch_threads": args.threads,
        "blend_params": blend.params(),
        "weights": blend.weights_, "n_holdout": blend.n_holdout_, "fit_seconds": fit_s,
        "models": report}, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
