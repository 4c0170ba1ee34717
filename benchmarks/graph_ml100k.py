"""Graph recommenders (NGCF, LightGCN, AttnGraphRec) on ML-100K, per-user random 80/20, seed 42.

Relevance threshold 0, full ranking (`evaluate(model, split, ks=(10,), relevance=0)`), next to
EASE, ItemKNN and MF (loss="bpr"). As in ncf_ml100k.py, the number of epochs of every neural
model is chosen by early stopping (validation NDCG@10) on a per-user random 10% carve-out of the
training part; the model is then refitted on the whole training part for that many epochs, so
every model sees the same training data. Prints a table (NDCG@10, Recall@10, seconds per epoch)
and writes benchmarks/results/graph_ml100k.json.

    MOVIEREC_DATA_DIR=/work/shared/datasets python benchmarks/graph_ml100k.py [--models a,b]
"""

from __future__ import annotations

import argparse
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
from movierec.split import make_split, user_random_split

MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("lightgcn", "lightgcn", {}),
    ("lightgcn (lr 5e-3)", "lightgcn", {"learning_rate": 5e-3}),
    ("mf (bpr)", "mf", {"loss": "bpr"}),
    ("ease", "ease", {}),
    ("itemknn", "itemknn", {}),
    ("ngcf-3", "ngcf", {"n_layers": 3}),
    ("attngraphrec (bpr)", "attngraphrec", {"loss": "bpr"}),
    ("ngcf-2", "ngcf", {"n_layers": 2}),
    ("ngcf-4", "ngcf", {"n_layers": 4}),
]


def run(label: str, name: str, params: dict[str, Any], split, carve, seed: int, device: str,
        max_epochs: int | None) -> dict[str, Any]:
    model = get(name, **params)
    select_s, chosen, valid_best = 0.0, {}, None
    if "epochs" in model.params():
        extra = {"device": device}
        if max_epochs:
            extra["epochs"] = max_epochs
        t0 = time.perf_counter()
        probe = get(name, **params, **extra).fit(carve.train, carve.test, rng=seed,
                                                 progress=False)
        select_s = time.perf_counter() - t0
        chosen = {"epochs": int(probe.best_epoch_), "patience": None}
        valid_best = max(h["valid_metric"] for h in probe.history_)
        model = get(name, **params, device=device, **chosen)
    t0 = time.perf_counter()
    model.fit(split.train, rng=seed, progress=False)
    fit_s = time.perf_counter() - t0
    res = evaluate(model, split, ks=(10,), relevance=0)
    history = getattr(model, "history_", [])
    epoch_s = [h["seconds"] for h in history]
    row = {"ndcg@10": res.summary["ndcg@10"], "recall@10": res.summary["recall@10"],
           "epochs": len(history) or None,
           "seconds_per_epoch": sum(epoch_s) / len(epoch_s) if epoch_s else None,
           "fit_seconds": fit_s, "epoch_selection_seconds": select_s or None,
           "valid_ndcg@10": valid_best}
    print(label, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
          flush=True)
    return {"row": row, "params": model.params(), "summary": res.summary, "history": history}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding ml-100k/")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--models", default=None, help="comma-separated labels to run")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="cap on the epochs of the selection run (time budget)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = resolve(RELEASES["ml-100k"], data_dir=args.data_dir)
    ds = load("ml-100k", data_dir=folder.parent)
    split = make_split(ds, "user-random", test_size=0.2, rng=args.seed)
    carve = user_random_split(split.train, test_size=0.1, rng=args.seed)
    wanted = None if args.models is None else set(args.models.split(","))
    path = args.out / "graph_ml100k.json"
    args.out.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"seed": args.seed, "torch_threads": torch.get_num_threads(),
                           "device": args.device, "split": split.describe(),
                           "max_epochs": args.max_epochs, "models": {}}
    if path.is_file() and wanted is not None:  # add to earlier runs of other models
        out["models"] = json.loads(path.read_text()).get("models", {})
    for label, name, params in MODELS:
        if wanted is not None and label not in wanted:
            continue
        out["models"][label] = run(label, name, params, split, carve, args.seed, args.device,
                                   args.max_epochs)
        path.write_text(json.dumps(out, indent=2, default=str))
    table = pd.DataFrame.from_dict({k: v["row"] for k, v in out["models"].items()},
                                   orient="index")
    print_table(table, title=f"ML-100K user-random 80/20, relevance 0, full ranking · "
                             f"seed {args.seed}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
