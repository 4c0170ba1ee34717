"""Seconds to evaluate full ranking for every test user (ML-100K and a synthetic ML-1M size).

Prints a table and writes benchmarks/results/eval_speed.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data import Dataset, load
from movierec.evaluate import evaluate
from movierec.models import get
from movierec.split import make_split


def synthetic(n_users: int, n_items: int, n_ratings: int, seed: int) -> Dataset:
    """Power-law popularity and activity, like MovieLens, without any MovieLens content."""
    rng = np.random.default_rng(seed)
    item_p = 1.0 / np.arange(1, n_items + 1) ** 0.9
    user_p = 1.0 / np.arange(1, n_users + 1) ** 0.6
    users = rng.choice(n_users, size=int(n_ratings * 1.15), p=user_p / user_p.sum())
    items = rng.choice(n_items, size=len(users), p=item_p / item_p.sum())
    frame = pd.DataFrame({"user_id": users + 1, "item_id": items + 1})
    frame = frame.drop_duplicates().head(n_ratings)
    frame["rating"] = rng.integers(1, 6, size=len(frame)).astype(np.float32)
    frame["timestamp"] = rng.integers(9e8, 1e9, size=len(frame))
    return Dataset(frame, name=f"synthetic-{n_users}x{n_items}")


def time_eval(ds: Dataset, model_name: str, seed: int) -> dict:
    split = make_split(ds, "user-random", test_size=0.2, rng=seed)
    model = get(model_name).fit(split.train, rng=seed, progress=False)
    t0 = time.perf_counter()
    res = evaluate(model, split, ks=(5, 10, 20), relevance=0.0)
    seconds = time.perf_counter() - t0
    return {"dataset": ds.name, "model": model_name, "users": res.counts.get("users_evaluated"),
            "items": model.n_items, "seconds": round(seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    rows = []
    for ds in (load("ml-100k"), synthetic(6040, 3706, 1_000_209, args.seed)):
        for name in ("pop", "ease"):
            rows.append(time_eval(ds, name, args.seed))
            print(rows[-1])
    print(pd.DataFrame(rows).to_string(index=False))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval_speed.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
