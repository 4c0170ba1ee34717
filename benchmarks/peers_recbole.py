"""Per-epoch training time of movierec's LightGCN and NeuMF next to RecBole's, on CPU.

RecBole (Zhao et al. 2021, `pip install recbole`) is timed in the same process as movierec, on the
same training set, with matched settings; only the training epoch is compared (no evaluation).

Data: ML-100K fold u1 (`movierec.data.load` + `make_split(..., "u1")`). Both libraries train on
u1.base (80,000 ratings of 943 users and 1,650 movies, every rating an implicit positive).
RecBole gets it as a pre-split benchmark (`benchmark_filename`: <name>.train/.valid/.test.inter
atomic files written to a temporary folder, never into the repository), so it does NOT re-split
8:1:1; its valid/test files hold the u1.test ratings of training users and movies, which only
its (unused) evaluation loaders read. The script checks that RecBole's training interactions
are exactly u1.base's (user, item) pairs and records both libraries' counts.

Matched settings (each an option below): embedding size 64; LightGCN with 3 layers, BPR, 2048
(user, positive) pairs per step, one uniform unseen negative per positive, L2 weight 1e-4 on the
batch's ego embeddings, Adam 5e-3; NeuMF with GMF and MLP embeddings of 64, MLP tower 128 → 128
→ 64 on [p_u; q_i], no dropout, binary cross-entropy with one uniform unseen negative per
positive, 1024 positives per step (RecBole: train_batch_size 2048 = 1024 positives + their 1024
negatives), Adam 1e-3, no weight decay. CPU, `--threads` threads (torch and BLAS; default 1).

What one epoch's seconds include, for both: shuffling, batching and negative sampling of the
whole training set, forward, loss, backward and the Adam step of every batch (and reading the
loss back each batch). movierec: the Trainer's per-epoch record `history_[e]["seconds"]` of a
`fit(..., valid=None)` with `patience=None` (no validation runs, so nothing else is in it).
RecBole: wall time of `Trainer._train_epoch(train_data, epoch)`, the call `Trainer.fit` makes
per epoch before its evaluation and checkpointing, which are left out. Excluded for both:
loading, id mapping, building the model (and the normalized adjacency), creating the optimizer.

Each repeat trains a fresh model per library for `--warmup` untimed epochs (torch's one-off
start-up, allocator growth) then `--epochs` timed ones; libraries alternate first/second across
repeats. s/epoch is the median wall time of every timed epoch (also min and mean); the ratio is
movierec ÷ RecBole (below 1: movierec is faster). The machine may be shared: the 1-minute load
average is recorded before every run, the median resists short bursts of load, and each epoch's
process CPU seconds (`time.process_time`; movierec: between two `on_epoch` callbacks) are
recorded too: with one thread they measure the work done, which waiting for a busy core does not
inflate, so on a loaded machine the CPU ratio is the steadier one.

Run with an environment holding both libraries (RecBole 1.2.1 needs old numpy/scipy/pandas:
benchmarks/requirements-recbole.txt). Without RecBole, or with versions it cannot run on, only
the movierec rows are timed and the reason is recorded. Writes
benchmarks/results/peers_recbole.json (`--quick`: peers_recbole_quick.json, a smoke run).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import torch
from _common import json_default, version

from movierec import __version__
from movierec.data import load
from movierec.data.dataset import Dataset
from movierec.io import atomic_write_text
from movierec.models import get
from movierec.split import Split, make_split

MODELS = ("lightgcn", "neumf")
RECBOLE_NAMES = {"lightgcn": "LightGCN", "neumf": "NeuMF"}
DATASET = "movierec-ml100k-u1"  # not "ml-100k": RecBole would merge its own ml-100k.yaml


# --- matched settings ----------------------------------------------------------------------------
def settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The shared settings of each model and their spelling in each library."""
    d = args.embedding_size
    tower = list(args.neumf_layers)
    lightgcn = {
        "shared": {"embedding_size": d, "n_layers": args.lightgcn_layers,
                   "positives_per_step": args.lightgcn_batch_size, "negatives_per_positive": 1,
                   "loss": "BPR", "l2_on_batch_ego_embeddings": args.lightgcn_reg,
                   "learning_rate": 5e-3},
        "movierec": {"embedding_size": d, "n_layers": args.lightgcn_layers,
                     "batch_size": args.lightgcn_batch_size, "learning_rate": 5e-3,
                     "reg": args.lightgcn_reg, "n_negatives": 1, "negatives": "uniform",
                     "sampling": "full"},
        "recbole": {"embedding_size": d, "n_layers": args.lightgcn_layers,
                    "train_batch_size": args.lightgcn_batch_size, "learning_rate": 5e-3,
                    "reg_weight": args.lightgcn_reg},
    }
    neumf = {
        "shared": {"embedding_size": d, "mlp_tower": [2 * d, *tower],
                   "positives_per_step": args.neumf_batch_size, "negatives_per_positive": 1,
                   "loss": "BCE", "dropout": 0.0, "learning_rate": 1e-3, "weight_decay": 0.0},
        "movierec": {"embedding_size": d, "layers": tuple(tower),
                     "batch_size": args.neumf_batch_size, "learning_rate": 1e-3,
                     "weight_decay": 0.0, "dropout": 0.0, "loss": "bce", "n_negatives": 1},
        # RecBole's batch counts rows: each positive brings its negative into the same batch.
        "recbole": {"mf_embedding_size": d, "mlp_embedding_size": d, "mlp_hidden_size": tower,
                    "dropout_prob": 0.0, "mf_train": True, "mlp_train": True,
                    "use_pretrain": False, "train_batch_size": 2 * args.neumf_batch_size,
                    "learning_rate": 1e-3},
    }
    return {"lightgcn": lightgcn, "neumf": neumf}


