"""Probes for issue #21's random-split target: can anything cheap add to EASE on validation?

ML-100K per-user random 80/20 (split seed `--split-seed`); everything is fit on the training
part minus each user's random 10 % carve-out and judged on that carve-out (NDCG@10, relevance 0,
full ranking over the movies the user has not rated in the fit part). The test part is never
read. Each probe is EASE (λ `--lam`) alone, another score alone, or a blend of per-user
z-scores, EASE + w · other, for several w. Because w is picked on the same carve-out, the best
blend is an optimistic figure. The probes (docs/results.md, "Random split"):

* `session`: movies others submitted in the same rating session (same user, same second) as the
  user's movies: item × item co-occurrence within sessions, degree-normalized;
* `time-share`: each movie's share of all ratings around the user's own rating days (Gaussian
  windows of `--days` days);
* `user-ridge`: ridge regression over users (K = X Xᵀ, the dual of an item model);
* `inf-ae`: ∞-AE (Sachdeva et al. 2022), kernel ridge regression with the neural tangent kernel of
  an infinitely wide one-hidden-layer ReLU autoencoder;
* `rated-ease`: EASE on input X + a·(rating − 3) at the rated cells.

Also prints the share of a random test part whose timestamp equals one of the same user's
training timestamps (how much of a rating session a random split cuts in two).

    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/random_split_probes.py

Writes benchmarks/results/random_split_probes.json.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from _common import json_default
from rich.console import Console
from rich.table import Table

from movierec import data
from movierec.io import atomic_write_text
from movierec.metrics import ndcg as ndcg_at
from movierec.models.ease import _gram, weights_from_inverse
from movierec.ranking import topk_rows
from movierec.split import carve_validation, make_split

RESULTS = Path(__file__).parent / "results"
WEIGHTS = (0.1, 0.2, 0.4, 0.5, 1.0)


def ease_scores(x: sp.csr_matrix, lam: float) -> np.ndarray:
    """EASE's X·B (Steck 2019), with the weights the `ease` model computes."""
    return np.asarray(x @ weights_from_inverse(np.linalg.inv(_gram(x, lam))))


