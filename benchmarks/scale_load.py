"""Load time and memory at scale: ML-100K, ml-latest-small and a synthetic ML-25M-size release.

Each measurement runs in a fresh Python process, which imports movierec, then times
`movierec.data.load(...)` (parse, checks, side tables) and `Dataset.matrix()` (users x items
CSR, float32), and reports its peak resident memory after each step. Wall seconds
are the median over `--repeats` processes (min and max kept in the JSON); CPU seconds (all
threads) say how much of the wall time was waiting for a busy machine. Memory columns: resident
MiB at start (after importing movierec.data), peak after loading, the ratings frame itself, the
CSR, and the peak after building it (VmHWM).

The synthetic release (`movierec data synth`: power-law popularity and activity, ML-25M's
rating histogram, its file layout) is written once under `--synth-dir` and reused: a folder
`synth-<ratings>-s<seed>` there whose README.txt records the same sizes. Its users and items
scale with `--ratings` from ML-25M's 162,541 x 59,047 for 25,000,095 ratings. Real releases
come from MOVIEREC_DATA_DIR (e.g. ../shared/datasets), never downloaded here.

    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/scale_load.py \\
        --synth-dir /tmp/synth25m                       # 25M ratings (writes 0.7 GB once)
    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/scale_load.py --quick

Prints a table and writes benchmarks/results/scale_load.json (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"
ML25M = (162_541, 59_047, 25_000_095)
console = Console(width=None if sys.stdout.isatty() else 150)


def peak_mib() -> float:
    """Peak resident MiB of this process.

    VmHWM, not ru_maxrss: on Linux a child's ru_maxrss starts at its parent's peak (the forked
    copy's resident pages count until exec), VmHWM at its own.
    """
    import re
    import resource

    status = Path("/proc/self/status")
    found = re.search(r"VmHWM:\s+(\d+)", status.read_text()) if status.exists() else None
    kib = int(found.group(1)) if found else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def generate_worker(spec: str) -> None:
    """In a fresh process: write the synthetic release `spec` describes; print JSON."""
    from movierec.data.synthetic import write_release_like

    info = json.loads(spec)
    c0 = time.process_time()
    made = write_release_like(info["folder"], users=info["users"], items=info["items"],
                              ratings=info["ratings"], rng=info["seed"], overwrite=True)
    print(json.dumps({"generate_s": round(made.seconds, 1),
                      "generate_cpu_s": round(time.process_time() - c0, 1),
                      "generate_peak_rss_mib": round(peak_mib(), 1), "tags": made.tags,
                      "bytes_on_disk": sum(p.stat().st_size for p in made.path.iterdir())}))


def worker(target: str) -> None:
    """In a fresh process: load `target` (a release name or folder), build its CSR; print JSON."""
    from movierec.data import load

    base = peak_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    ds = load(target, download=False, progress=False)
    t1, c1 = time.perf_counter(), time.process_time()
    after_load = peak_mib()
    matrix = ds.matrix()
    t2, c2 = time.perf_counter(), time.process_time()
    print(json.dumps({
        "name": ds.name, "rows": ds.n_ratings, "users": ds.n_users, "items": ds.n_items,
        "dtypes": {c: str(t) for c, t in ds.ratings.dtypes.items()},
        "load_s": t1 - t0, "load_cpu_s": c1 - c0, "rss_after_import_mib": base,
        "peak_rss_load_mib": after_load, "csr_s": t2 - t1, "csr_cpu_s": c2 - c1,
        "peak_rss_csr_mib": peak_mib(),
        "csr_mib": (matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes) / 2**20,
        "ratings_frame_mib": ds.ratings.memory_usage(index=False).sum() / 2**20,
    }))


def measure(target: str, repeats: int) -> dict[str, Any]:
    """Run `worker(target)` in `repeats` fresh processes; medians of times, max of memory."""
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, __file__, "--worker", target], check=True,
                             capture_output=True, text=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    row = dict(runs[-1])
    for key in ("load_s", "load_cpu_s", "csr_s", "csr_cpu_s"):
        values = [r[key] for r in runs]
        row[key] = round(statistics.median(values), 3)
        row[f"{key}_min_max"] = [round(min(values), 3), round(max(values), 3)]
    for key in ("rss_after_import_mib", "peak_rss_load_mib", "peak_rss_csr_mib", "csr_mib",
                "ratings_frame_mib"):
        row[key] = round(max(r[key] for r in runs), 1)
    row["repeats"] = repeats
    return row


def synthetic_folder(synth_dir: Path, ratings: int, seed: int, regenerate: bool
                     ) -> tuple[Path, dict[str, Any]]:
    """The synthetic release with `ratings` ratings under `synth_dir`, written (in a fresh
    process, measured) unless present."""
    scale = ratings / ML25M[2]
    users = max(1, round(ML25M[0] * scale))
    items = max(20, round(ML25M[1] * scale))
    folder = synth_dir / f"synth-{ratings}-s{seed}"
    readme = folder / "README.txt"
    sizes = f"--users {users} --items {items} --ratings {ratings}"
    info = {"folder": str(folder), "users": users, "items": items, "ratings": ratings,
            "seed": seed}
    text = readme.read_text() if readme.is_file() else ""
    if not regenerate and sizes in text and f"--seed {seed} " in text:
        console.print(f"reusing {folder} (--regenerate to write and time it again)")
        return folder, {**info, "generated": False}
    console.print(f"writing {folder} ({ratings:,} ratings) ...")
    out = subprocess.run([sys.executable, __file__, "--generate", json.dumps(info)], check=True,
                         stdout=subprocess.PIPE, text=True)
    return folder, {**info, "generated": True,
                    **json.loads(out.stdout.strip().splitlines()[-1])}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("movierec", "numpy", "scipy", "pandas", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "-"
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    table = Table(title="loading at scale (wall s: median of repeats; CPU s: all threads)",
                  title_justify="left")
    for col in ("dataset", "rows", "users", "items", "load s", "CPU s", "start MiB",
                "peak MiB", "frame MiB", "CSR s", "CSR MiB", "peak+CSR MiB"):
        table.add_column(col, justify="left" if col == "dataset" else "right", no_wrap=True)
    for r in rows:
        table.add_row(r["dataset"], f"{r['rows']:,}", f"{r['users']:,}", f"{r['items']:,}",
                      f"{r['load_s']:.2f}", f"{r['load_cpu_s']:.2f}",
                      f"{r['rss_after_import_mib']:.0f}", f"{r['peak_rss_load_mib']:.0f}",
                      f"{r['ratings_frame_mib']:.0f}",
                      f"{r['csr_s']:.2f}", f"{r['csr_mib']:.0f}", f"{r['peak_rss_csr_mib']:.0f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=int, default=ML25M[2],
                        help="ratings in the synthetic release (default: ML-25M's 25,000,095)")
    parser.add_argument("--quick", action="store_true",
                        help="a 1,000,000-rating synthetic release and one repeat")
    parser.add_argument("--synth-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "movierec-synth",
                        help="cache folder of synthetic releases (default: $TMPDIR/movierec-synth)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic release")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh processes per dataset; times are their median")
    parser.add_argument("--datasets", default="ml-100k,ml-latest-small",
                        help="real releases to measure beside the synthetic one (comma list)")
    parser.add_argument("--out", type=Path, help="JSON file (default: results/scale_load.json, "
                        "scale_load_quick.json with --quick)")
    parser.add_argument("--regenerate", action="store_true",
                        help="write the synthetic release again even when present (timed)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if args.generate:
        generate_worker(args.generate)
        return
    from movierec.io import atomic_write_text

    if args.quick:
        args.ratings, args.repeats = 1_000_000, 1
    if args.out is None:
        args.out = RESULTS / ("scale_load_quick.json" if args.quick else "scale_load.json")
    load_before = list(os.getloadavg())
    folder, synth = synthetic_folder(args.synth_dir, args.ratings, args.seed,
                                     args.regenerate)
    targets = [(n, n) for n in args.datasets.split(",") if n.strip()]
    targets.append((f"synthetic {args.ratings:,}", str(folder)))
    rows = []
    for label, target in targets:
        console.print(f"measuring {label} ({args.repeats} processes) ...")
        rows.append({"dataset": label, **measure(target, args.repeats)})
    print_table(rows)
    if synth["generated"]:
        console.print(f"writing the synthetic release took {synth['generate_s']} s "
                      f"({synth['generate_cpu_s']} s CPU), peak {synth['generate_peak_rss_mib']} "
                      f"MiB, {synth['bytes_on_disk'] / 2**20:,.0f} MiB on disk")
    report = {
        "benchmark": "scale_load",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {"repeats": args.repeats, "quick": args.quick, "synthetic": synth,
                     "measure": "fresh process per repeat: load(name_or_folder, "
                     "download=False), then Dataset.matrix(); peak RSS by VmHWM"},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor(), "load_average_at_start": load_before,
                    "load_average_at_end": list(os.getloadavg())},
        "versions": versions(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
