"""Graph recommenders (NGCF, LightGCN, AttnGraphRec) on ML-100K, per-user random 80/20, seed 42.

Relevance threshold 0, full ranking (`evaluate(model, split, ks=(10,), relevance=0)`), next to
EASE, ItemKNN and MF (loss="bpr"). As in ncf_ml100k.py, the number of epochs of every neural
model is chosen by early stopping (validation NDCG@10) on a per-user random 10% carve-out of the
training part; the model is then refitted on the whole training part for that many epochs, so
every model sees the same training data. Prints a table (NDCG@10, Recall@10, seconds per epoch)
and writes benchmarks/results/graph_ml100k.json.

`--table sampling` compares full-graph training with mini-batch training on neighbour-sampled
subgraphs (`sampling="neighbor"`, fanout `--num-neighbors`) for LightGCN, NGCF with 2, 3 and 4
layers and AttnGraphRec with loss="mse", under the same protocol and epoch cap (`--max-epochs`,
default 30 for this table), and writes graph_sampling_ml100k.json. Rating models also get RMSE:
on the 80/20 split's test ratings, and on ML-100K's u1 fold (u1.base minus a 10% carve-out for
early stopping, evaluated on u1.test) unless `--no-u1`. Scoring always uses the full graph.

    MOVIEREC_DATA_DIR=/work/shared/datasets python benchmarks/graph_ml100k.py [--models a,b]
`--table speed` times training only, full vs sampled, with the runs interleaved so that both
see the same machine load: seconds per epoch on ML-100K (`--speed-epochs` epochs × `--rounds`
rounds per configuration, median), and milliseconds per step (batch 2048, median of
`--steps` steps) on a synthetic graph of ML-1M's size (6,040 users, 3,706 items, 1M edges with
skewed degrees), where the sampled subgraph is a small part of the graph. Writes
graph_speed_ml100k.json.

    MOVIEREC_DATA_DIR=/work/shared/datasets python benchmarks/graph_ml100k.py --table sampling
    MOVIEREC_DATA_DIR=/work/shared/datasets python benchmarks/graph_ml100k.py --table speed
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from movierec.cli import print_table
from movierec.data import load
from movierec.data.dataset import Dataset
from movierec.data.movielens import resolve
from movierec.data.releases import RELEASES
from movierec.evaluate import evaluate
from movierec.io import atomic_write_text, json_default
from movierec.models import get
from movierec.split import make_split, predefined_split, user_random_split

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


def sampling_models(num_neighbors: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Full-graph and neighbour-sampled variants of the graph models (the sampling table)."""
    bases: list[tuple[str, str, dict[str, Any]]] = [
        ("lightgcn", "lightgcn", {}),
        ("ngcf-2", "ngcf", {"n_layers": 2}),
        ("ngcf-3", "ngcf", {"n_layers": 3}),
        ("ngcf-4", "ngcf", {"n_layers": 4}),
        ("attngraphrec (mse)", "attngraphrec", {"loss": "mse"}),
    ]
    out = []
    for label, name, params in bases:
        out.append((f"{label} · full", name, {**params, "sampling": "full"}))
        out.append((f"{label} · neighbor-{num_neighbors}", name,
                    {**params, "sampling": "neighbor", "num_neighbors": num_neighbors}))
    return out


def run(label: str, name: str, params: dict[str, Any], split, carve, seed: int, device: str,
        max_epochs: int | None) -> dict[str, Any]:
    model = get(name, **params)
    select_s, chosen, valid_best, valid_key = 0.0, {}, None, "valid_ndcg@10"
    if "epochs" in model.params():
        extra = {"device": device}
        if max_epochs:
            extra["epochs"] = max_epochs
        t0 = time.perf_counter()
        probe = get(name, **params, **extra).fit(carve.train, carve.test, rng=seed,
                                                 progress=False)
        select_s = time.perf_counter() - t0
        chosen = {"epochs": int(probe.best_epoch_), "patience": None}
        pick = min if probe.objective == "rating" else max  # RMSE vs NDCG@10
        valid_best = pick(h["valid_metric"] for h in probe.history_)
        valid_key = f"valid_{probe.history_[0]['metric']}"
        model = get(name, **params, device=device, **chosen)
    t0 = time.perf_counter()
    model.fit(split.train, rng=seed, progress=False)
    fit_s = time.perf_counter() - t0
    res = evaluate(model, split, ks=(10,), relevance=0)
    history = getattr(model, "history_", [])
    epoch_s = [h["seconds"] for h in history]
    row = {"ndcg@10": res.summary["ndcg@10"], "recall@10": res.summary["recall@10"],
           # RMSE only where the model regresses ratings (a BPR NGCF's clipped score is no rating)
           **({"rmse": res.summary["rmse"]} if getattr(model, "loss", None) == "mse" else {}),
           "epochs": len(history) or None,
           "seconds_per_epoch": sum(epoch_s) / len(epoch_s) if epoch_s else None,
           "fit_seconds": fit_s, "epoch_selection_seconds": select_s or None,
           valid_key: valid_best}
    print(label, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
          flush=True)
    return {"row": row, "params": model.params(), "summary": res.summary, "history": history}


