"""Cold-start movies: hold out every rating of some movies, then rank them for their raters.

A movie nobody has rated yet is known only by its side data: genres, year and, with IMDb's files
or HetRec 2011, its directors and actors. `item_cold_split` makes that situation from any
dataset: a seeded random share of the movies (among those with at least `min_item_ratings`
ratings) loses all its ratings to the test part (and optionally another share to a validation
part, for choosing parameters without the test movies). `evaluate_cold` then asks a fitted model
to rank *the cold movies only* for every test user known in training (`score_new_items`), and
scores the ranking against the cold movies that user rated:

- ndcg@k, recall@k, hit@k: the usual definitions over the cold candidates (relevance ≥
  `relevance`);
- auc: the share of (rated, not rated) cold-movie pairs the model orders correctly, 0.5 for a
  random order (ties count half).

A random ranking (`random_scores`, seeded) is the floor every model must clear; the expected
values are printed beside the models by `benchmarks/cold_start.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from movierec import metrics as M
from movierec.data.dataset import Dataset, item_rows
from movierec.errors import SplitError
from movierec.random import RNGLike
from movierec.split import Split, check_leakage

__all__ = ["evaluate_cold", "item_cold_split", "random_scores"]

#: Users scored per block in `evaluate_cold`.
_BLOCK = 1024


def item_cold_split(ds: Dataset, *, test_size: float = 0.1, valid_size: float = 0.0,
                    min_item_ratings: int = 5, rng: RNGLike = 0) -> Split:
    """Every rating of a random `test_size` share of the movies goes to test.

    Args:
        ds: the dataset.
        test_size: share of the eligible movies held out for test, in (0, 1).
        valid_size: share of the eligible movies held out for validation, in [0, 1); their
            ratings form the valid part (choose parameters there, never on test).
        min_item_ratings: only movies with at least this many ratings are held out (a movie
            rated once says little about a ranking); the others always stay in training.
        rng: seed or Generator.

    Returns:
        Split named "item-cold"; `params` records the shares, the seed and the held-out counts.

    Raises:
        SplitError: shares out of range, or too few eligible movies for them.
    """
    for name, value, zero_ok in (("test_size", test_size, False),
                                 ("valid_size", valid_size, True)):
        if not (0 <= value < 1) or (value == 0 and not zero_ok):
            raise SplitError(f"item_cold_split: {name} must be in {'[0' if zero_ok else '(0'}"
                             f", 1), got {value}")
    if test_size + valid_size >= 1:
        raise SplitError("item_cold_split: test_size + valid_size must be below 1")
    gen = np.random.default_rng(rng)
    counts = ds.ratings["item_id"].value_counts()
    eligible = np.sort(counts.index[counts >= min_item_ratings].to_numpy())
    n_test = int(round(test_size * len(eligible)))
    n_valid = int(round(valid_size * len(eligible)))
    if n_test < 2 or (valid_size and n_valid < 2) or n_test + n_valid >= len(ds.item_vocab):
        raise SplitError(f"item_cold_split: {len(eligible)} movies with ≥ {min_item_ratings} "
                         f"ratings in {ds.name!r} are too few for test_size {test_size} and "
                         f"valid_size {valid_size}")
    chosen = gen.permutation(eligible)
    test_items, valid_items = chosen[:n_test], chosen[n_test:n_test + n_valid]
    item = ds.ratings["item_id"].to_numpy()
    in_test = np.isin(item, test_items)
    in_valid = np.isin(item, valid_items)
    r = ds.ratings
    split = Split(train=ds.with_ratings(r[~in_test & ~in_valid]),
                  test=ds.with_ratings(r[in_test]),
                  valid=ds.with_ratings(r[in_valid]) if n_valid else None,
                  name="item-cold",
                  params={"test_size": test_size, "valid_size": valid_size,
                          "min_item_ratings": min_item_ratings,
                          "seed": rng if isinstance(rng, int) else None,
                          "test_items": n_test, "valid_items": n_valid})
    check_leakage(split)
    return split


def random_scores(rng: RNGLike = 0) -> Callable[[np.ndarray, pd.DataFrame], np.ndarray]:
    """A scorer with `score_new_items`' signature giving seeded uniform random scores."""
    gen = np.random.default_rng(rng)

    def score(user_ids: np.ndarray, items: pd.DataFrame) -> np.ndarray:
        return gen.random((len(user_ids), len(items))).astype(np.float32)

    return score


