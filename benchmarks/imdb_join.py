"""Time and peak memory of joining ml-latest-small's movies to IMDb-size TSV files.

IMDb's files cannot be downloaded here (and movierec never downloads them), so synthetic files in
their layout are written first (`movierec.data.synthetic._imdb.write_imdb_like`): title.basics,
title.crew, title.ratings and name.basics at IMDb's full size by default (11M, 11M, 1.5M and 14M
rows), title.principals at `--principals` rows (IMDb has about 90M). The 9,742 movies of
ml-latest-small (read from MOVIEREC_DATA_DIR) are titles of type movie among them, under their
links.csv imdbId, so the join by id matches every movie with an id.

The enrichment (`movierec.data.imdb.enrich`) runs in a fresh Python process, which reports its
wall and CPU seconds, its peak resident memory (ru_maxrss), pyarrow's peak pool allocation and
tracemalloc's peak of Python allocations. A second process times one pass over
title.principals alone, from which the time at 90M principals is extrapolated linearly:
`total + principals_pass * (90M / rows - 1)` (wall and CPU seconds alike); memory does not grow
with the file (blocks are filtered as they are read; only kept rows stay).

    MOVIEREC_DATA_DIR=../shared/datasets OMP_NUM_THREADS=1 .venv/bin/python \\
        benchmarks/imdb_join.py --workdir /tmp/imdb-bench --principals 20000000

Prints a table and writes benchmarks/results/imdb_join.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

IMDB_PRINCIPALS_ROWS = 90_000_000
RESULTS = Path(__file__).parent / "results" / "imdb_join.json"

_CHILD = r"""
import json, resource, sys, time, tracemalloc
import pyarrow as pa
from movierec.data import load
ds = load("ml-latest-small", download=False)
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
tracemalloc.start()
t0, c0 = time.perf_counter(), time.process_time()
if sys.argv[2] == "enrich":
    from movierec.data.imdb import enrich
    e = enrich(ds, sys.argv[1])
    extra = {"report": e.report.to_dict(limit=0), "coverage": e.coverage}
else:
    from movierec.data.imdb import FILES, find_file, stream
    t = stream(find_file(sys.argv[1], "principals"), FILES["principals"][1], ("tconst",),
               lambda b: pa.array([False] * b.num_rows))
    extra = {}
out = {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
       "rss_before_mib": rss_before,
       "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
       "arrow_peak_mib": pa.default_memory_pool().max_memory() / 2**20,
       "tracemalloc_peak_mib": tracemalloc.get_traced_memory()[1] / 2**20, **extra}
print(json.dumps(out))
"""


def _child(imdb_dir: Path, what: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(imdb_dir), what], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Write the files (unless present), run the join, print the table, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/movierec-imdb-bench"))
    p.add_argument("--titles", type=int, default=11_000_000)
    p.add_argument("--principals", type=int, default=20_000_000)
    p.add_argument("--names", type=int, default=14_000_000)
    p.add_argument("--rated", type=int, default=1_500_000)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()

    from movierec.data import load
    from movierec.data.synthetic._imdb import write_imdb_like

    ds = load("ml-latest-small", download=False)
    assert ds.links is not None
    keep = ds.links["imdb_id"].dropna().astype(int).tolist()
    tag = f"t{args.titles}-p{args.principals}-n{args.names}-r{args.rated}"
    folder = args.workdir / tag
    write_s = None
    if not (folder / "name.basics.tsv.gz").is_file():
        t0 = time.perf_counter()
        write_imdb_like(folder, n_titles=args.titles, n_principals=args.principals,
                        n_names=args.names, n_rated=args.rated, keep=keep, rng=0)
        write_s = time.perf_counter() - t0
    sizes = {f.name: f.stat().st_size for f in sorted(folder.iterdir())}
    load_avg = os.getloadavg()
    joined = _child(folder, "enrich")
    principals = _child(folder, "principals")
    scale = IMDB_PRINCIPALS_ROWS / args.principals
    full = joined["seconds"] + principals["seconds"] * (scale - 1)
    full_cpu = joined["cpu_seconds"] + principals["cpu_seconds"] * (scale - 1)
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(), "cpus": os.cpu_count(), "load_average": load_avg,
        "rows": {"title.basics": args.titles, "title.crew": args.titles,
                 "title.ratings": args.rated, "title.principals": args.principals,
                 "name.basics": args.names},
        "gz_bytes": sizes, "write_seconds": write_s, "enrich": joined,
        "principals_pass": principals,
        "extrapolated_seconds_at_90M_principals": full,
        "extrapolated_cpu_seconds_at_90M_principals": full_cpu,
        "load_average_after": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    rows = [
        ("title.basics / crew rows", f"{args.titles:,}"),
        ("title.principals rows", f"{args.principals:,} (IMDb: ~90M)"),
        ("name.basics rows", f"{args.names:,}"),
        ("gzipped input, MB", f"{sum(sizes.values()) / 1e6:,.0f}"),
        ("movies matched", f"{joined['report']['matched']:,} of {joined['report']['items']:,}"),
        ("enrich wall s (cpu s)", f"{joined['seconds']:.1f} ({joined['cpu_seconds']:.1f})"),
        ("principals pass wall s (cpu s)",
         f"{principals['seconds']:.1f} ({principals['cpu_seconds']:.1f})"),
        ("extrapolated s at 90M principals, wall (cpu)", f"{full:.0f} ({full_cpu:.0f})"),
        ("RSS MiB before -> peak (process)",
         f"{joined['rss_before_mib']:.0f} -> {joined['peak_rss_mib']:.0f}"),
        ("pyarrow peak MiB", f"{joined['arrow_peak_mib']:.0f}"),
        ("tracemalloc peak MiB", f"{joined['tracemalloc_peak_mib']:.0f}"),
        ("load average before", " ".join(f"{x:.2f}" for x in load_avg)),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")  # noqa: T201 - a benchmark prints its table
    print(f"wrote {args.out}")  # noqa: T201


if __name__ == "__main__":
    main()