# --- movierec ------------------------------------------------------------------------------------
def time_movierec(name: str, params: dict[str, Any], train: Dataset, *, seed: int, warmup: int,
                  epochs: int) -> dict[str, Any]:
    """Per-epoch seconds of one movierec fit: the Trainer's own record of each epoch."""
    model = get(name, device="cpu", epochs=warmup + epochs, patience=None, **params)
    load_before = os.getloadavg()[0]
    cpu_marks = [time.process_time()]
    t0 = time.perf_counter()
    # The callback runs right after each epoch's record: CPU seconds between two calls are one
    # epoch's (the first difference also holds the setup: it is a warm-up epoch by default).
    model.fit(train, rng=seed, progress=False,
              on_epoch=lambda record: cpu_marks.append(time.process_time()))
    fit_s = time.perf_counter() - t0
    history = model.history_
    cpu = np.diff(cpu_marks).tolist()
    n = len(train.ratings)
    return {"epoch_seconds": [h["seconds"] for h in history[warmup:]],
            "epoch_cpu_seconds": cpu[warmup:], "first_cpu_includes_setup": warmup == 0,
            "warmup_seconds": [h["seconds"] for h in history[:warmup]],
            "epoch_loss": [h["train_loss"] for h in history],
            "fit_seconds_total": fit_s,
            "setup_seconds": fit_s - sum(h["seconds"] for h in history),
            "train_interactions": n, "batches_per_epoch": -(-n // params["batch_size"]),
            "embedding_rows": {"users": train.n_users, "items": train.n_items},
            "torch_threads": torch.get_num_threads(), "load_avg_1m": load_before}


# --- RecBole -------------------------------------------------------------------------------------
def recbole_problem() -> str | None:
    """Why RecBole cannot run in this environment, or None."""
    if importlib.util.find_spec("recbole") is None:
        return ("recbole is not installed: see benchmarks/requirements-recbole.txt (its own "
                "virtual environment)")
    import scipy

    needs = {"numpy": (np.__version__, (2,), "Config sets np.float = np.float_"),
             "scipy": (scipy.__version__, (1, 13), "LightGCN calls dok_matrix._update")}
    for module, (found, too_new, why) in needs.items():
        if _version_tuple(found) >= too_new:
            wanted = ".".join(map(str, too_new))
            return (f"RecBole 1.2 needs {module}<{wanted} ({why}), found {found}: see "
                    "benchmarks/requirements-recbole.txt")
    return None


def write_atomic_files(split: Split, folder: Path) -> dict[str, int]:
    """u1.base as <DATASET>.train.inter; u1.test rows of known users and items as valid/test."""
    train = split.train.ratings[["user_id", "item_id"]]
    test = split.test.ratings[["user_id", "item_id"]]
    test = test[test["user_id"].isin(train["user_id"]) & test["item_id"].isin(train["item_id"])]
    target = folder / DATASET
    target.mkdir(parents=True, exist_ok=True)
    header = ["user_id:token", "item_id:token"]
    counts = {}
    for part, frame in (("train", train), ("valid", test), ("test", test)):
        frame.to_csv(target / f"{DATASET}.{part}.inter", sep="\t", index=False, header=header)
        counts[part] = len(frame)
    return counts


def recbole_config(name: str, params: dict[str, Any], folder: Path, seed: int) -> dict[str, Any]:
    """RecBole's config_dict: the pre-split files, CPU, no progress, the matched settings."""
    return {
        "data_path": str(folder), "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]}, "use_gpu": False, "worker": 0,
        "show_progress": False, "checkpoint_dir": str(folder / "saved"), "seed": seed,
        "reproducibility": True, "weight_decay": 0.0, "clip_grad_norm": None,
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "alpha": 1.0,
                                  "dynamic": False, "candidate_num": 0},
        **params,
    }


