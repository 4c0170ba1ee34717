"""MF (default hyper-parameters) on ML-100K's u1 fold, with the bias baseline for reference.

Trains on u1.base minus a 10% validation carve-out (used only for early stopping), evaluates on
u1.test with the full protocol (relevance 4), prints a table and writes
benchmarks/results/mf_ml100k.json with seconds per epoch and in total.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from _common import ml100k

from movierec.cli import print_table
from movierec.evaluate import evaluate
from movierec.models import get
from movierec.split import predefined_split

KEYS = ["rmse", "mae", "precision@10", "recall@10", "ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=42, help="carve-out and model seed")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding ml-100k/")
    parser.add_argument("--device", default="auto", help='MF device ("auto", "cpu", "cuda")')
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    ds, folder = ml100k(args.data_dir)
    split = predefined_split(ds, "u1", data_dir=folder, valid_size=0.1, rng=args.seed)
    rows, report = {}, {}
    for name, params in (("bias", {}), ("mf", {"device": args.device})):
        model = get(name, **params)
        t0 = time.perf_counter()
        model.fit(split.train, split.valid, rng=args.seed, progress=False)
        fit_s = time.perf_counter() - t0
        results = evaluate(model, split, ks=(10,), relevance=4.0, protocol="full")
        history = getattr(model, "history_", [])
        epoch_s = [h["seconds"] for h in history]
        rows[name] = {**{k: results.summary.get(k) for k in KEYS}, "fit_seconds": fit_s,
                      "epochs": len(history) or None,
                      "seconds_per_epoch": sum(epoch_s) / len(epoch_s) if epoch_s else None}
        report[name] = {"params": model.params(), "summary": results.summary,
                        "fit_seconds": fit_s, "history": history,
                        "best_epoch": getattr(model, "best_epoch_", None),
                        "device": str(getattr(model, "device_", "cpu"))}
    table = pd.DataFrame.from_dict(rows, orient="index")
    print_table(table, title=f"ML-100K u1 (10% of u1.base for validation) · seed {args.seed}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "mf_ml100k.json"
    out.write_text(json.dumps({"split": split.describe(), "seed": args.seed, "models": report},
                              indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
