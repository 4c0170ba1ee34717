"""Cold-start movies: how well each model ranks movies that have no training rating at all.

Protocol (`movierec.cold_start`): every rating of a random 10 % of the movies with at least 5
ratings goes to test (`item_cold_split`, seeds `--seeds`); the models are fitted on the rest with
fixed epochs set below before any run (no early stopping: the held-out movies are unknown to the
training loop) and a ranking loss (BPR);
each test user known in training gets the cold movies ranked by `score_new_items` (from genres,
year and, where the item table has them, directors and actors); NDCG@10 / recall@10 / AUC are
computed against the cold movies the user rated (relevance 0: any rating). A seeded random
ranking is the floor. Nothing is chosen on the test movies: the models run with fixed
parameters given below (`--model` adds others).

Datasets:
* `synthetic-people` (always available): `make_people_dataset` — ratings planted to follow
  directors and actors, so it shows whether a model *can* use people; not a real-data figure.
* any release (`--dataset ml-100k`, `--dataset hetrec-ml-2k`, `--dataset ml-latest-small
  --imdb-dir DIR`): the people models need directors/actors in the item table (IMDb join or
  HetRec) and are skipped, with a note, where the table has none.

    python benchmarks/cold_start.py                                # synthetic-people
    MOVIEREC_DATA_DIR=../shared/datasets python benchmarks/cold_start.py --dataset ml-100k
    python benchmarks/cold_start.py --dataset hetrec-ml-2k         # needs the HetRec files

Prints a table (mean over seeds ± std) and writes benchmarks/results/cold_start-<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.cli._app import parse_params
from movierec.cold_start import evaluate_cold, item_cold_split, random_scores
from movierec.errors import MovieRecError
from movierec.io import atomic_write_text, json_default
from movierec.models import get
from movierec.pipeline import set_threads

#: label → (registry name, parameters). The people/knowledge variants need directors/actors.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "featurenet (genres, year)": ("featurenet", {"loss": "bpr", "epochs": 20}),
    "featurenet + people": ("featurenet", {"loss": "bpr", "people": True, "epochs": 20}),
    "gmf + people": ("gmf", {"loss": "bpr", "people": True, "epochs": 20}),
    "neumf + people": ("neumf", {"loss": "bpr", "people": True, "epochs": 20}),
    "lightgcn + people graph": ("lightgcn", {"knowledge": True, "epochs": 50}),
    "ngcf + people graph": ("ngcf", {"knowledge": True, "epochs": 30}),
}


def _dataset(name: str, imdb_dir: str | None, data_dir: str | None) -> Any:
    if name == "synthetic-people":
        from movierec.data.synthetic import make_people_dataset

        return make_people_dataset(n_users=600, n_items=800, ratings_per_user=30, rng=0)
    from movierec.data import load

    return load(name, data_dir=data_dir, imdb_dir=imdb_dir)


def _parse_model(text: str) -> tuple[str, tuple[str, dict[str, Any]]]:
    """"NAME[:KEY=VALUE,...]" -> (the text as label, (name, params)); values as `--param`'s."""
    name, _, rest = text.partition(":")
    pairs = [f"{name}.{pair}" for pair in rest.split(",") if pair]
    return text, (name, parse_params(pairs, [name]).get(name, {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic-people",
                        help="synthetic-people (default) or a release name")
    parser.add_argument("--imdb-dir", default=None, help="IMDb TSV folder to join (see docs)")
    parser.add_argument("--data-dir", default=None, help="folder of releases")
    parser.add_argument("--seeds", default="1,2,3", help="split and fit seeds (comma-separated)")
    parser.add_argument("--test-size", type=float, default=0.1,
                        help="share of the movies (with ≥ 5 ratings) held out")
    parser.add_argument("--only", default=None,
                        help="comma-separated labels of MODELS to run (default: all)")
    parser.add_argument("--model", action="append", default=[],
                        help="extra model 'NAME[:KEY=VALUE,...]', e.g. "
                        "lightgcn:knowledge=True,epochs=20 (repeatable; values as in "
                        "`movierec benchmark --param`)")
    parser.add_argument("--epochs", type=int, default=None, help="override every model's epochs")
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch threads (default 1: results repeat exactly per count)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    set_threads(args.threads)
    models = dict(MODELS)
    if args.only:
        wanted = [s.strip() for s in args.only.split(",")]
        models = {k: v for k, v in models.items() if k in wanted}
    models.update(_parse_model(m) for m in args.model)
    ds = _dataset(args.dataset, args.imdb_dir, args.data_dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[dict[str, Any]] = []
    notes: dict[str, str] = {}
    for seed in seeds:
        split = item_cold_split(ds, test_size=args.test_size, rng=seed)
        print(f"seed {seed}: {split.params['test_items']} cold movies, "
              f"{split.test.n_ratings} ratings", flush=True)
        summary, _ = evaluate_cold(random_scores(seed), split)
        rows.append({"model": "random", "seed": seed, "fit_s": 0.0, **summary})
        for label, (name, params) in models.items():
            if label in notes:
                continue
            params = dict(params)
            if args.epochs is not None:
                params["epochs"] = args.epochs
            try:
                model = get(name, **params)
                t0 = time.perf_counter()
                model.fit(split.train, rng=seed, progress=False)
                fit_s = time.perf_counter() - t0
                summary, _ = evaluate_cold(model, split)
            except MovieRecError as exc:
                notes[label] = str(exc)
                print(f"  {label}: skipped ({exc})", flush=True)
                continue
            rows.append({"model": label, "seed": seed, "fit_s": fit_s, **summary})
            print(f"  {label}: ndcg@10 {summary['ndcg@10']:.4f} auc {summary['auc']:.4f} "
                  f"fit {fit_s:.1f} s", flush=True)
    frame = pd.DataFrame(rows)
    cols = ["ndcg@10", "recall@10", "auc", "fit_s"]
    table = frame.groupby("model", sort=False)[cols].agg(["mean", "std"])
    print(f"\n{args.dataset} · cold movies (all ratings of {args.test_size:.0%} of the movies "
          f"held out) · mean ± std over seeds {args.seeds}")
    print(f"{'model':<28} {'NDCG@10':>16} {'recall@10':>16} {'AUC':>16} {'fit s':>8}")
    for model, r in table.iterrows():
        cells = " ".join(f"{r[(c, 'mean')]:7.4f} ± {r[(c, 'std')]:.4f}" for c in cols[:3])
        print(f"{model:<28} {cells} {r[('fit_s', 'mean')]:8.1f}")
    for label, why in notes.items():
        print(f"{label}: skipped — {why}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"cold_start-{args.dataset}.json"
    doc = {"dataset": args.dataset, "imdb_dir": args.imdb_dir, "seeds": seeds,
           "threads": args.threads,
           "test_size": args.test_size, "runs": rows, "skipped": notes,
           "models": {k: {"name": n, "params": p} for k, (n, p) in models.items()},
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "load_average": os.getloadavg()}}
    atomic_write_text(path, json.dumps(doc, indent=2, default=json_default))
    print(f"wrote {path}")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