def time_recbole(name: str, params: dict[str, Any], folder: Path, *, seed: int, warmup: int,
                 epochs: int, expected_pairs: set[tuple[int, int]]) -> dict[str, Any]:
    """Per-epoch seconds of RecBole's `Trainer._train_epoch` on the pre-split u1.base."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_seed

    t0 = time.perf_counter()
    # Config also reads `--key=value` words of sys.argv as settings: give it none of ours.
    with warnings.catch_warnings(), mock.patch.object(sys, "argv", sys.argv[:1]):
        # Deprecations inside RecBole (torch.sparse.FloatTensor, pandas chained fillna).
        warnings.simplefilter("ignore")
        config = Config(model=RECBOLE_NAMES[name], dataset=DATASET,
                        config_dict=recbole_config(name, params, folder, seed))
        init_seed(config["seed"], config["reproducibility"])
        train_data, _, _ = data_preparation(config, create_dataset(config))
        dataset = train_data._dataset
        model = get_model(config["model"])(config, dataset).to(config["device"])
        # Trainer creates a tensorboard folder in the working directory: keep it in `folder`.
        with contextlib.chdir(folder):
            trainer = Trainer(config, model)
    setup_s = time.perf_counter() - t0
    pairs = _recbole_pairs(dataset)
    load_before = os.getloadavg()[0]
    seconds, cpu, losses = [], [], []
    try:
        for epoch in range(warmup + epochs):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.cuda.amp.GradScaler is deprecated
                c0, t0 = time.process_time(), time.perf_counter()
                total = trainer._train_epoch(train_data, epoch, show_progress=False)
                seconds.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            losses.append(float(total) / len(train_data))  # RecBole returns the sum of batches
    finally:
        trainer.tensorboard.close()
    return {"epoch_seconds": seconds[warmup:], "epoch_cpu_seconds": cpu[warmup:],
            "warmup_seconds": seconds[:warmup],
            "epoch_loss": losses, "setup_seconds": setup_s,
            "train_interactions": len(pairs), "same_pairs_as_movierec": pairs == expected_pairs,
            "batches_per_epoch": len(train_data),
            "rows_per_step": int(train_data.step * train_data.times),
            "embedding_rows": {"users": int(dataset.user_num), "items": int(dataset.item_num),
                               "note": "RecBole reserves id 0 for padding"},
            "device": str(config["device"]), "torch_threads": torch.get_num_threads(),
            "load_avg_1m": load_before}


def _recbole_pairs(dataset: Any) -> set[tuple[int, int]]:
    """RecBole's training (user, item) pairs, mapped back to the original MovieLens ids."""
    users = dataset.id2token("user_id", dataset.inter_feat["user_id"].numpy())
    items = dataset.id2token("item_id", dataset.inter_feat["item_id"].numpy())
    return set(zip(users.astype(np.int64).tolist(), items.astype(np.int64).tolist(), strict=True))


