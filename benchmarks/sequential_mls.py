"""Sequential models (LSTMRec, SASRec) on ml-latest-small, next to EASE and popularity.

Two time-aware protocols, both with full ranking over every unseen training item, relevance 0:

(a) per-user time-ordered 80/20 (`make_split(ds, "user-time", test_size=0.2, rng=seed)`);
(b) leave-one-out: each user's latest rating is the test item (`make_split(ds, "loo", rng=seed)`).

The number of epochs of the neural models is chosen by early stopping (NDCG@10, patience 3) on a
carve-out of the training part made the same way as the test part (the latest 10% of each user's
training ratings for (a), the latest training rating for (b)); the models are then refitted on
the whole training part for that many epochs, so their context at evaluation is the user's full
training history and every model sees the same data. Never tuned on the test part.

Data: MOVIEREC_DATA_DIR (or --data-dir) holding ml-latest-small/. Prints a table per protocol
and writes benchmarks/results/sequential_mls.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from movierec.cli import print_table
from movierec.data import load
from movierec.evaluate import evaluate
from movierec.models import get
from movierec.models.base import Recommender
from movierec.split import leave_one_out, make_split, user_time_split

MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("lstm", "lstm", {}),
    ("sasrec", "sasrec", {}),
    # Chosen on the user-time validation carve-out (never the test part): NDCG@10 there 0.095
    # after 20 epochs (still rising) vs 0.066 with the defaults, which stop after ~5 epochs.
    ("sasrec (tuned)", "sasrec", {"learning_rate": 2e-3, "batch_size": 32, "n_negatives": 4}),
    ("ease", "ease", {}),
    ("pop", "pop", {}),
]


def timing(model: Recommender, fit_s: float) -> dict[str, Any]:
    history = getattr(model, "history_", [])
    epoch_s = [h["seconds"] for h in history]
    return {"epochs": len(history) or None,
            "seconds_per_epoch": sum(epoch_s) / len(epoch_s) if epoch_s else None,
            "fit_seconds": fit_s}


def run_protocol(ds, kind: str, seed: int, device: str, max_epochs: int,
                 only: list[str] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    if kind == "user-time":
        split = make_split(ds, "user-time", test_size=0.2, rng=seed)
        carve = user_time_split(split.train, test_size=0.1, rng=seed)
    else:
        split = make_split(ds, "loo", rng=seed)
        carve = leave_one_out(split.train, rng=seed)
    rows, report = {}, {}
    for label, name, params in MODELS:
        if only and label not in only:
            continue
        chosen: dict[str, Any] = {}
        select: dict[str, Any] = {}
        if "epochs" in get(name).params():
            params = {"device": device, "epochs": max_epochs, **params}
            t0 = time.perf_counter()
            probe = get(name, **params).fit(carve.train, carve.test, rng=seed, progress=False)
            select = {"selection_seconds": time.perf_counter() - t0,
                      "valid_history": probe.history_}
            chosen = {"epochs": max(1, int(probe.best_epoch_)), "patience": None}
        model = get(name, **{**params, **chosen})
        t0 = time.perf_counter()
        model.fit(split.train, rng=seed, progress=False)
        fit_s = time.perf_counter() - t0
        res = evaluate(model, split, ks=(10,), relevance=0)
        rows[label] = {"ndcg@10": res.summary["ndcg@10"],
                       "recall@10": res.summary["recall@10"], **timing(model, fit_s)}
        report[label] = {"params": model.params(), "summary": res.summary, **rows[label],
                         **select}
        print(f"  {kind} {label}: ndcg@10 {rows[label]['ndcg@10']:.4f} "
              f"recall@10 {rows[label]['recall@10']:.4f} ({fit_s:.1f}s)", flush=True)
    return pd.DataFrame.from_dict(rows, orient="index"), {"split": split.describe(),
                                                           "models": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=42, help="split, carve-out and model seed")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("MOVIEREC_DATA_DIR", "../shared/datasets")))
    parser.add_argument("--device", default="auto", help='"auto", "cpu" or "cuda"')
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--max-epochs", type=int, default=30, help="epoch cap of the probes")
    parser.add_argument("--protocol", choices=["user-time", "loo", "both"], default="both")
    parser.add_argument("--models", nargs="*", default=None, help="labels to run (default all)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load("ml-latest-small", data_dir=args.data_dir)
    out: dict[str, Any] = {"seed": args.seed, "torch_threads": torch.get_num_threads(),
                           "device": args.device,
                           "cuda": torch.cuda.get_device_name() if torch.cuda.is_available()
                           else None, "max_epochs": args.max_epochs}
    kinds = ["user-time", "loo"] if args.protocol == "both" else [args.protocol]
    for kind in kinds:
        table, out[kind] = run_protocol(ds, kind, args.seed, args.device, args.max_epochs,
                                       args.models)
        print_table(table, title=f"ml-latest-small {kind}, relevance 0, full ranking · "
                                 f"seed {args.seed}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "sequential_mls.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
