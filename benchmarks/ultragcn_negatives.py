"""UltraGCN's negative term: one product with every item, or gathering the negatives' rows?

For each catalog size, times forward + backward of the negative scores of a batch of `--batch`
users with `--negatives` sampled negatives each, embedding size `--dim`, two ways (both exact,
as `UltraGCN.batch_loss` computes them): "product", e_u · E_itemsᵀ then a gather of the sampled
columns, and "gather", the [B, N, d] rows gathered and multiplied. Reports the median of
`--repeats` timed steps (after one warm-up) on `--threads` threads; this is how
`UltraGCN.dense_negatives_ratio` (take the product when N · ratio ≥ n_items) was set. Random
embeddings: no data needed. About 30 seconds.

    .venv/bin/python benchmarks/ultragcn_negatives.py

Writes benchmarks/results/ultragcn_negatives.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from movierec.io import atomic_write_text
from movierec.models.graph._contrastive import UltraGCN

RESULTS = Path(__file__).parent / "results"


def step_ms(users: torch.nn.Embedding, items: torch.nn.Embedding, u: torch.Tensor,
            j: torch.Tensor, way: str, repeats: int) -> float:
    """Median milliseconds of forward + backward of mean softplus(negative scores)."""
    times = []
    for rep in range(repeats + 1):
        users.zero_grad()
        items.zero_grad()
        start = time.perf_counter()
        eu = users(u)
        if way == "product":
            neg = (eu @ items.weight.T).gather(1, j)
        else:
            neg = (eu[:, None, :] * items(j)).sum(-1)
        torch.nn.functional.softplus(neg).mean().backward()
        if rep:  # the first is a warm-up
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", default="1682,3200,9742,20000,60000",
                        help="catalog sizes, comma-separated (ML-100K, ml-latest-small, ...)")
    parser.add_argument("--batch", type=int, default=1024, help="users per batch (UltraGCN's)")
    parser.add_argument("--negatives", type=int, default=200, help="negatives per positive (N)")
    parser.add_argument("--dim", type=int, default=128, help="embedding size")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per way and size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0, help="torch seed")
    parser.add_argument("--out", type=Path, default=RESULTS / "ultragcn_negatives.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ratio = UltraGCN.dense_negatives_ratio
    rows = []
    for n_items in (int(x) for x in args.items.split(",")):
        users = torch.nn.Embedding(args.batch, args.dim)
        items = torch.nn.Embedding(n_items, args.dim)
        u = torch.arange(args.batch)
        j = torch.randint(0, n_items, (args.batch, args.negatives))
        ms = {way: step_ms(users, items, u, j, way, args.repeats)
              for way in ("product", "gather")}
        rows.append({"n_items": n_items, "product_ms": ms["product"], "gather_ms": ms["gather"],
                     "faster": min(ms, key=ms.__getitem__),
                     "chosen": "product" if args.negatives * ratio >= n_items else "gather"})
    table = Table(title=f"UltraGCN negative term, B {args.batch}, N {args.negatives}, "
                        f"d {args.dim}, {args.threads} thread(s): ms per step (ratio {ratio})")
    for col in ("items", "product ms", "gather ms", "faster", "UltraGCN takes"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"{r['n_items']:,}", f"{r['product_ms']:.1f}", f"{r['gather_ms']:.1f}",
                      r["faster"], r["chosen"])
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(
        {"date": datetime.now(UTC).isoformat(timespec="seconds"), "batch": args.batch,
         "negatives": args.negatives, "dim": args.dim, "threads": args.threads,
         "repeats": args.repeats, "dense_negatives_ratio": ratio, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
