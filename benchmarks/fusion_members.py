"""Which members put a `fusion` ahead of EASE? Weights cross-fit on a validation carve-out.

ML-100K (`--dataset`) per-user random 80/20 split (seed `--split-seed`); each member is fit on
the training part minus each user's random 10 % carve-out (`carve_validation`, the carve-out
`movierec tune` uses), scores the carve-out's users and is standardized over their unseen movies
(`movierec.models.fusion.standardize`). The test part is never read. For each member set
(`--sets`; "recvae*3" is the mean of RecVAE fit with seeds 1, 2 and 3, one group as in
`fusion`), the weights are chosen by `fusion`'s own coordinate ascent (`choose_weights`) on one
half of the users and judged on the other half, both ways: "cross-fit" is that honest figure,
"in-sample" the optimistic one with the weights chosen on all users. Every member uses its
defaults (EASE: λ `--lam`, the value `movierec tune` picked on this carve-out for split seed 1)
and trains without early stopping, as inside `fusion` when no validation part is given.

    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/fusion_members.py

Takes about 15 minutes on one thread (the neural members). Writes
benchmarks/results/fusion_members.json. The table is in docs/models/fusion.md.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _common import json_default
from rich.console import Console
from rich.table import Table

from movierec import data, pipeline
from movierec.io import atomic_write_text
from movierec.models import get
from movierec.models.blend import carve_held
from movierec.models.fusion import DEFAULT_GRID, choose_weights, fused, ndcg_at, standardize
from movierec.split import make_split

RESULTS = Path(__file__).parent / "results"
SETS = ("ease,recvae;ease,recvae,lightgcn;ease,recvae*3;ease,recvae*3,lightgcn;"
        "ease,recvae*3,multvae,xsimgcl;ease,edlae;ease,slim;ease,rp3beta;ease,itemknn;"
        "ease,userknn")


def parse_sets(text: str) -> list[list[tuple[str, int]]]:
    """"ease,recvae*3;..." -> [[("ease", 1), ("recvae", 3)], ...]."""
    out = []
    for spec in text.split(";"):
        groups = []
        for part in spec.split(","):
            name, _, count = part.strip().partition("*")
            groups.append((name, int(count or 1)))
        out.append(groups)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", help="dataset name (default ml-100k)")
    parser.add_argument("--split-seed", type=int, default=1, help="outer split and carve-out seed")
    parser.add_argument("--lam", type=float, default=300.0, help="EASE's λ (300: tuned on this "
                        "carve-out for ML-100K split seed 1)")
    parser.add_argument("--sets", default=SETS, help="member sets, ';'-separated; each a comma "
                        "list of registered names, name*n for n seeds sharing one weight; the "
                        "first group's weight is 1")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--out", type=Path, default=RESULTS / "fusion_members.json")
    args = parser.parse_args()
    pipeline.set_threads(args.threads)
    console = Console(width=140)
    sets = parse_sets(args.sets)
    ds = data.load(args.dataset)
    split = make_split(ds, "user-random", test_size=0.2, rng=args.split_seed)
    inner, _, hu, hi, ok = carve_held(split.train, 0.1, args.split_seed, latest=False)
    users = np.unique(hu[ok])
    row = np.full(inner.n_users, -1)
    row[users] = np.arange(len(users))
    truth = np.zeros((len(users), inner.n_items), dtype=bool)
    truth[row[hu[ok]], hi[ok]] = True
    seen = inner.matrix("binary")[users].toarray() > 0

    z: dict[tuple[str, int], np.ndarray] = {}
    alone: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for name, count in {(n, c) for groups in sets for n, c in groups}:
        for seed in range(1, count + 1):
            if (name, seed) in z:
                continue
            params = {"lambda_": args.lam} if name == "ease" else {}
            start = time.perf_counter()
            model = get(name, **params).fit(inner, rng=seed, progress=False)
            seconds[f"{name} seed {seed}"] = time.perf_counter() - start
            z[name, seed] = standardize(model._score(users), seen)
            alone[f"{name} seed {seed}"] = ndcg_at(z[name, seed], seen, truth, 10)
            console.print(f"{name} seed {seed}: NDCG@10 {alone[f'{name} seed {seed}']:.4f} "
                          f"({seconds[f'{name} seed {seed}']:.0f} s)")

    def blocks(groups: list[tuple[str, int]], part: np.ndarray) -> list[np.ndarray]:
        return [np.mean([z[name, s][part] for s in range(1, count + 1)], axis=0,
                        dtype=np.float32) for name, count in groups]

    everyone = np.arange(len(users))
    ease = ndcg_at(blocks([("ease", 1)], everyone)[0], seen, truth, 10)
    halves = np.random.default_rng(0).permutation(len(users))
    halves_ = [np.sort(halves[::2]), np.sort(halves[1::2])]
    rows = []
    for groups in sets:
        label = " + ".join(f"{n}×{c}" if c > 1 else n for n, c in groups)
        judged = []
        for fit_part, judge_part in (halves_, halves_[::-1]):
            w, _ = choose_weights(blocks(groups, fit_part), seen[fit_part], truth[fit_part],
                                  DEFAULT_GRID, 2, 10)
            judged.append((ndcg_at(fused(blocks(groups, judge_part), w), seen[judge_part],
                                   truth[judge_part], 10) * len(judge_part), w.tolist()))
        cross = sum(v for v, _ in judged) / len(users)
        w_all, in_sample = choose_weights(blocks(groups, everyone), seen, truth, DEFAULT_GRID,
                                          2, 10)
        rows.append({"members": label, "cross_fit": cross, "cross_fit_x_ease": cross / ease,
                     "in_sample": in_sample, "in_sample_x_ease": in_sample / ease,
                     "weights_all_users": w_all.tolist(),
                     "weights_per_half": [w for _, w in judged]})
    table = Table(title=f"{args.dataset} user-random seed {args.split_seed}, validation "
                        f"carve-out, NDCG@10 (EASE λ {args.lam:g}: {ease:.4f})")
    for col in ("members", "cross-fit", "× EASE", "in-sample", "× EASE ", "weights (all users)"):
        table.add_column(col, justify="left" if col.startswith(("m", "w")) else "right")
    for r in rows:
        table.add_row(r["members"], f"{r['cross_fit']:.4f}", f"{r['cross_fit_x_ease']:.3f}",
                      f"{r['in_sample']:.4f}", f"{r['in_sample_x_ease']:.3f}",
                      ", ".join(f"{w:g}" for w in r["weights_all_users"]))
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(
        {"date": datetime.now(UTC).isoformat(timespec="seconds"), "dataset": args.dataset,
         "split_seed": args.split_seed, "lambda": args.lam, "ease": ease, "alone": alone,
         "fit_seconds": seconds, "sets": rows}, indent=2, default=json_default))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
