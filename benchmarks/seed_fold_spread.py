"""How much of a model's spread is seed and how much is fold? A two-way split of F x S values.

Reads a cross-validation folder written by `movierec benchmark --folds K --seeds ...`
(`DIR/fold-<f>/runs/<model>-seed<s>.json`), takes each run's metric x[f, s] and reports, per
model with at least two seeds and two folds:

* seed variance  = mean over folds of the variance over seeds within the fold,
                   (1/F) sum_f  1/(S-1) sum_s (x[f,s] - m_f)^2,   m_f = mean_s x[f,s];
* fold variance  = variance of the fold means, 1/(F-1) sum_f (m_f - m)^2;
* seed share     = seed / (seed + fold);
* fold variance corrected = max(0, fold variance - seed variance / S): a fold mean still carries
  seed noise of variance seed/S, which the plain variance of fold means includes (the one-way
  random-effects ANOVA estimate of the fold component); the corrected share uses it.

    .venv/bin/python benchmarks/seed_fold_spread.py runs/cv --metric ndcg@10

Prints a table and writes DIR/seed_fold_spread.json (atomically).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from movierec.io import atomic_write_text

_RUN = re.compile(r"^(?P<model>.+)-seed(?P<seed>-?\d+)\.json$")
_FOLD = re.compile(r"^fold-(?P<fold>\d+)$")


def decompose(values: np.ndarray) -> dict[str, float]:
    """The seed/fold split of a (folds x seeds) array of one model's metric (see module doc).

    Raises:
        ValueError: fewer than 2 folds or 2 seeds, or missing values.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"need a (folds >= 2) x (seeds >= 2) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("values: every (fold, seed) needs a finite value")
    n_seeds = x.shape[1]
    fold_means = x.mean(axis=1)
    seed_var = float(x.var(axis=1, ddof=1).mean())
    fold_var = float(fold_means.var(ddof=1))
    fold_corr = max(0.0, fold_var - seed_var / n_seeds)
    total = seed_var + fold_var
    total_corr = seed_var + fold_corr
    return {
        "mean": float(x.mean()),
        "seed_var": seed_var,
        "fold_var": fold_var,
        "seed_share": seed_var / total if total > 0 else float("nan"),
        "fold_var_corrected": fold_corr,
        "seed_share_corrected": seed_var / total_corr if total_corr > 0 else float("nan"),
        "seed_sd": seed_var ** 0.5,
        "fold_sd": fold_var ** 0.5,
        "var_all": float(x.var(ddof=1)),
    }


def collect(folder: Path, metric: str) -> dict[str, dict[int, dict[int, float]]]:
    """{model: {fold: {seed: value}}} from the run records of a cross-validation folder."""
    out: dict[str, dict[int, dict[int, float]]] = {}
    folds = sorted((int(m["fold"]), p) for p in folder.iterdir()
                   if p.is_dir() and (m := _FOLD.match(p.name)))
    if not folds:
        raise SystemExit(f"{folder}: no fold-<i>/ folders (run movierec benchmark --folds K)")
    for fold, path in folds:
        for run in sorted((path / "runs").glob("*.json")):
            m = _RUN.match(run.name)
            if not m:
                continue
            record = json.loads(run.read_text(encoding="utf-8"))
            value = record.get("metrics", {}).get(metric)
            if value is None:
                continue
            out.setdefault(m["model"], {}).setdefault(fold, {})[int(m["seed"])] = float(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="cross-validation folder (fold-<i>/ inside)")
    parser.add_argument("--metric", default="ndcg@10", help="metric of the run records")
    parser.add_argument("--models", default=None, help="comma-separated subset (default: all)")
    args = parser.parse_args()
    data = collect(args.folder, args.metric)
    wanted = [m.strip() for m in args.models.split(",")] if args.models else sorted(data)
    rows: list[dict[str, Any]] = []
    for model in wanted:
        per_fold = data.get(model)
        if per_fold is None:
            raise SystemExit(f"{args.folder}: no runs of {model!r} with metric {args.metric!r}")
        seeds = sorted(set.intersection(*(set(v) for v in per_fold.values())))
        folds = sorted(per_fold)
        if len(seeds) < 2 or len(folds) < 2:
            print(f"{model}: {len(folds)} fold(s) x {len(seeds)} seed(s) - skipped (needs 2 x 2)")
            continue
        grid = np.array([[per_fold[f][s] for s in seeds] for f in folds])
        rows.append({"model": model, "folds": folds, "seeds": seeds, "values": grid.tolist(),
                     **decompose(grid)})
    print(f"{args.metric}: seed var = mean within-fold variance over seeds; fold var = variance "
          "of fold means (both ddof=1); corr = fold var - seed var / S")
    print(f"{'model':<10} {'mean':>7} {'seed sd':>8} {'fold sd':>8} {'seed share':>10} "
          f"{'corr':>6}  values (fold x seed)")
    for r in rows:
        grid = "; ".join(" ".join(f"{v:.4f}" for v in fold) for fold in r["values"])
        print(f"{r['model']:<10} {r['mean']:7.4f} {r['seed_sd']:8.4f} {r['fold_sd']:8.4f} "
              f"{r['seed_share']:10.1%} {r['seed_share_corrected']:6.1%}  {grid}")
    out = args.folder / "seed_fold_spread.json"
    atomic_write_text(out, json.dumps({"metric": args.metric, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
