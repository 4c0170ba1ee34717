"""K-fold cross-validation splits: fold `fold` of `folds`, built like any other split.

Each fold is one `Split`, named after its strategy ("random", "user-random", "user-time") with
`params["fold"]` (1-based) and `params["folds"]`, so that `SplitSpec.from_record` rebuilds it.
The assignment of ratings to folds depends only on the seed, so building fold 1..K with the same
seed gives one partition:

* "random": the ratings in a seeded random order; the j-th goes to fold j mod K. Every rating is
  in exactly one test fold; fold sizes differ by at most one.
* "user-random": each user's ratings in a seeded random order; the j-th goes to fold
  (j + o_u) mod K with a random offset o_u per user, so that each user's ratings are spread
  evenly over the folds and the folds have (nearly) the same size. Every rating is in exactly
  one test fold. A user with fewer than K ratings has no test rating in some folds; a user with
  a single rating is, in the fold that tests it, unseen in training (counted in the split's
  report like any unseen user, never dropped).
* "user-time" ("rolling origin", per user): each user's ratings in time order are cut into
  K + 1 consecutive chunks of near-equal size (chunk of the j-th of c ratings:
  floor(j (K + 1) / c)); fold f tests chunk f and trains on chunks 0..f-1, and the later chunks
  are left out of that fold. No user is ever tested on a rating earlier than one they trained on
  (`check_leakage` verifies it), the first chunk is never tested, and training grows from fold to
  fold, as in a forward-chaining time series cross-validation. Ties in time are broken as in
  `user_time_split` (by item id without a seed, else at random).

Validation (`valid_size`) is carved from each fold's training part: at random for "random"
(globally) and "user-random" (per user), each user's latest training ratings for "user-time".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from movierec.data.dataset import Dataset
from movierec.errors import SplitError
from movierec.random import RNGLike
from movierec.split._base import (
    Split,
    _check_count,
    _check_fraction,
    _lex_order,
    _make,
    _need_rows,
    _round_half_up,
    _seeded,
    _tail_labels,
)
from movierec.split._leakage import TEST, TRAIN, VALID

#: Split kinds that take `fold=` and `folds=`.
FOLD_KINDS = ("random", "user-random", "user-time")
#: Named fold sets read from a release's own files: one split kind per fold.
FOLD_SETS = {"ml100k-5fold": ("u1", "u2", "u3", "u4", "u5")}
_UNUSED = np.int8(-1)


def _positions(sorted_users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position of each sorted row within its user, user's row count per row, start flags)."""
    n = len(sorted_users)
    is_start = np.ones(n, dtype=bool)
    is_start[1:] = sorted_users[1:] != sorted_users[:-1]
    starts = np.flatnonzero(is_start)
    count = np.diff(np.append(starts, n))
    position = np.arange(n) - np.repeat(starts, count)
    return position, np.repeat(count, count), is_start


def fold_labels(ds: Dataset, kind: str, folds: int, rng: RNGLike = None
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """The fold of every rating row (0..folds-1; for "user-time" the chunk 0..folds).

    Returns:
        (int array of one label per row of `ds.ratings`, params to record: seed, ties).
    """
    r = ds.ratings
    users = r["user_id"].to_numpy()
    if kind == "random":
        gen, seed = _seeded(rng)
        out = np.empty(len(users), dtype=np.int64)
        out[gen.permutation(len(users))] = np.arange(len(users)) % folds
        return out, {"seed": seed}
    if kind == "user-random":
        gen, seed = _seeded(rng)
        order = _lex_order([users, gen.integers(0, 2**32, size=len(users), dtype=np.int64)])
        position, _, is_start = _positions(users[order])
        offset = np.repeat(gen.integers(0, folds, size=int(is_start.sum())),
                           np.diff(np.append(np.flatnonzero(is_start), len(order))))
        out = np.empty(len(users), dtype=np.int64)
        out[order] = (position + offset) % folds
        return out, {"seed": seed}
    if kind == "user-time":
        from movierec.split._strategies import _time_order

        users, order, seed = _time_order(ds, rng)
        position, count, _ = _positions(users[order])
        out = np.empty(len(users), dtype=np.int64)
        out[order] = position * (folds + 1) // count
        return out, {"seed": seed, "ties": "item_id" if rng is None else "random"}
    raise SplitError(f"folds: split kind {kind!r} has no K-fold version; expected one of "
                     f"{', '.join(FOLD_KINDS)} (or --split ml100k-5fold)")


def kfold_split(ds: Dataset, kind: str = "user-random", *, fold: int, folds: int,
                valid_size: float = 0.0, rng: RNGLike = None) -> Split:
    """Fold `fold` (1-based) of a `folds`-fold cross-validation of `ds` (see the module doc).

    Args:
        ds: the dataset to split.
        kind: "random", "user-random" or "user-time" (rolling origin per user).
        fold: which fold is the test part, 1..folds.
        folds: the number of folds K (>= 2).
        valid_size: fraction of the fold's training part carved out for validation, in [0, 1).
        rng: seed of the fold assignment (the same for every fold of one cross-validation);
            for "user-time" None breaks time ties by item id.

    Returns:
        Split named `kind`, with params fold, folds, seed, valid_size and the counts of rows
        the fold leaves out ("user-time": chunks after the test chunk).

    Raises:
        SplitError: bad kind, fold or folds, or too few ratings.
    """
    folds = _check_count("folds", folds, 2)
    fold = _check_count("fold", fold, 1)
    if fold > folds:
        raise SplitError(f"fold must be in 1..{folds}, got {fold}")
    valid_size = _check_fraction("valid_size", valid_size, allow_zero=True)
    _need_rows(ds, folds, f"{folds}-fold cross-validation")
    label_of, params = fold_labels(ds, kind, folds, rng)
    time_aware = kind == "user-time"
    test_chunk = fold if time_aware else fold - 1
    labels = np.where(label_of == test_chunk, TEST, TRAIN).astype(np.int8)
    if time_aware:
        labels[label_of > test_chunk] = _UNUSED
    if valid_size:
        labels = _carve(ds, labels, kind, valid_size, params.get("seed"))
    record: dict[str, Any] = {"fold": fold, "folds": folds, "test_size": None,
                              "valid_size": valid_size, **params, "time_aware": time_aware}
    if time_aware:
        record["rolling"] = True
        record["unused_ratings"] = int((labels == _UNUSED).sum())
    return _make(ds, labels, bool(valid_size), kind, record)


def _carve(ds: Dataset, labels: np.ndarray, kind: str, fraction: float,
           seed: int | None) -> np.ndarray:
    """`labels` with `fraction` of the training rows relabelled VALID (see the module doc)."""
    train = np.flatnonzero(labels == TRAIN)
    gen = np.random.default_rng([0 if seed is None else seed, 1])
    out = labels.copy()
    if kind == "random":
        n_valid = int(np.clip(_round_half_up(fraction * len(train)), 1, max(len(train) - 1, 1)))
        out[train[gen.permutation(len(train))[:n_valid]]] = VALID
        return out
    r = ds.ratings.iloc[train]
    users = r["user_id"].to_numpy()
    key = (r["timestamp"].to_numpy() if kind == "user-time"
           else gen.integers(0, 2**32, size=len(train), dtype=np.int64))
    order = _lex_order([users, key, r["item_id"].to_numpy()])
    sub = _tail_labels(users, order, test_frac=fraction)
    out[train[sub == TEST]] = VALID
    return out


__all__ = ["FOLD_KINDS", "FOLD_SETS", "fold_labels", "kfold_split"]