# --- the run -------------------------------------------------------------------------------------
def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """s/epoch over every timed epoch of every repeat."""
    secs = [s for r in runs for s in r["epoch_seconds"]]
    cpu = [s for r in runs for s in r["epoch_cpu_seconds"]]
    return {"s_per_epoch_median": statistics.median(secs), "s_per_epoch_min": min(secs),
            "s_per_epoch_mean": statistics.fmean(secs), "timed_epochs": len(secs),
            "cpu_s_per_epoch_median": statistics.median(cpu)}


def run_model(name: str, setting: dict[str, Any], split: Split, folder: Path | None,
              args: argparse.Namespace) -> dict[str, Any]:
    """Repeats of both libraries (alternating which goes first) for one model."""
    runs: dict[str, list[dict[str, Any]]] = {"movierec": [], "recbole": []}
    pairs = set(zip(split.train.ratings["user_id"].astype(np.int64).tolist(),
                    split.train.ratings["item_id"].astype(np.int64).tolist(), strict=True))
    for rep in range(args.repeats):
        order = ["movierec", "recbole"] if rep % 2 == 0 else ["recbole", "movierec"]
        for library in order:
            if library == "recbole" and folder is None:
                continue
            seed = args.seed + rep
            if library == "movierec":
                run = time_movierec(name, setting["movierec"], split.train, seed=seed,
                                    warmup=args.warmup, epochs=args.epochs)
            else:
                assert folder is not None
                run = time_recbole(name, setting["recbole"], folder, seed=seed,
                                   warmup=args.warmup, epochs=args.epochs, expected_pairs=pairs)
            runs[library].append(run)
            print(f"  {name} · {library} · repeat {rep + 1}: "
                  + " ".join(f"{s:.3f}" for s in run["epoch_seconds"]) + " s", flush=True)
    out: dict[str, Any] = {"settings": setting}
    for library, done in runs.items():
        if done:
            out[library] = {**summarize(done), "runs": done}
    if runs["recbole"]:
        mine, peer = out["movierec"], out["recbole"]
        out["ratio_median"] = mine["s_per_epoch_median"] / peer["s_per_epoch_median"]
        out["ratio_min"] = mine["s_per_epoch_min"] / peer["s_per_epoch_min"]
        out["ratio_cpu_median"] = mine["cpu_s_per_epoch_median"] / peer["cpu_s_per_epoch_median"]
    return out


