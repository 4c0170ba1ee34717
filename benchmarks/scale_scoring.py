"""Full ranking at MovieLens-25M size: 160k users x 60k items, about 25M interactions (synthetic).

Measures, each step in its own subprocess so that its peak RSS is its own:

(a) `recommend` top-10 for every user under two memory budgets (`max_memory_mb`), with MF scoring
    through its real torch path from random factors (0 epochs: training is not what is timed) and
    with pop (fitted; its fit only counts);
(b) full-ranking `evaluate` on a held-out 20% (relevance 4, k = 5, 10, 20), the same two models;
(c) ItemKNN (fit and recommend for every user), UserKNN (fit, under a time limit) and EASE (fit)
    at that size: time and memory where they cope, the refusal message where they refuse;
(d) the fit of every other model family at that size (`--fit-models`, default pop, bias, svd,
    ials, mf+sparse (MF with sparse_updates), mf, neumf+sparse, neumf, lightgcn), with the
    parameters in FIT_PARAMS: the neural models train ONE epoch (their fit time is that epoch
    times the epochs you ask for), LightGCN with neighbour sampling (full-graph propagation
    costs the whole 20M-edge graph per mini-batch).

Peak RSS is the child's high-water mark (/proc/self/status VmHWM), reset just before the timed
step, so "peak extra" is the memory the step itself added on top of the data and model. The
parent also polls the child, so a step stopped by the time limit still reports its peak so far.
At 60k items every block array is larger than glibc's largest mmap threshold (32 MB), so it goes
back to the kernel when freed and peak RSS tracks the data; with `--quick` (6k items) freed
blocks may stay in the heap and RSS can exceed the budget (MALLOC_TRIM_THRESHOLD_=0 shows the
data's own peak).

The data are built directly with numpy (no CSV): user activity long-tailed (at least 20 items,
lognormal), item popularity Zipf-like (1 / (rank + 10)); ratings uniform 1..5; a random 20% of the
interactions is the test set. Prints a table and writes benchmarks/results/scale_scoring.json
(`--quick`: 16k x 6k x 1M, scale_scoring_quick.json, a smoke run). Timings on a shared machine
are rough: the load average is recorded with every step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SIZES = {
    "full": {"n_users": 160_000, "n_items": 60_000, "n_ratings": 25_000_000},
    "quick": {"n_users": 16_000, "n_items": 6_000, "n_ratings": 1_000_000},
}
# Parameters of the (d) fits: one epoch for the neural models, on the CPU. A label "name+variant"
# fits model `name` with its own parameters.
FIT_PARAMS: dict[str, dict[str, Any]] = {
    "mf": {"epochs": 1, "device": "cpu"},
    "mf+sparse": {"epochs": 1, "device": "cpu", "sparse_updates": True},
    "neumf": {"epochs": 1, "device": "cpu"},
    "neumf+sparse": {"epochs": 1, "device": "cpu", "sparse_updates": True},
    "lightgcn": {"epochs": 1, "sampling": "neighbor", "device": "cpu"},
}
FIT_MODELS = "pop,bias,svd,ials,mf+sparse,mf,neumf+sparse,neumf,lightgcn"
# Draws per wanted interaction: repeated (user, item) draws are dropped, leaving about n_ratings.
INFLATE = 1.18
TEST_SHARE = 0.2


# --- data --------------------------------------------------------------------------------------
def synthetic_interactions(n_users: int, n_items: int, n_ratings: int, seed: int
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(user codes, item codes) int32, sorted and distinct, about `n_ratings` of them.

    Every user has at least 20 items; activity beyond that is lognormal (σ 1.25), capped at a
    quarter of the catalog; item popularity is 1 / (rank + 10) over a random order of items.
    """
    rng = np.random.default_rng(seed)
    extra = rng.lognormal(mean=0.0, sigma=1.25, size=n_users)
    wanted = 20 + np.floor(extra / extra.sum() * max(0, n_ratings - 20 * n_users))
    degree = np.minimum(max(20, n_items // 4), wanted).astype(np.int64)
    cdf = np.cumsum(rng.permutation(1.0 / (np.arange(n_items) + 10.0)))
    cdf /= cdf[-1]
    users = np.repeat(np.arange(n_users, dtype=np.int64), np.ceil(degree * INFLATE).astype(int))
    items = np.minimum(np.searchsorted(cdf, rng.random(len(users))), n_items - 1)
    keys = np.unique(users * n_items + items)
    return (keys // n_items).astype(np.int32), (keys % n_items).astype(np.int32)


def write_data(path: Path, size: dict[str, int], seed: int) -> dict[str, Any]:
    """Generate the interactions, ratings and the 80/20 split into an .npz (no pickle)."""
    t0 = time.perf_counter()
    users, items = synthetic_interactions(size["n_users"], size["n_items"], size["n_ratings"],
                                          seed)
    rng = np.random.default_rng(seed + 1)
    ratings = rng.integers(1, 6, size=len(users)).astype(np.float32)
    test = rng.random(len(users)) < TEST_SHARE
    np.savez(path, users=users + 1, items=items + 1, ratings=ratings, test=test)
    train_users = np.bincount(users[~test], minlength=size["n_users"]).astype(np.float64)
    train_items = np.bincount(items[~test], minlength=size["n_items"]).astype(np.float64)
    return {
        **size, "interactions": len(users), "train_ratings": int((~test).sum()),
        "test_ratings": int(test.sum()), "seed": seed,
        "user_degree_median": float(np.median(train_users)),
        "user_degree_max": int(train_users.max()), "item_degree_max": int(train_items.max()),
        # Products an item-item (user-user) similarity must multiply: Σ over users (items) of
        # the square of their number of training interactions.
        "itemknn_pairs": float((train_users**2).sum()),
        "userknn_pairs": float((train_items**2).sum()),
        "generate_seconds": round(time.perf_counter() - t0, 1),
    }


def load_split(path: Path):  # noqa: ANN201 - movierec.split.Split, imported lazily
    """The train/test Split of the .npz written by `write_data`."""
    import pandas as pd

    from movierec.data.dataset import Dataset
    from movierec.split import Split

    with np.load(path, allow_pickle=False) as npz:
        frame = pd.DataFrame({"user_id": npz["users"], "item_id": npz["items"],
                              "rating": npz["ratings"]})
        test = npz["test"]
    train = Dataset(frame[~test].reset_index(drop=True), name="synthetic-train",
                    rating_scale=(1.0, 5.0))
    held = Dataset(frame[test].reset_index(drop=True), name="synthetic-test",
                   rating_scale=(1.0, 5.0))
    return Split(train=train, test=held, name="random-20%")


def mf_random_factors(train, seed: int):  # noqa: ANN001, ANN201 - Dataset -> MF
    """An MF model set up on `train` with random factors (N(0, 0.1²)) and 0 epochs of training.

    The scoring path (torch matmul and biases per user block) is MF's own; only `fit`'s
    training loop is skipped, since training is not what this benchmark times.
    """
    import torch

    from movierec.models.mf import MF

    model = MF(embedding_size=64, device="cpu")
    model._setup(train)
    model._prepare(train)
    model.device_ = torch.device("cpu")
    torch.manual_seed(seed)
    model.module_ = model.build_module()
    with torch.no_grad():
        for table in (model.module_.user_factors, model.module_.item_factors):
            table.weight.normal_(0.0, 0.1)
    model.history_ = []
    return model


# --- memory ------------------------------------------------------------------------------------
def _status_mb(field: str, pid: int | str = "self") -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else float("nan")


def reset_peak() -> None:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux ≥ 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


# --- one step, in a child process --------------------------------------------------------------
def child(step: str, data: Path, seed: int) -> dict[str, Any]:
    """Run one measured step; returns its record (printed as JSON on the last line)."""
    import torch

    from movierec.errors import MovieRecError
    from movierec.evaluate import evaluate
    from movierec.models import get

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    split = load_split(data)
    split.train.matrix("binary")
    kind, model_name, budget = (step.split(":") + ["", ""])[:3]
    rec: dict[str, Any] = {"step": step, "setup_seconds": 0.0}
    if kind in ("recommend", "evaluate"):
        model = (mf_random_factors(split.train, seed) if model_name == "mf"
                 else get(model_name).fit(split.train, progress=False))
    rec["setup_seconds"] = round(time.perf_counter() - t0, 1)
    rec["load_before"] = os.getloadavg()[0]
    base = _status_mb("VmRSS")
    reset_peak()
    t0 = time.perf_counter()
    if kind == "recommend":
        users = split.train.user_vocab.index
        recs = model.recommend(users, k=10, max_memory_mb=float(budget))
        rec.update(users=len(users), rows=len(recs),
                   output_mb=round(recs.memory_usage(deep=True).sum() / 1e6, 1))
    elif kind == "evaluate":
        res = evaluate(model, split, ks=(5, 10, 20), relevance=4.0, max_memory_mb=float(budget))
        rec.update(users=res.counts["users_with_lists"],
                   ndcg10=round(res.summary["ndcg@10"], 4), timings=res.timings)
    elif kind == "fit":
        try:
            params = FIT_PARAMS.get(model_name, {})
            rec["params"] = params
            model = get(model_name.split("+")[0], **params).fit(split.train, progress=False)
            rec["fitted"] = True
            if model_name == "itemknn" and budget:
                t1 = time.perf_counter()
                rec["fit_seconds"] = round(t1 - t0, 1)
                rec["fit_peak_extra_mb"] = round(_status_mb("VmHWM") - base, 1)
                recs = model.recommend(split.train.user_vocab.index, k=10,
                                       max_memory_mb=float(budget))
                rec["recommend_seconds"] = round(time.perf_counter() - t1, 1)
                rec["rows"] = len(recs)
        except MovieRecError as err:
            rec.update(fitted=False, refused=str(err))
    else:
        raise SystemExit(f"unknown step {step!r}")
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    rec["rss_before_mb"] = round(base, 1)
    rec["peak_rss_mb"] = round(_status_mb("VmHWM"), 1)
    rec["peak_extra_mb"] = round(rec["peak_rss_mb"] - base, 1)
    rec["load_after"] = os.getloadavg()[0]
    if kind == "recommend":
        rec["users_per_second"] = round(rec["users"] / rec["seconds"])
    return rec


def run_child(step: str, data: Path, seed: int, threads: int, limit: float) -> dict[str, Any]:
    """Run `step` in a fresh interpreter; poll its peak RSS; stop it after `limit` seconds."""
    env = {**os.environ, **{v: str(threads) for v in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    cmd = [sys.executable, __file__, "--child", step, "--data", str(data), "--seed", str(seed)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    peak = float("nan")
    while proc.poll() is None:
        if time.perf_counter() - t0 > limit:
            proc.kill()
            proc.wait()
            return {"step": step, "stopped_after_seconds": round(limit),
                    "peak_rss_mb": round(peak, 1), "load_after": os.getloadavg()[0]}
        try:
            peak = float(np.nanmax([peak, _status_mb("VmHWM", proc.pid)]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.5)
    out, err = proc.communicate()
    if proc.returncode != 0:
        return {"step": step, "error": err.strip().splitlines()[-1:] or [f"rc {proc.returncode}"]}
    return json.loads(out.strip().splitlines()[-1])


# --- parent ------------------------------------------------------------------------------------
def steps(budgets: list[float], eval_budget: float, fit_models: list[str]) -> list[str]:
    out = [f"recommend:{m}:{b:g}" for m in ("mf", "pop") for b in budgets]
    out += [f"evaluate:{m}:{eval_budget:g}" for m in ("mf", "pop")]
    out += [f"fit:itemknn:{eval_budget:g}", "fit:ease", "fit:userknn"]
    return out + [f"fit:{m}" for m in fit_models]


def show(rows: list[dict[str, Any]]) -> None:
    cols = ["step", "seconds", "users_per_second", "peak_extra_mb", "rss_before_mb", "load_before"]
    print("\n" + " | ".join(f"{c:>16}" for c in cols))
    for row in rows:
        cells = []
        for c in cols:
            v = row.get(c, "")
            cells.append(f"{v:>16}" if not isinstance(v, float) else f"{v:>16.1f}")
        print(" | ".join(cells))
        for key in ("refused", "error", "stopped_after_seconds", "fit_seconds", "peak_rss_mb",
                    "recommend_seconds", "ndcg10", "timings"):
            if key in row:
                print(f"{'':>16}   {key}: {row[key]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="16k users x 6k items x 1M interactions: a smoke run")
    parser.add_argument("--seed", type=int, default=42, help="seed of the data and MF factors")
    parser.add_argument("--budgets", type=float, nargs="+", default=[200.0, 1000.0],
                        help="max_memory_mb values for recommend (default 200 1000)")
    parser.add_argument("--eval-budget", type=float, default=500.0,
                        help="max_memory_mb of evaluate and of ItemKNN's recommend (default 500)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP/torch threads of every step (default 1)")
    parser.add_argument("--limit", type=float, default=1800.0,
                        help="seconds after which a step is stopped (default 1800)")
    parser.add_argument("--userknn-limit", type=float, default=600.0,
                        help="seconds after which UserKNN's fit is stopped (default 600)")
    parser.add_argument("--fit-models", default=FIT_MODELS,
                        help=f"models whose fit is timed in (d), comma-separated (default "
                        f"{FIT_MODELS}; parameters in FIT_PARAMS)")
    parser.add_argument("--only", nargs="+", default=None,
                        help="run only the steps whose name starts with one of these")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="folder of the JSON results")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data, args.seed)))
        return
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")

    from movierec import __version__
    from movierec.io import atomic_write_text
    from movierec.models.base import BYTES_PER_SCORE

    size = SIZES["quick" if args.quick else "full"]
    load_start = os.getloadavg()
    report: dict[str, Any] = {
        "quick": args.quick, "threads": args.threads, "bytes_per_score": BYTES_PER_SCORE,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_avg_start": load_start},
        "version": __version__,
        "notes": "MF: random factors, 0 epochs (MF's own torch scoring path); pop: fitted. "
                 "peak_extra_mb: peak RSS of the step above the RSS before it (data + model).",
    }
    with tempfile.TemporaryDirectory(prefix="movierec-scale-") as tmp:
        data = Path(tmp) / "data.npz"
        print(f"generating {size} ...", flush=True)
        report["data"] = write_data(data, size, args.seed)
        print(json.dumps(report["data"]), flush=True)
        rows = []
        fit_models = [m.strip() for m in args.fit_models.split(",") if m.strip()]
        for step in steps(args.budgets, args.eval_budget, fit_models):
            if args.only and not any(step.startswith(p) for p in args.only):
                continue
            limit = args.userknn_limit if step == "fit:userknn" else args.limit
            print(f"{step} ...", flush=True)
            rows.append(run_child(step, data, args.seed, args.threads, limit))
            print(json.dumps(rows[-1]), flush=True)
    report["rows"] = rows
    knn = next((r for r in rows if r["step"].startswith("fit:itemknn") and "fit_seconds" in r),
               None)
    if knn:
        # UserKNN multiplies Σ_i deg(i)² pairs where ItemKNN multiplies Σ_u deg(u)²: at ItemKNN's
        # measured rate, that is how long UserKNN's fit would take.
        rate = report["data"]["itemknn_pairs"] / max(knn["fit_seconds"], 1e-9)
        report["userknn_fit_seconds_estimate"] = round(report["data"]["userknn_pairs"] / rate)
    report["machine"]["load_avg_end"] = os.getloadavg()
    show(rows)
    if "userknn_fit_seconds_estimate" in report:
        print(f"\nUserKNN fit estimate at ItemKNN's pair rate: "
              f"{report['userknn_fit_seconds_estimate']} s")
    print(f"\nload average (1, 5, 15 min): start {load_start}, end {os.getloadavg()} on "
          f"{os.cpu_count()} CPUs: timings are rough on a shared machine")
    out = args.out / ("scale_scoring_quick.json" if args.quick else "scale_scoring.json")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