def u1_rmse(name: str, params: dict[str, Any], folder: Path, seed: int, device: str,
            max_epochs: int | None) -> dict[str, Any]:
    """RMSE on u1.test of a rating model early-stopped on a 10% carve-out of u1.base."""
    ds = load("ml-100k", data_dir=folder.parent)
    split = predefined_split(ds, "u1", data_dir=folder, valid_size=0.1, rng=seed)
    extra: dict[str, Any] = {"device": device, **({"epochs": max_epochs} if max_epochs else {})}
    t0 = time.perf_counter()
    model = get(name, **params, **extra).fit(split.train, split.valid, rng=seed, progress=False)
    fit_s = time.perf_counter() - t0
    res = evaluate(model, split, ks=(10,), relevance=4.0)
    out = {"u1_rmse": res.summary["rmse"], "u1_mae": res.summary["mae"],
           "u1_best_epoch": int(model.best_epoch_), "u1_fit_seconds": fit_s}
    print("  u1", {k: round(v, 4) for k, v in out.items()}, flush=True)
    return out


def synthetic_ml1m(seed: int) -> Dataset:
    """A random bipartite graph of ML-1M's size: 6,040 users, 3,706 items, 1,000,000 distinct
    edges; user activity log-normal, item popularity Zipf-like (for timing only)."""
    rng = np.random.default_rng(seed)
    n_users, n_items, n_edges = 6040, 3706, 1_000_000
    activity = rng.lognormal(0.0, 1.0, n_users)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < n_edges:
        u = rng.choice(n_users, n_edges, p=activity / activity.sum())
        i = rng.choice(n_items, n_edges, p=popularity / popularity.sum())
        keys = np.unique(np.concatenate([keys, u.astype(np.int64) * n_items + i]))
    keys = rng.permutation(keys)[:n_edges]
    frame = pd.DataFrame({"user_id": (keys // n_items).astype(np.int32),
                          "item_id": (keys % n_items).astype(np.int32),
                          "rating": np.full(n_edges, 4.0, np.float32),
                          "timestamp": np.arange(n_edges, dtype=np.int64)})
    return Dataset(frame, name="synthetic-ml1m-size", rating_scale=(1.0, 5.0))


def step_ms(name: str, params: dict[str, Any], train: Dataset, n_steps: int, seed: int,
            device: str) -> list[float]:
    """Milliseconds of each of `n_steps` training steps (sampling included), through the same
    hooks the Trainer calls (its epoch loop would run 489 steps per epoch on 1M edges)."""
    model = get(name, **params, device=device)
    model._setup(train)
    model._prepare(train)
    generator = torch.Generator().manual_seed(seed)
    dev = torch.device(device if device != "auto" else "cpu")
    module = model.build_module().to(dev).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    batches = model.batches(model.training_data(train), generator)
    times = []
    for _ in range(n_steps):
        t0 = time.perf_counter()
        batch = {k: v.to(dev) for k, v in next(batches).items()}
        optimizer.zero_grad(set_to_none=True)
        model.batch_loss(module, batch).backward()
        optimizer.step()
        times.append(1000 * (time.perf_counter() - t0))
    return times


def speed(split, args: argparse.Namespace) -> dict[str, Any]:
    """The speed table (see the module docstring); full and sampled runs alternate."""
    configs = sampling_models(args.num_neighbors)
    epochs: dict[str, list[float]] = {label: [] for label, _, _ in configs}
    for r in range(args.rounds):
        for label, name, params in configs:
            model = get(name, **params, epochs=args.speed_epochs, patience=None,
                        device=args.device).fit(split.train, rng=args.seed + r, progress=False)
            epochs[label] += [h["seconds"] for h in model.history_]
            print(label, "s/epoch", [round(x, 2) for x in epochs[label]], flush=True)
    synthetic = synthetic_ml1m(args.seed)
    steps: dict[str, list[float]] = {}
    for label, name, params in configs:
        if name == "attngraphrec":  # same propagation as LightGCN; its MLP costs the same
            continue
        steps[label] = step_ms(name, params, synthetic, args.steps, args.seed, args.device)
        print(label, "ms/step (synthetic ML-1M size)", round(float(np.median(steps[label])), 1),
              flush=True)
    rows = {label: {"ml100k_seconds_per_epoch": float(np.median(epochs[label])),
                    "ml1m_size_ms_per_step": (float(np.median(steps[label]))
                                              if label in steps else None)}
            for label, _, _ in configs}
    return {"rows": rows, "epoch_seconds": epochs, "step_ms": steps,
            "synthetic": {"users": synthetic.n_users, "items": synthetic.n_items,
                          "edges": synthetic.n_ratings}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding ml-100k/")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--models", default=None, help="comma-separated labels to run")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="cap on the epochs of the selection run (time budget)")
    parser.add_argument("--table", choices=("main", "sampling", "speed"), default="main",
                        help="main: the models above; sampling: full vs neighbour-sampled; "
                             "speed: training time only, full vs sampled interleaved")
    parser.add_argument("--speed-epochs", type=int, default=2, help="epochs per run (speed)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per configuration (speed)")
    parser.add_argument("--steps", type=int, default=15,
                        help="timed steps per configuration on the synthetic graph (speed)")
    parser.add_argument("--num-neighbors", type=int, default=10,
                        help="fanout per node and hop of the sampled rows (--table sampling)")
    parser.add_argument("--no-u1", action="store_true",
                        help="skip the u1 RMSE of rating models (--table sampling)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    sampling = args.table == "sampling"
    if sampling and args.max_epochs is None:
        args.max_epochs = 30
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = resolve(RELEASES["ml-100k"], data_dir=args.data_dir)
    ds = load("ml-100k", data_dir=folder.parent)
    split = make_split(ds, "user-random", test_size=0.2, rng=args.seed)
    carve = user_random_split(split.train, test_size=0.1, rng=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.table == "speed":
        result = speed(split, args)
        path = args.out / "graph_speed_ml100k.json"
        atomic_write_text(path, json.dumps(
            {"seed": args.seed, "torch_threads": torch.get_num_threads(), "device": args.device,
             "num_neighbors": args.num_neighbors, "speed_epochs": args.speed_epochs,
             "rounds": args.rounds, "steps": args.steps, **result},
            indent=2, default=json_default))
        print_table(pd.DataFrame.from_dict(result["rows"], orient="index"),
                    title="training time: full graph vs neighbour-sampled subgraphs")
        print(f"wrote {path}")
        return
    wanted = None if args.models is None else set(args.models.split(","))
    path = args.out / ("graph_sampling_ml100k.json" if sampling else "graph_ml100k.json")
    out: dict[str, Any] = {"seed": args.seed, "torch_threads": torch.get_num_threads(),
                           "device": args.device, "split": split.describe(),
                           "max_epochs": args.max_epochs, "models": {}}
    if path.is_file() and wanted is not None:  # add to earlier runs of other models
        out["models"] = json.loads(path.read_text()).get("models", {})
    for label, name, params in sampling_models(args.num_neighbors) if sampling else MODELS:
        if wanted is not None and label not in wanted:
            continue
        out["models"][label] = run(label, name, params, split, carve, args.seed, args.device,
                                   args.max_epochs)
        if sampling and params.get("loss") == "mse" and not args.no_u1:
            u1 = u1_rmse(name, params, folder, args.seed, args.device, args.max_epochs)
            out["models"][label]["row"].update(u1)
        atomic_write_text(path, json.dumps(out, indent=2, default=json_default))
    table = pd.DataFrame.from_dict({k: v["row"] for k, v in out["models"].items()},
                                   orient="index")
    cap = f" · epochs ≤ {args.max_epochs}" if args.max_epochs else ""
    print_table(table, title=f"ML-100K user-random 80/20, relevance 0, full ranking · "
                             f"seed {args.seed}{cap}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
