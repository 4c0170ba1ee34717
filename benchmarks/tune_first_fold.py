"""Tune one model for a rolling (user-time) cross-validation without touching any test chunk.

With `--split user-time --folds K` each user's ratings in time order are cut into K + 1 chunks and
chunk 0 is never tested. This script builds fold 1 (train = chunk 0), carves each user's latest
10 % of chunk 0 as validation, runs `movierec.tune.tune` on it, and writes `best.json` for
`movierec benchmark --params-file`. The chosen parameters are then applied unchanged to every
fold; no rating of chunks 1..K (the test chunks) is seen while choosing them.

    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/tune_first_fold.py \
        --dataset ml-latest-small --folds 3 --model mf --param loss=bpr --trials 20 \
        --out runs/tune-mf-bpr
"""

from __future__ import annotations

import argparse
import time

from movierec.data import load
from movierec.models import get_class
from movierec.split import kfold_split
from movierec.tune import tune


def _value(text: str) -> object:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-latest-small", help="MovieLens release name")
    parser.add_argument("--folds", type=int, default=3, help="K of the rolling cross-validation")
    parser.add_argument("--model", default="mf", help="registered model name")
    parser.add_argument("--param", action="append", default=[],
                        help="fixed KEY=VALUE, repeatable (e.g. loss=bpr)")
    parser.add_argument("--metric", default="ndcg@10", help="validation metric")
    parser.add_argument("--relevance", type=float, default=4.0,
                        help="validation ratings >= this are relevant (benchmark's default)")
    parser.add_argument("--trials", type=int, default=20, help="trials of the study")
    parser.add_argument("--seed", type=int, default=42,
                        help="fold assignment (as the benchmark's --seed), sampler and models")
    parser.add_argument("--out", required=True, help="folder for best.json and trials.csv")
    args = parser.parse_args()

    fixed = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--param {item!r}: expected KEY=VALUE")
        fixed[key] = _value(value)
    if "device" in get_class(args.model).param_names():
        fixed.setdefault("device", "cpu")
    ds = load(args.dataset)
    split = kfold_split(ds, "user-time", fold=1, folds=args.folds, valid_size=0.1, rng=args.seed)
    assert split.valid is not None
    print(f"{args.dataset} fold 1/{args.folds} (chunk 0): fit {split.train.n_ratings:,} / "
          f"valid {split.valid.n_ratings:,}; test chunks untouched", flush=True)
    t0 = time.perf_counter()
    res = tune(args.model, split.train, split.valid, metric=args.metric, trials=args.trials,
               rng=args.seed, relevance=args.relevance, fixed=fixed, out=args.out,
               progress=False)
    print(f"{args.model}: best valid {args.metric} {res.value:.4f} after {res.trials} trials "
          f"({res.pruned} pruned) in {time.perf_counter() - t0:.0f} s; tuned "
          f"{ {k: res.params[k] for k in res.tuned} }; wrote {args.out}/best.json")


if __name__ == "__main__":
    main()
