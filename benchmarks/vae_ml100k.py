"""Mult-VAE and RecVAE next to EASE on ML-100K, per-user 80/20 splits, seed 1 (issue #21).

The same pipeline as `movierec benchmark --dataset ml-100k --split user-random --test-size 0.2
--relevance 0 --seed 1 --models ease,multvae,recvae`: `pipeline.fit_evaluate` with its automatic
validation carve-out (10% of each user's training ratings, at random; the latest ones on
user-time), so the VAEs' epochs are chosen by early stopping on validation NDCG@10 and never on
the test part. EASE (lambda 500, the default) fits the whole training part (and, for
comparison, the same 90% the VAEs train on); "refit" rows retrain a VAE on the whole training
part for its validation-chosen number of epochs (no test data involved). Full ranking,
relevance 0 (every test rating is relevant). One torch thread (MOVIEREC_THREADS / --threads 1);
the load average is recorded beside the timings, since the machine may be shared.

`--grid` fits the configurations the defaults were chosen from on the carve-out only and prints
their best validation NDCG@10 (and EASE's for a few lambdas); it never reads the test part.

    MOVIEREC_DATA_DIR=/work/shared/datasets .venv/bin/python benchmarks/vae_ml100k.py \
        [--splits user-random,user-time] [--grid]

Writes benchmarks/results/vae_ml100k.json (or vae_ml100k_grid.json).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from movierec.evaluate import evaluate
from movierec.io import atomic_write_text, json_default
from movierec.models import get
from movierec.pipeline import AUTO_VALID_SIZE, EvaluationSpec, SplitSpec, _carve_into, fit_evaluate
from movierec.split import Split

RESULTS = Path(__file__).parent / "results"
MODELS = ["ease", "multvae", "recvae"]

# (model, params): the validation-only grid behind the defaults.
GRID: list[tuple[str, dict[str, Any]]] = [
    ("multvae", {"epochs": 150, "batch_size": 500, "total_anneal_steps": 200_000}),  # paper's
    ("multvae", {"epochs": 150, "batch_size": 100, "total_anneal_steps": 200}),
    ("multvae", {"epochs": 60, "batch_size": 100, "total_anneal_steps": 2000}),
    ("multvae", {"epochs": 150, "batch_size": 100, "total_anneal_steps": 20_000}),
    ("multvae", {"epochs": 150, "batch_size": 100, "beta_cap": 0.5, "total_anneal_steps": 2000}),
    ("multvae", {"epochs": 150, "batch_size": 100, "beta_cap": 0.5, "total_anneal_steps": 200}),
    ("multvae", {"epochs": 150, "batch_size": 100, "beta_cap": 1.0, "total_anneal_steps": 200}),
    ("recvae", {"epochs": 40, "patience": 10, "batch_size": 100, "gamma": 0.005}),
    ("recvae", {"epochs": 40, "patience": 10, "batch_size": 500, "gamma": 0.005}),  # paper's
    ("recvae", {"epochs": 40, "patience": 10, "batch_size": 100, "gamma": 0.02}),
]


def build(kind: str, seed: int) -> tuple[Split, Split]:
    """The 80/20 split and the same split with the pipeline's validation carve-out."""
    split = SplitSpec(kind=kind, dataset="ml-100k", test_size=0.2, seed=seed).build()
    return split, _carve_into(split, AUTO_VALID_SIZE, seed, time_ordered=kind == "user-time")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def compare(kinds: list[str], seed: int) -> dict[str, Any]:
    """Each model via `fit_evaluate`; the VAEs also refitted on the whole training part."""
    evaluation = EvaluationSpec(k=(10,), relevance=0.0)
    rows, report = [], {}
    for kind in kinds:
        split, carved = build(kind, seed)
        runs: list[tuple[str, str, Split, dict[str, Any]]] = [
            ("ease", "ease", split, {}),
            # EASE on the same 90% the early-stopped VAEs train on (the carved-out 10% are then
            # candidates at test time, as they are for the VAEs).
            ("ease (90% train)", "ease", carved, {})]
        for name in MODELS[1:]:
            runs.append((name, name, split, {}))
            runs.append((f"{name} refit", name, split, {}))
        best: dict[str, int] = {}
        for label, name, data, params in runs:
            if label.endswith("refit"):
                # The validation-chosen number of epochs, now on the whole training part.
                params = {"epochs": best[name], "patience": None}
            before = load_average()
            rec = fit_evaluate(name, data, params=params, seed=seed, evaluation=evaluation,
                               threads=1, auto_valid=not label.endswith("refit"))
            history = rec.history or []
            best_epoch = getattr(rec.fitted, "best_epoch_", None)
            if best_epoch is not None and not label.endswith("refit"):
                best[name] = int(best_epoch)
            row = {"split": kind, "model": label, "ndcg@10": rec.metrics.get("ndcg@10"),
                   "recall@10": rec.metrics.get("recall@10"), "fit_s": rec.fit_seconds,
                   "best_epoch": best_epoch, "epochs_run": len(history) or None,
                   "valid_ndcg@10": max((h["valid_metric"] for h in history
                                         if h["valid_metric"] is not None), default=None),
                   "load_before": before, "load_after": load_average()}
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()},
                  flush=True)
            rows.append(row)
            report[f"{kind}/{label}"] = {**row, "params": rec.params,
                                         "validation": rec.validation, "metrics": rec.metrics,
                                         "history": history}
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.4f"))
    return report


def grid(kinds: list[str], seed: int) -> dict[str, Any]:
    rows, report = [], {}
    for kind in kinds:
        _, carved = build(kind, seed)
        valid = Split(train=carved.train, test=carved.valid, name="validation")
        for lam in (250.0, 500.0):
            ease = get("ease", lambda_=lam).fit(carved.train)
            value = evaluate(ease, valid, ks=(10,), relevance=0.0).summary["ndcg@10"]
            rows.append({"split": kind, "model": "ease", "params": f"lambda={lam:g}",
                         "valid_ndcg@10": value, "best_epoch": None, "fit_s": None})
        for name, params in GRID:
            t0 = time.perf_counter()
            model = get(name, device="cpu", **params).fit(carved.train, carved.valid, rng=seed,
                                                          progress=False)
            row = {"split": kind, "model": name, "params": json.dumps(params),
                   "valid_ndcg@10": max(h["valid_metric"] for h in model.history_),
                   "best_epoch": model.best_epoch_, "fit_s": time.perf_counter() - t0}
            print(row, flush=True)
            rows.append(row)
            report[f"{kind}/{name}/{json.dumps(params)}"] = {
                **row, "history": model.history_, "load": load_average()}
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.4f"))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="user-random", help="user-random,user-time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--grid", action="store_true", help="validation-only grid")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    kinds = args.splits.split(",")
    report = grid(kinds, args.seed) if args.grid else compare(kinds, args.seed)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("vae_ml100k_grid.json" if args.grid else "vae_ml100k.json")
    atomic_write_text(out, json.dumps({"seed": args.seed, "splits": kinds, "runs": report},
                                      indent=2, default=json_default))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
