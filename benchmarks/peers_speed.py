"""Fit speed beside implicit: movierec `ials` vs implicit ALS, `mf` BPR (numba) vs implicit BPR.

Issue #21, "Speed beside implicit". Both sides fit the same model with the same factors,
iterations and regularization, on 1 and 2 threads (`--threads`), side by side in one process:

- ALS: movierec `ials` (c = 1 + α·x, α = 1 → c = 2 on every interaction) against implicit's
  `AlternatingLeastSquares` with alpha = 2 (implicit reads the stored value as the confidence c
  itself: its default alpha = 1 would be c = 1, a different model), 100 factors, λ = 0.01,
  3 CG steps, 15 iterations;
- BPR: movierec `mf(loss="bpr", backend="numba")` against implicit's
  `BayesianPersonalizedRanking`, 100 factors + an item bias, learning rate 0.01, λ = 0.01,
  100 iterations (implicit's defaults), negatives verified, Hogwild! on several threads.

Data: ML-100K u1.base (fit seconds, the best of `--repeats`; NDCG@10 on u1.test, full ranking of
unseen training items, relevance 4 and 0, from the first fit of each) and a synthetic release
the size of ML-25M scaled by `--synth-scale` (`movierec data synth`'s generator, as in
`benchmarks/scale_load.py`; written once under `--synth-dir`), fit seconds only, with
`--synth-bpr-iterations` BPR iterations (fewer than 100, same on both sides, to fit the time box
of a shared 2-core machine). Nothing is tuned: the settings are implicit's defaults.

Seconds are wall-clock; CPU seconds (all threads) are recorded too, since the machine is shared
and the load average (recorded before each fit) decides how much of the 2 cores a fit gets.
movierec's seconds are its whole `fit` (vocabularies and seen matrix included); implicit's are
its own `fit` call on a ready CSR matrix (its data conversion excluded: this favours implicit).
BLAS is limited to one thread around every fit (`threadpool_limits`); the numba kernels run on
movierec's own thread pool (`movierec.models._numba_threads`), never numba's parallel layers.

Torch after numba: in a fresh process that never imports implicit, a torch MF fit (`mf`,
2 epochs, ML-100K u1) is timed on 1 torch thread (best of 5) and 2 (best of 3, each count after
an untimed warm-up fit), then movierec's ials (twice) and numba BPR run on 2 threads, then the
torch fits are timed again. The benchmark process itself times the 1-thread torch fit again at
its end, after implicit's fits too.

    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/peers_speed.py
    ... --quick   # a smoke run (few iterations, tiny synthetic set): numbers not comparable

Writes benchmarks/results/peers_speed.json (`--quick`: peers_speed_quick.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from _common import json_default, ml100k, version
from peers import peer_class
from threadpoolctl import threadpool_limits

from movierec import __version__
from movierec.data import load
from movierec.data.dataset import Dataset
from movierec.evaluate import evaluate
from movierec.io import atomic_write_text
from movierec.models import get
from movierec.models.base import Recommender
from movierec.split import Split, make_split

ML25M = (162_541, 59_047, 25_000_095)
FACTORS, REG, LR = 100, 0.01, 0.01


def als_pair(threads: int, iterations: int) -> dict[str, Any]:
    """(label → factory) of the two ALS models with the same settings."""
    return {
        "movierec ials": lambda: get("ials", embedding_size=FACTORS, epochs=iterations, reg=REG,
                                     alpha=1.0, cg_steps=3, threads=threads),
        "implicit ALS": lambda: peer_class("implicit", "ALS")(peer_params={
            "factors": FACTORS, "regularization": REG, "alpha": 2.0, "iterations": iterations,
            "use_cg": True, "calculate_training_loss": False},  # implicit: 3 CG steps
            threads=threads),
    }


def bpr_pair(threads: int, iterations: int) -> dict[str, Any]:
    """(label → factory) of the two BPR models with the same settings."""
    return {
        "movierec bpr (numba)": lambda: get("mf", loss="bpr", backend="numba",
                                            embedding_size=FACTORS, epochs=iterations,
                                            learning_rate=LR, reg=REG, threads=threads,
                                            device="cpu"),
        "implicit BPR": lambda: peer_class("implicit", "BPR")(peer_params={
            "factors": FACTORS, "learning_rate": LR, "regularization": REG,
            "iterations": iterations, "verify_negative_samples": True}, threads=threads),
    }


def timed_fit(factory: Any, train: Dataset, seed: int) -> tuple[Recommender, dict[str, float]]:
    """Fit a fresh model; its seconds (implicit: its own fit call), CPU seconds, load average."""
    model = factory()
    load_1m = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(train, rng=seed, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return model, {"fit_seconds": getattr(model, "core_fit_seconds_", wall),
                   "wrapper_seconds": wall, "cpu_seconds": cpu, "load_avg_1m": load_1m}


def measure(pairs: dict[str, Any], train: Dataset, split: Split | None, *, seed: int,
            repeats: int, threads: int) -> dict[str, dict[str, Any]]:
    """Best-of-`repeats` fit seconds of each model (interleaved), NDCG@10 of the first fit."""
    rows: dict[str, dict[str, Any]] = {label: {"runs": []} for label in pairs}
    with threadpool_limits(limits=1, user_api="blas"):
        for rep in range(repeats):
            for label, factory in pairs.items():
                model, run = timed_fit(factory, train, seed)
                rows[label]["runs"].append(run)
                if rep == 0 and split is not None:
                    for rel in (4.0, 0.0):
                        res = evaluate(model, split, ks=(10,), relevance=rel, protocol="full")
                        rows[label][f"ndcg@10 r{rel:g}"] = res.summary["ndcg@10"]
                print(f"    {label} · {threads} thread(s) · run {rep + 1}: "
                      f"{run['fit_seconds']:.2f} s (CPU {run['cpu_seconds']:.2f} s, "
                      f"load {run['load_avg_1m']:.1f})", flush=True)
    for row in rows.values():
        best = min(row["runs"], key=lambda r: r["fit_seconds"])
        row.update(best_fit_seconds=best["fit_seconds"], cpu_seconds_of_best=best["cpu_seconds"],
                   load_avg_at_best=best["load_avg_1m"], threads=threads)
    return rows


def torch_speed(split: Split, seed: int, threads_list: list[int]) -> dict[str, float]:
    """Best seconds of a 2-epoch torch MF fit on ML-100K u1, per torch thread count.

    Each count starts with an untimed 1-epoch fit: the first fit after `set_num_threads` pays for
    (re)starting torch's OpenMP pool, up to 10x a later fit's time on this busy machine. Then
    the best of 5 fits on one thread, of 3 on more (torch's OpenMP threads on a busy 2-core
    machine make those fits several times slower, see `movierec.pipeline.DEFAULT_THREADS`).
    """
    out = {}
    before = torch.get_num_threads()
    for threads in threads_list:
        torch.set_num_threads(threads)
        get("mf", device="cpu", epochs=1).fit(split.train, rng=seed, progress=False)
        times = []
        for _ in range(5 if threads == 1 else 3):
            t0 = time.perf_counter()
            get("mf", device="cpu", epochs=2).fit(split.train, rng=seed, progress=False)
            times.append(time.perf_counter() - t0)
        out[f"{threads} thread(s)"] = min(times)
    torch.set_num_threads(before)
    return out


def torch_worker(data_dir: Path, seed: int, threads_list: list[int]) -> None:
    """In a fresh process without implicit: torch MF speed before and after movierec's numba fits.

    The numba fits use the largest thread count of `threads_list` (ials with its defaults and
    BPR with implicit's settings on ML-100K u1.base); prints one JSON line.
    """
    logging.getLogger("movierec").setLevel(logging.ERROR)
    ds, folder = ml100k(data_dir)
    split = make_split(ds, "u1", data_dir=folder)
    torch.set_num_threads(1)
    get("mf", device="cpu", epochs=1).fit(split.train, rng=seed, progress=False)  # warm-up
    before = torch_speed(split, seed, threads_list)
    many = max(threads_list)
    t0, c0 = time.perf_counter(), time.process_time()
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(2):
            get("ials", threads=many).fit(split.train, rng=seed, progress=False)
        bpr_pair(many, 100)["movierec bpr (numba)"]().fit(split.train, rng=seed, progress=False)
    numba_s = (time.perf_counter() - t0, time.process_time() - c0)
    after = torch_speed(split, seed, threads_list)
    print(json.dumps({"torch_before_s": before, "torch_after_s": after,
                      "numba_threads": many, "numba_fits_wall_cpu_s": numba_s,
                      "torch_threads_after": torch.get_num_threads()}))


def torch_check(data_dir: Path, seed: int, threads_list: list[int]) -> dict[str, Any]:
    """Run `torch_worker` in a fresh process; its JSON."""
    out = subprocess.run([sys.executable, __file__, "--torch-worker", "--seed", str(seed),
                          "--threads", ",".join(map(str, threads_list)),
                          "--data-dir", str(data_dir)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def synthetic(synth_dir: Path, scale: float, seed: int) -> Dataset:
    """The synthetic ML-25M-like release at `scale`, written once under `synth_dir`."""
    ratings = round(ML25M[2] * scale)
    users, items = max(1, round(ML25M[0] * scale)), max(20, round(ML25M[1] * scale))
    folder = synth_dir / f"synth-{ratings}-s{seed}"
    readme = folder / "README.txt"
    if not (readme.is_file() and f"--ratings {ratings}" in readme.read_text()):
        from movierec.data.synthetic import write_release_like

        print(f"writing {folder} ({ratings:,} ratings) ...", flush=True)
        write_release_like(folder, users=users, items=items, ratings=ratings, rng=seed,
                           overwrite=True, progress=False)
    return load(str(folder), download=False, progress=False)


def ratios(rows: dict[str, dict[str, Any]], mine: str, peer: str) -> dict[str, float]:
    """movierec ÷ implicit: fit seconds (below 1: movierec faster) and NDCG (above 1: better)."""
    a, b = rows[mine], rows[peer]
    out = {"fit_ratio": a["best_fit_seconds"] / b["best_fit_seconds"]}
    for key in ("ndcg@10 r4", "ndcg@10 r0"):
        if key in a and key in b:
            out[f"{key} ratio"] = a[key] / b[key]
    return out


def table(results: dict[str, Any]) -> pd.DataFrame:
    """One row per (data, model, threads)."""
    rows = []
    for data, by_threads in results.items():
        for threads, models in by_threads.items():
            for label, row in models.items():
                rows.append({"data": data, "threads": int(threads), "model": label,
                             "fit s (best)": row["best_fit_seconds"],
                             "CPU s": row["cpu_seconds_of_best"],
                             "load": row["load_avg_at_best"],
                             "ndcg@10 r4": row.get("ndcg@10 r4", np.nan),
                             "ndcg@10 r0": row.get("ndcg@10 r0", np.nan)})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", default="1,2", help="comma list of thread counts")
    parser.add_argument("--repeats", type=int, default=3, help="ML-100K fits per model (best)")
    parser.add_argument("--synth-repeats", type=int, default=1)
    parser.add_argument("--synth-scale", type=float, default=0.1,
                        help="synthetic size as a share of ML-25M (default 0.1: 2.5M ratings)")
    parser.add_argument("--synth-bpr-iterations", type=int, default=20)
    parser.add_argument("--synth-als-iterations", type=int, default=15)
    parser.add_argument("--only", choices=["ml-100k", "synthetic"], default=None,
                        help="measure one data set (the JSON file is then named after it)")
    parser.add_argument("--synth-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "movierec-synth")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("MOVIEREC_DATA_DIR", "/work/shared/datasets")))
    parser.add_argument("--quick", action="store_true", help="smoke run: numbers not comparable")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    threads_list = [int(t) for t in args.threads.split(",")]
    if args.torch_worker:
        torch_worker(args.data_dir, args.seed, threads_list)
        return
    logging.getLogger("movierec").setLevel(logging.ERROR)  # MF's "no validation data" warning
    als_it, bpr_it = (2, 5) if args.quick else (15, 100)
    synth_bpr_it = 2 if args.quick else args.synth_bpr_iterations
    synth_als_it = 2 if args.quick else args.synth_als_iterations
    synth_scale = 0.004 if args.quick else args.synth_scale
    repeats = 1 if args.quick else args.repeats

    ds, folder = ml100k(args.data_dir)
    split = make_split(ds, "u1", data_dir=folder)
    torch.set_num_threads(1)
    report: dict[str, Any] = {
        "seed": args.seed, "quick": args.quick, "threads": threads_list,
        "settings": {"factors": FACTORS, "regularization": REG, "bpr_learning_rate": LR,
                     "als_iterations": als_it, "bpr_iterations": bpr_it,
                     "synth_bpr_iterations": synth_bpr_it,
                     "synth_als_iterations": synth_als_it, "synth_scale": synth_scale,
                     "repeats": repeats, "synth_repeats": args.synth_repeats},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_start": os.getloadavg()},
        "versions": {"movierec": __version__, "python": platform.python_version(),
                     **{m: version(m) for m in ("numpy", "numba", "torch", "implicit")}},
    }
    if version("implicit") is None:
        sys.exit("implicit is not installed: pip install implicit==0.7.3 (benchmark only)")
    print("torch MF (2 epochs) before and after movierec's numba fits, in a fresh process ...",
          flush=True)
    report["torch_check"] = torch_check(args.data_dir, args.seed, threads_list)
    get("mf", device="cpu", epochs=1).fit(split.train, rng=args.seed, progress=False)  # warm-up
    report["torch_before_s"] = torch_speed(split, args.seed, [1])
    # compile / load the numba kernels once, outside the timings
    t0 = time.perf_counter()
    for factory in [*als_pair(2, 1).values(), *bpr_pair(2, 1).values()]:
        factory().fit(split.train, rng=args.seed, progress=False)
    report["warmup_seconds"] = time.perf_counter() - t0

    results: dict[str, Any] = {}
    for threads in threads_list if args.only != "synthetic" else []:
        print(f"ML-100K u1.base · {threads} thread(s)", flush=True)
        results.setdefault("ml-100k u1.base", {})[threads] = {
            **measure(als_pair(threads, als_it), split.train, split, seed=args.seed,
                      repeats=repeats, threads=threads),
            **measure(bpr_pair(threads, bpr_it), split.train, split, seed=args.seed,
                      repeats=repeats, threads=threads)}
    if args.only != "ml-100k":
        synth = synthetic(args.synth_dir, synth_scale, 0)
        name = f"synthetic ML-25M x {synth_scale:g} ({synth.n_ratings:,} ratings)"
        report["synthetic"] = {"scale": synth_scale, "ratings": synth.n_ratings,
                               "users": synth.n_users, "items": synth.n_items}
        results[name] = {}
        for threads in threads_list:
            print(f"{name} · {threads} thread(s)", flush=True)
            results[name][threads] = {
                **measure(als_pair(threads, synth_als_it), synth, None, seed=args.seed,
                          repeats=args.synth_repeats, threads=threads),
                **measure(bpr_pair(threads, synth_bpr_it), synth, None, seed=args.seed,
                          repeats=args.synth_repeats, threads=threads)}
    print("torch MF (2 epochs) after every fit, implicit's included ...", flush=True)
    report["torch_after_s"] = torch_speed(split, args.seed, [1])
    report["results"] = results
    report["ratios"] = {
        f"{data} · {threads} thread(s) · {mine} ÷ {peer}": ratios(models, mine, peer)
        for data, by_threads in results.items() for threads, models in by_threads.items()
        for mine, peer in (("movierec ials", "implicit ALS"),
                           ("movierec bpr (numba)", "implicit BPR"))}
    report["machine"]["load_avg_end"] = os.getloadavg()

    print("\nfit seconds (best of repeats), CPU seconds of that fit, 1-min load before it; "
          "NDCG@10 on ML-100K u1.test (full ranking)" + (" · QUICK" if args.quick else ""))
    print(table(results).to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print("\nmovierec ÷ implicit (fit_ratio < 1: movierec faster)")
    print(pd.DataFrame.from_dict(report["ratios"], orient="index").to_string(
        float_format=lambda x: f"{x:.3f}"))
    check = report["torch_check"]
    print(f"\ntorch MF 2-epoch fit seconds, before → after movierec's numba fits on "
          f"{check['numba_threads']} threads (fresh process, no implicit):")
    for key, before in check["torch_before_s"].items():
        after = check["torch_after_s"][key]
        print(f"  {key}: {before:.2f} → {after:.2f} (x{after / before:.2f})")
    before, after = report["torch_before_s"]["1 thread(s)"], report["torch_after_s"]["1 thread(s)"]
    print(f"  this process, 1 thread, after implicit's and movierec's fits: {before:.2f} → "
          f"{after:.2f} (x{after / before:.2f})")
    print(f"\nload average (1, 5, 15 min): start {report['machine']['load_avg_start']}, "
          f"end {report['machine']['load_avg_end']} on {os.cpu_count()} CPUs")
    name = "peers_speed" + (f"_{args.only}" if args.only else "") + ("_quick" if args.quick
                                                                      else "")
    out = args.out / f"{name}.json"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=2, default=json_default))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
