"""One process vs several: `movierec train` under torchrun (gloo on CPU), wall and epoch seconds.

For each dataset and process count N, runs

    torchrun --standalone --nproc_per_node=N -m movierec train --dataset D --model M
             --valid-size 0.1 --param epochs=E --param patience=E ...

with OMP_NUM_THREADS = cores // N per process (so every run uses the same cores), and again with
one thread per process, and reads the
model folder's model.json: per-epoch seconds (the Trainer's history), best validation metric and
the test metrics that `train` wrote. The global batch is the same for every N, so the runs train
the same model up to float rounding (tests/test_distributed.py checks this); the table shows what
the extra processes cost or save on this machine. Prints a table and writes
benchmarks/results/ddp.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from movierec.io import atomic_write_text


def run_once(dataset: str, model: str, nproc: int, epochs: int, threads: int, out: Path,
             data_dir: str | None, extra: list[str]) -> dict[str, Any]:
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", f"--nproc_per_node={nproc}", "-m", "movierec", "train",
           "--dataset", dataset, "--model", model, "--valid-size", "0.1",
           "--param", f"epochs={epochs}", "--param", f"patience={epochs}", "--param",
           "device=cpu", "--no-progress", "--out", str(out), *extra]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {"dataset": dataset, "model": model, "processes": nproc,
                           "threads_per_process": threads, "epochs": epochs,
                           "wall_seconds": round(wall, 2), "load_avg_1m": load_before}
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "━" not in ln
                 and "=====" not in ln]
        row["error"] = f"exit {proc.returncode}: " + " | ".join(lines[-3:])
        return row
    meta = json.loads((out / "model.json").read_text())
    history = meta.get("state", {}).get("history_", {}).get("value") or []
    row["fit_seconds"] = meta.get("fit_seconds")
    seconds = [h["seconds"] for h in history if "seconds" in h]
    row["epoch_seconds_mean"] = round(sum(seconds) / len(seconds), 3) if seconds else None
    valid = [h.get("valid_metric") for h in history if h.get("valid_metric") is not None]
    row["best_valid"] = min(valid) if valid else None
    metrics = meta.get("metrics") or {}
    for key in ("rmse", "ndcg@10"):
        if key in metrics:
            row[f"test_{key}"] = metrics[key]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="ml-100k,ml-latest-small",
                        help="comma-separated releases")
    parser.add_argument("--model", default="mf", help="a neural model (default mf)")
    parser.add_argument("--procs", default="1,2", help="process counts to compare")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run (no early stop)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                        help="cores shared by the processes of one run")
    parser.add_argument("--data-dir", default=os.environ.get("MOVIEREC_DATA_DIR"))
    parser.add_argument("--quick", action="store_true", help="ml-100k, 2 epochs: a smoke run")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    datasets = ["ml-100k"] if args.quick else args.datasets.split(",")
    epochs = 2 if args.quick else args.epochs
    rows = []
    work = Path(tempfile.mkdtemp(prefix="movierec-ddp-"))
    try:
        for ds in datasets:
            for n in (int(p) for p in args.procs.split(",")):
                # cores // n threads each (the same cores in all), and also 1 thread each: on a
                # loaded machine torch's multi-threaded kernels can be far slower than 1 thread.
                for threads in sorted({max(1, args.cores // n), 1}):
                    row = run_once(ds, args.model, n, epochs, threads,
                                   work / f"{ds}-{n}-{threads}", args.data_dir, [])
                    rows.append(row)
                    print(row, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    report = {"rows": rows, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                        "load_avg_end": os.getloadavg()},
              "quick": args.quick}
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / ("ddp_quick.json" if args.quick else "ddp.json")
    atomic_write_text(out, json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
