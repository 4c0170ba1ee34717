"""A small grid of one model's parameters, judged on a validation carve-out only.

For each parameter set: the model is fit on the training part of the split (`--split-seed`)
minus each user's `--valid-size` carve-out (seeded random, or each user's latest ratings on
time-ordered splits), early-stops on that carve-out when it trains by epochs, and is scored on it
(NDCG@10, relevance 0: every carved movie relevant) by `movierec.tune.validation_value`, as one
`movierec tune` trial is. The test part is never read. Used to pick UltraGCN's default learning
rate and to check XSimGCL's on ml-latest-small (docs/models/contrastive.md, docs/results.md).

    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/validation_grid.py \\
        --dataset ml-100k --split user-random --model ultragcn \\
        --grid '[{"learning_rate": 0.003}, {"learning_rate": 0.01}]'

Prints a table and writes benchmarks/results/validation_grid-<model>-<dataset>-<split>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import json_default
from rich.console import Console
from rich.table import Table

from movierec import data, models, pipeline
from movierec.io import atomic_write_text
from movierec.split import carve_validation, make_split
from movierec.tune import validation_value

RESULTS = Path(__file__).parent / "results"
TIME_ORDERED = ("user-time", "time", "loo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", help="release name or folder")
    parser.add_argument("--split", default="user-random",
                        help="split kind of the outer 80/20 split (user-random, user-time, ...)")
    parser.add_argument("--split-seed", type=int, default=1, help="seed of the outer split and "
                        "of a random carve-out (default 1)")
    parser.add_argument("--valid-size", type=float, default=0.1,
                        help="per-user share of the training part carved for validation")
    parser.add_argument("--model", required=True, help="registered model name")
    parser.add_argument("--grid", required=True,
                        help='JSON list of parameter dicts, e.g. \'[{"learning_rate": 0.003}]\'')
    parser.add_argument("--seed", type=int, default=42, help="the model's seed (default 42)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default under "
                        "benchmarks/results/)")
    args = parser.parse_args()
    grid = json.loads(args.grid)
    if not isinstance(grid, list) or not all(isinstance(p, dict) for p in grid):
        parser.error("--grid must be a JSON list of objects")
    pipeline.set_threads(args.threads)
    ds = data.load(args.dataset)
    split = make_split(ds, args.split, test_size=0.2, rng=args.split_seed)
    inner, held = carve_validation(split.train, args.valid_size, args.split_seed,
                                   time_ordered=args.split in TIME_ORDERED)
    console = Console(width=140)
    table = Table(title=f"{args.model} on {args.dataset} {args.split}, split seed "
                        f"{args.split_seed}: validation NDCG@10 (relevance 0)",
                  title_justify="left")
    for col in ("parameters", "valid NDCG@10", "best epoch", "fit s"):
        table.add_column(col, justify="left" if col == "parameters" else "right")
    rows: list[dict[str, Any]] = []
    for params in grid:
        model = models.get(args.model, **params)
        t0 = time.perf_counter()
        model.fit(inner, held, rng=args.seed)
        fit = time.perf_counter() - t0
        row = {"params": params,
               "valid_ndcg@10": validation_value(model, inner, held, "ndcg@10", 0.0),
               "best_epoch": getattr(model, "best_epoch_", None), "fit_seconds": fit}
        rows.append(row)
        table.add_row(json.dumps(params), f"{row['valid_ndcg@10']:.4f}",
                      str(row["best_epoch"] or "—"), f"{fit:.1f}")
    console.print(table)
    out = args.out or RESULTS / f"validation_grid-{args.model}-{args.dataset}-{args.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps({
        "benchmark": "validation_grid", "date": datetime.now(UTC).isoformat(),
        "dataset": args.dataset, "split": args.split, "split_seed": args.split_seed,
        "valid_size": args.valid_size, "model": args.model, "seed": args.seed,
        "threads": args.threads, "rows": rows,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": list(os.getloadavg())},
    }, indent=2, default=json_default))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
