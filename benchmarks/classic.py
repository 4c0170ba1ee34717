"""Classic models on ML-100K (user-random 80/20) and ml-latest-small (user-time 80/20).

Prints one table per dataset and writes benchmarks/results/classic.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from movierec import benchmark
from movierec.cli import print_table
from movierec.data import load
from movierec.models import CLASSIC
from movierec.split import make_split

SETUPS = [("ml-100k", "user-random"), ("ml-latest-small", "user-time")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=42, help="split and model seed")
    parser.add_argument("--models", default=",".join(CLASSIC), help="comma-separated names")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    report = {}
    for name, kind in SETUPS:
        t0 = time.perf_counter()
        ds = load(name)
        load_s = time.perf_counter() - t0
        split = make_split(ds, kind, test_size=0.2, rng=args.seed)
        result = benchmark.run(args.models.split(","), split, seeds=[args.seed], progress=False,
                               keep_lists=False)
        print_table(result.table(), title=f"{name} · {kind} 80/20 · seed {args.seed}")
        report[name] = {"split": kind, "load_seconds": load_s, **result.to_dict()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "classic.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out / 'classic.json'}")


if __name__ == "__main__":
    main()