def ntk_relu(a: np.ndarray) -> np.ndarray:
    """NTK of a one-hidden-layer ReLU network between the rows of `a` (arc-cosine kernels)."""
    norms = np.linalg.norm(a, axis=1) + 1e-12
    dot = a @ a.T
    cos = np.clip(dot / np.outer(norms, norms), -1.0, 1.0)
    theta = np.arccos(cos)
    nngp = np.outer(norms, norms) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)
    return nngp + dot * (np.pi - theta) / (2 * np.pi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split-seed", type=int, default=1, help="outer split and carve-out seed")
    parser.add_argument("--lam", type=float, default=300.0, help="EASE's λ (300: tuned on this "
                        "carve-out for split seed 1)")
    parser.add_argument("--days", default="1,3,7,30", help="time-share window widths, in days")
    parser.add_argument("--out", type=Path, default=RESULTS / "random_split_probes.json")
    args = parser.parse_args()
    ds = data.load("ml-100k")
    split = make_split(ds, "user-random", test_size=0.2, rng=args.split_seed)
    inner, held = carve_validation(split.train, 0.1, args.split_seed)
    users = {u: k for k, u in enumerate(np.unique(ds.ratings["user_id"]))}
    items = {i: k for k, i in enumerate(np.unique(ds.ratings["item_id"]))}
    n_u, n_i = len(users), len(items)
    fr = inner.ratings
    tu = fr["user_id"].map(users).to_numpy()
    ti = fr["item_id"].map(items).to_numpy()
    tt = fr["timestamp"].to_numpy()
    x = sp.csr_matrix((np.ones(len(tu)), (tu, ti)), shape=(n_u, n_i))
    vr = held.ratings
    truth = sp.csr_matrix((np.ones(len(vr)), (vr["user_id"].map(users).to_numpy(),
                                               vr["item_id"].map(items).to_numpy())),
                          shape=(n_u, n_i)).toarray() > 0
    seen = x.toarray() > 0
    rows = np.flatnonzero(truth.any(axis=1))
    n_relevant = truth[rows].sum(axis=1)

    def ndcg(scores: np.ndarray) -> float:
        top, _ = topk_rows(np.where(seen, -np.inf, scores)[rows].astype(np.float32), 10)
        hits = truth[rows][np.arange(len(rows))[:, None], top] & (top >= 0)
        return float(ndcg_at(hits, n_relevant).mean())

    def z(scores: np.ndarray) -> np.ndarray:
        s = np.where(seen, np.nan, scores)
        mean = np.nanmean(s, axis=1, keepdims=True)
        std = np.nanstd(s, axis=1, keepdims=True) + 1e-12
        return np.nan_to_num((s - mean) / std, nan=0.0)

    ease = ease_scores(x, args.lam)
    results: list[dict[str, object]] = [{"probe": "ease", "alone": ndcg(ease), "blends": {}}]

    def probe(name: str, make: Callable[[], np.ndarray], blend: bool = True) -> None:
        other = make()
        entry: dict[str, object] = {"probe": name, "alone": ndcg(other), "blends": {}}
        if blend:
            entry["blends"] = {str(w): ndcg(z(ease) + w * z(other)) for w in WEIGHTS}
        results.append(entry)

    def session() -> np.ndarray:
        _, sess = np.unique(tu.astype(np.int64) * 10**10 + tt, return_inverse=True)
        s_x = sp.csr_matrix((np.ones(len(sess)), (sess, ti)), shape=(sess.max() + 1, n_i))
        co = (s_x.T @ s_x).tocsr()
        co.setdiag(0)
        inv = sp.diags(1.0 / np.sqrt(np.maximum(np.asarray(x.sum(axis=0)).ravel(), 1.0)))
        return np.asarray((x @ (inv @ co @ inv)).toarray())

    probe("session", session)
    day = (tt - tt.min()) // 86400
    n_days = int(day.max()) + 1
    per_item_day = sp.csr_matrix((np.ones(len(ti)), (ti, day)), shape=(n_i, n_days)).toarray()
    per_user_day = sp.csr_matrix((np.ones(len(tu)), (tu, day)), shape=(n_u, n_days)).toarray()
    per_user_day /= np.maximum(per_user_day.sum(axis=1, keepdims=True), 1.0)
    for width in (int(d) for d in args.days.split(",")):
        kernel = np.exp(-0.5 * (np.arange(-3 * width, 3 * width + 1) / width) ** 2)

        def share(kernel: np.ndarray = kernel) -> np.ndarray:
            smooth = np.apply_along_axis(lambda r: np.convolve(r, kernel, "same"), 1, per_item_day)
            total = np.convolve(per_item_day.sum(axis=0), kernel, "same") + 1e-9
            return np.log(per_user_day @ (smooth / total).T + 1e-6)

        probe(f"time-share {width} d", share)
    dense = x.toarray()
    gram_u = dense @ dense.T
    for lam in (100.0, 300.0):
        probe(f"user-ridge λ {lam:g}",
              lambda lam=lam: gram_u @ np.linalg.solve(gram_u + lam * np.eye(n_u), dense))
    kernel = ntk_relu(dense)
    scale = np.trace(kernel) / n_u / 100
    for lam in (50.0, 200.0, 400.0):
        probe(f"inf-ae λ {lam:g}",
              lambda lam=lam: kernel @ np.linalg.solve(kernel + lam * scale * np.eye(n_u), dense))
    rated = sp.csr_matrix((fr["rating"].to_numpy(), (tu, ti)), shape=(n_u, n_i))
    for a in (0.1, 0.3):
        probe(f"rated-ease a {a:g}", lambda a=a: ease_scores(sp.csr_matrix(x + a * (rated - 3 * x)),
                                                                args.lam), blend=False)
    # How much of a random test part shares a second with the same user's training ratings.
    test = split.test.ratings
    train_keys = set(zip(split.train.ratings["user_id"], split.train.ratings["timestamp"],
                         strict=True))
    shared = float(np.mean([(u, t) in train_keys for u, t in zip(test["user_id"], test["timestamp"],
                                                                 strict=True)]))
    table = Table(title=f"ML-100K user-random, split seed {args.split_seed}, validation "
                        f"NDCG@10 (EASE λ {args.lam:g} = {results[0]['alone']:.4f})",
                  title_justify="left")
    for col in ("probe", "alone", *[f"EASE + {w:g}·z" for w in WEIGHTS]):
        table.add_column(col, justify="left" if col == "probe" else "right")
    for entry in results:
        blends = entry["blends"]
        assert isinstance(blends, dict)
        table.add_row(str(entry["probe"]), f"{entry['alone']:.4f}",
                      *[f"{blends[str(w)]:.4f}" if str(w) in blends else "—" for w in WEIGHTS])
    console = Console(width=140)
    console.print(table)
    console.print(f"test ratings sharing a second with the same user's training ratings: "
                  f"{shared:.1%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps({
        "benchmark": "random_split_probes", "date": datetime.now(UTC).isoformat(),
        "split_seed": args.split_seed, "ease_lambda": args.lam, "results": results,
        "test_sharing_a_training_second": shared,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": list(os.getloadavg())},
    }, indent=2, default=json_default))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