def show(report: dict[str, Any]) -> None:
    rows = []
    for name in report["models"]:
        res = report["results"][name]
        for library in ("movierec", "recbole"):
            if library not in res:
                continue
            r = res[library]
            last = r["runs"][-1]
            mine = library == "movierec"
            rows.append({"model": name, "library": library,
                         "s/epoch": r["s_per_epoch_median"], "min": r["s_per_epoch_min"],
                         "mean": r["s_per_epoch_mean"], "cpu s/epoch": r["cpu_s_per_epoch_median"],
                         "epochs": r["timed_epochs"], "train inter.": last["train_interactions"],
                         "batches": last["batches_per_epoch"],
                         "ratio": res.get("ratio_median", np.nan) if mine else np.nan,
                         "ratio (min)": res.get("ratio_min", np.nan) if mine else np.nan,
                         "ratio (cpu)": res.get("ratio_cpu_median", np.nan) if mine else np.nan})
    frame = pd.DataFrame(rows).set_index(["model", "library"])
    print(f"\nper-epoch training seconds · ML-100K u1.base · {report['threads']} thread(s) · CPU"
          + (" · QUICK (not comparable)" if report["quick"] else ""))
    print(frame.to_string(float_format=lambda x: f"{x:.3f}", na_rep=""))
    print("s/epoch, min, mean: wall seconds; cpu s/epoch: process CPU seconds (median), which "
          "waiting for a shared core does not inflate")
    print("ratio = movierec ÷ RecBole of the medians (below 1: movierec is faster); (min): of the "
          "fastest epochs; (cpu): of the CPU-second medians")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="models to time (default: both)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and BLAS threads for both libraries (default 1)")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per run (default 5)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed epochs before them in every run (default 1)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh runs per library and model, alternating which library goes "
                             "first (default 3)")
    parser.add_argument("--seed", type=int, default=42, help="seed of repeat 1 (+1 per repeat)")
    parser.add_argument("--embedding-size", type=int, default=64,
                        help="embedding size of every table (default 64)")
    parser.add_argument("--lightgcn-layers", type=int, default=3,
                        help="LightGCN propagation layers (default 3, movierec's default)")
    parser.add_argument("--lightgcn-batch-size", type=int, default=2048,
                        help="LightGCN (user, positive) pairs per step (default 2048)")
    parser.add_argument("--lightgcn-reg", type=float, default=1e-4,
                        help="LightGCN L2 weight on the batch's ego embeddings (default 1e-4)")
    parser.add_argument("--neumf-layers", type=int, nargs="+", default=[128, 64],
                        help="NeuMF MLP output widths after the 2·d input (default 128 64, "
                             "RecBole's default)")
    parser.add_argument("--neumf-batch-size", type=int, default=1024,
                        help="NeuMF positives per step; RecBole's train_batch_size is twice "
                             "this, as it counts the negatives too (default 1024)")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("MOVIEREC_DATA_DIR", "/work/shared/datasets")),
                        help="folder holding ml-100k/ (default $MOVIEREC_DATA_DIR)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 warm-up + 1 timed epoch, 1 repeat")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="folder for the JSON (default benchmarks/results)")
    args = parser.parse_args()
    for key in ("threads", "epochs", "repeats", "embedding_size", "lightgcn_batch_size",
                "neumf_batch_size"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    if args.warmup < 0 or args.lightgcn_layers < 0:
        parser.error("--warmup and --lightgcn-layers must be >= 0")
    if args.quick:
        args.epochs, args.warmup, args.repeats = 1, 1, 1
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    ds = load("ml-100k", data_dir=args.data_dir)
    split = make_split(ds, "u1", data_dir=args.data_dir / "ml-100k")
    problem = recbole_problem()
    report: dict[str, Any] = {
        "data": {"dataset": "ml-100k", "split": split.describe(),
                 "train_ratings": len(split.train.ratings), "train_users": split.train.n_users,
                 "train_items": split.train.n_items},
        "models": args.models, "threads": args.threads, "epochs": args.epochs,
        "warmup": args.warmup, "repeats": args.repeats, "seed": args.seed, "quick": args.quick,
        "timed": "movierec: Trainer history_[e]['seconds'] (fit with valid=None); RecBole: "
                 "Trainer._train_epoch wall time; both: shuffle + negative sampling + forward/"
                 "backward/Adam of every batch, no evaluation",
        "recbole_skipped": problem,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0], "load_avg_start": os.getloadavg()},
        "versions": {"movierec": __version__, "torch": torch.__version__,
                     **{m: version(m) for m in ("recbole", "numpy", "scipy", "pandas")}},
    }
    if problem:
        print(f"RecBole skipped: {problem}", flush=True)
    with _limit_blas(args.threads), tempfile.TemporaryDirectory(prefix="recbole-") as tmp:
        folder = None
        if problem is None:
            folder = Path(tmp)
            report["data"]["recbole_files"] = write_atomic_files(split, folder)
        all_settings = settings(args)
        report["results"] = {}
        for name in args.models:
            report["results"][name] = run_model(name, all_settings[name], split, folder, args)
    report["machine"]["load_avg_end"] = os.getloadavg()
    show(report)
    print(f"load average (1, 5, 15 min): start {report['machine']['load_avg_start']}, "
          f"end {report['machine']['load_avg_end']} on {os.cpu_count()} CPUs")
    out = args.out / ("peers_recbole_quick.json" if args.quick else "peers_recbole.json")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=2, default=json_default))
    print(f"wrote {out}")


def _limit_blas(threads: int) -> contextlib.AbstractContextManager[Any]:
    """threadpoolctl's BLAS/OpenMP limit when installed (RecBole's scikit-learn brings it)."""
    if importlib.util.find_spec("threadpoolctl") is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


if __name__ == "__main__":
    main()