def _auc(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Share of (relevant, other) pairs ordered correctly by `scores` (ties count half)."""
    n_pos = int(relevant.sum())
    n_neg = len(relevant) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks: ties count half
    return float((ranks[relevant].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate_cold(scorer: Any, split: Split, *, ks: Sequence[int] = (10,),
                  relevance: float = 0.0, part: str = "test"
                  ) -> tuple[dict[str, float], pd.DataFrame]:
    """Rank the cold movies of `split`'s `part` for its users known in training.

    Args:
        scorer: a fitted model (its `score_new_items` is used) or a function
            (user_ids, items) -> scores [users, items], e.g. `random_scores()`.
        split: an `item_cold_split`.
        ks: cut-offs.
        relevance: a rated cold movie is relevant when its rating ≥ this (0: every rating).
        part: "test" or "valid".

    Returns:
        (summary {metric: mean over users, "users", "candidates", "unknown_users"}, per-user
        frame user_id, n_relevant, ndcg@k..., recall@k..., hit@k..., auc).

    Raises:
        SplitError: the part is missing or holds a movie that is also in training.
    """
    held = split.test if part == "test" else split.valid
    if held is None:
        raise SplitError(f"evaluate_cold: the split has no {part} part")
    cold_ids = np.sort(held.ratings["item_id"].unique())
    if (split.train.item_vocab.codes(cold_ids, missing="negative") >= 0).any():
        raise SplitError("evaluate_cold: some held-out movies have training ratings; use "
                         "item_cold_split")
    score = scorer if callable(scorer) and not hasattr(scorer, "score_new_items") \
        else scorer.score_new_items
    items = item_rows(split.train.items, cold_ids)
    if items is None:
        items = pd.DataFrame({"item_id": cold_ids})
    r = held.ratings
    known = split.train.user_vocab.codes(r["user_id"].to_numpy(), missing="negative") >= 0
    unknown_users = int(r.loc[~known, "user_id"].nunique())
    rel = r[known & (r["rating"].to_numpy() >= relevance)]
    users = np.sort(rel["user_id"].unique())
    col = pd.Index(cold_ids).get_indexer(rel["item_id"].to_numpy())
    row = pd.Index(users).get_indexer(rel["user_id"].to_numpy())
    truth = np.zeros((len(users), len(cold_ids)), dtype=bool)
    truth[row, col] = True
    kmax = max(ks)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(users), _BLOCK):
        block = users[start:start + _BLOCK]
        s = np.asarray(score(block, items), dtype=np.float64)
        t = truth[start:start + _BLOCK]
        top = np.argsort(-s, axis=1, kind="stable")[:, :kmax]
        hits_all = np.take_along_axis(t, top, axis=1)
        n_rel = t.sum(axis=1)
        values: dict[str, np.ndarray] = {}
        for k in ks:
            hits = hits_all[:, :k]
            values[f"ndcg@{k}"] = M.ndcg(hits, n_rel)
            values[f"recall@{k}"] = M.recall(hits, n_rel)
            values[f"hit@{k}"] = M.hit_rate(hits)
        aucs = [_auc(s[j], t[j]) for j in range(len(block))]
        for j, user in enumerate(block):
            rows.append({"user_id": int(user), "n_relevant": int(n_rel[j]),
                         **{key: float(v[j]) for key, v in values.items()}, "auc": aucs[j]})
    frame = pd.DataFrame(rows)
    summary: dict[str, float] = {key: float(frame[key].mean()) for key in frame.columns
                                 if key not in ("user_id", "n_relevant")} if len(frame) else {}
    summary.update(users=float(len(frame)), candidates=float(len(cold_ids)),
                   unknown_users=float(unknown_users))
    return summary, frame
