"""Random, per-user random, per-user time, global time and leave-one-out splits."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

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


def random_split(
    ds: Dataset, *, test_size: float = 0.2, valid_size: float = 0.0, rng: RNGLike = None
) -> Split:
    """Global random split: a uniformly random `test_size` share of all ratings goes to test.

    Args:
        ds: the dataset to split.
        test_size: fraction of ratings for test, in (0, 1); the count is rounded half up and kept
            within [1, n - 1] so both parts are non-empty. Default 0.2.
        valid_size: fraction of the training part carved out at random for validation, in
            [0, 1); 0 (default) means no validation part.
        rng: seed or Generator; None draws a fresh seed (recorded in `params["seed"]`).

    Returns:
        Split named "random".
    """
    test_size = _check_fraction("test_size", test_size)
    valid_size = _check_fraction("valid_size", valid_size, allow_zero=True)
    _need_rows(ds, 3 if valid_size else 2, "random_split")
    gen, seed = _seeded(rng)
    n = ds.n_ratings
    n_test = int(np.clip(_round_half_up(test_size * n), 1, n - 1))
    n_valid = 0
    if valid_size:
        n_valid = int(np.clip(_round_half_up(valid_size * (n - n_test)), 1, n - n_test - 1))
    perm = gen.permutation(n)
    labels = np.full(n, TRAIN, dtype=np.int8)
    labels[perm[:n_test]] = TEST
    labels[perm[n_test : n_test + n_valid]] = VALID
    params = {"test_size": test_size, "valid_size": valid_size, "seed": seed, "time_aware": False}
    return _make(ds, labels, bool(valid_size), "random", params)


def user_random_split(
    ds: Dataset,
    *,
    test_size: float = 0.2,
    valid_size: float = 0.0,
    min_train: int = 1,
    rng: RNGLike = None,
) -> Split:
    """Per-user random split: each user's ratings are split at random in the ratio `test_size`.

    A user with c ratings sends round_half_up(test_size * c) of them to test, capped so that at
    least `min_train` stay in train; a user with c <= min_train ratings (e.g. one rating) stays
    entirely in train. Users whose share rounds to 0 (c < 1 / (2 * test_size)) get no test rows.

    Args:
        ds: the dataset to split.
        test_size: per-user fraction of ratings for test, in (0, 1). Default 0.2.
        valid_size: per-user fraction of the remaining training ratings moved to validation at
            random, in [0, 1), with the same rounding and `min_train` cap. Default 0 (none).
        min_train: ratings each user keeps in train at least (>= 1). Default 1.
        rng: seed or Generator; None draws a fresh seed (recorded in `params["seed"]`).

    Returns:
        Split named "user-random".
    """
    test_size = _check_fraction("test_size", test_size)
    valid_size = _check_fraction("valid_size", valid_size, allow_zero=True)
    min_train = _check_count("min_train", min_train, 1)
    _need_rows(ds, 2, "user_random_split")
    gen, seed = _seeded(rng)
    users = ds.ratings["user_id"].to_numpy()
    order = _lex_order([users, gen.integers(0, 2**32, size=len(users), dtype=np.int64)])
    labels = _tail_labels(
        users, order, test_frac=test_size, valid_frac=valid_size, min_train=min_train
    )
    params = {
        "test_size": test_size,
        "valid_size": valid_size,
        "min_train": min_train,
        "seed": seed,
        "time_aware": False,
    }
    return _make(ds, labels, bool(valid_size), "user-random", params)


# --- time-aware splits -------------------------------------------------------------------------
def _time_order(ds: Dataset, rng: RNGLike) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(users, order by user then time then tie-break, recorded seed) for per-user time splits.

    Ties in timestamp are broken by item id when `rng` is None (deterministic without a seed),
    else by a random key drawn from `rng`.
    """
    r = ds.ratings
    users = r["user_id"].to_numpy()
    if rng is None:
        tie, seed = r["item_id"].to_numpy(), None
    else:
        gen, seed = _seeded(rng)
        tie = gen.integers(0, 2**32, size=len(users), dtype=np.int64)
    return users, _lex_order([users, r["timestamp"].to_numpy(), tie]), seed


def user_time_split(
    ds: Dataset,
    *,
    test_size: float = 0.2,
    test_n: int | None = None,
    valid_size: float = 0.0,
    rng: RNGLike = None,
) -> Split:
    """Per-user temporal split: each user's latest ratings go to test.

    A user with c ratings sends the latest round_half_up(test_size * c) (or the latest `test_n`)
    to test, always keeping at least one in train; a user with one rating stays in train. Ratings
    with equal timestamps are ordered by item id (rng=None, the default: deterministic) or by a
    random key drawn from `rng`. No user's test rating is earlier than any of their training ones.

    Args:
        ds: the dataset to split.
        test_size: per-user fraction of ratings for test, in (0, 1). Default 0.2.
        test_n: if given (>= 1), the number of latest ratings per user for test instead of a
            fraction; takes precedence over `test_size`.
        valid_size: per-user fraction of the remaining training ratings, the latest ones, moved to
            validation, in [0, 1). Default 0 (none).
        rng: None (ties by item id) or a seed/Generator for random tie-breaking.

    Returns:
        Split named "user-time" with `params["time_aware"] = True`.
    """
    test_size = _check_fraction("test_size", test_size)
    valid_size = _check_fraction("valid_size", valid_size, allow_zero=True)
    if test_n is not None:
        test_n = _check_count("test_n", test_n, 1)
    _need_rows(ds, 2, "user_time_split")
    users, order, seed = _time_order(ds, rng)
    labels = _tail_labels(users, order, test_frac=test_size, test_n=test_n, valid_frac=valid_size)
    params = {
        "test_size": None if test_n is not None else test_size,
        "test_n": test_n,
        "valid_size": valid_size,
        "seed": seed,
        "ties": "item_id" if rng is None else "random",
        "time_aware": True,
    }
    return _make(ds, labels, bool(valid_size), "user-time", params)


def leave_one_out(ds: Dataset, *, valid: bool = False, rng: RNGLike = None) -> Split:
    """Leave-one-out: each user's latest rating goes to test (the next latest to valid).

    Users with one rating stay in train; with `valid=True`, users with two ratings give one to
    test and keep one in train (no validation row). Ties in timestamp as in `user_time_split`.

    Args:
        ds: the dataset to split.
        valid: also hold out each user's second-latest rating for validation. Default False.
        rng: None (ties by item id) or a seed/Generator for random tie-breaking.

    Returns:
        Split named "loo" with `params["time_aware"] = True`.
    """
    _need_rows(ds, 2, "leave_one_out")
    users, order, seed = _time_order(ds, rng)
    labels = _tail_labels(users, order, test_n=1, valid_n=1 if valid else 0)
    params = {
        "valid": bool(valid),
        "seed": seed,
        "ties": "item_id" if rng is None else "random",
        "time_aware": True,
    }
    return _make(ds, labels, bool(valid), "loo", params)


def _as_unix_seconds(cut: int | str | datetime) -> int:
    """A cut given as unix seconds, an ISO date string or a datetime, as int seconds (UTC)."""
    if isinstance(cut, int | np.integer) and not isinstance(cut, bool):
        return int(cut)
    if isinstance(cut, str | datetime):
        try:
            t = pd.Timestamp(cut)
        except ValueError as exc:
            raise SplitError(f"cut {cut!r} is not an ISO date: {exc}") from None
        if t.tzinfo is None:
            t = t.tz_localize("UTC")
        return math.ceil(t.timestamp())
    raise SplitError(f"cut must be unix seconds (int) or an ISO date string, got {cut!r}")


def _quantile_cut(ts: np.ndarray, fraction: float, what: str) -> int:
    """The timestamp t that puts the share of ratings at/after t closest to `fraction`.

    t is never the earliest timestamp, so the part before t is never empty.
    """
    uniq, counts = np.unique(ts, return_counts=True)
    if len(uniq) < 2:
        raise SplitError(
            f"cannot cut {what} by time: all {len(ts)} ratings share one timestamp "
            f"({uniq[0] if len(uniq) else 'none'})"
        )
    at_or_after = len(ts) - np.cumsum(counts) + counts
    best = int(np.argmin(np.abs(at_or_after[1:] - fraction * len(ts)))) + 1
    return int(uniq[best])


def time_split(
    ds: Dataset,
    *,
    test_size: float = 0.2,
    cut: int | str | datetime | None = None,
    valid_size: float = 0.0,
) -> Split:
    """Global temporal split: every rating at or after the cut is test, every one before is train.

    Deterministic (no rng). Users and items that first appear after the cut are kept in test and
    counted in `Split.report`.

    Args:
        ds: the dataset to split.
        test_size: when `cut` is None, the cut is the timestamp that puts the share of ratings
            at/after it closest to `test_size` (ties in time can make it larger); in (0, 1).
            Default 0.2.
        cut: unix seconds (int) or an ISO date string/datetime (naive means UTC); overrides
            `test_size`.
        valid_size: share of the training part, the latest ones, moved to validation by a second
            cut chosen the same way, in [0, 1). Default 0 (none).

    Returns:
        Split named "time" with `params["cut"]` (and `params["valid_cut"]`) in unix seconds.
    """
    test_size = _check_fraction("test_size", test_size)
    valid_size = _check_fraction("valid_size", valid_size, allow_zero=True)
    ts = ds.ratings["timestamp"].to_numpy()
    cut_s = _quantile_cut(ts, test_size, "test") if cut is None else _as_unix_seconds(cut)
    is_test = ts >= cut_s
    if is_test.all() or not is_test.any():
        side = "before" if is_test.all() else "at or after"
        raise SplitError(
            f"cut {cut!r} ({cut_s}) leaves no ratings {side} it in {ds.name!r} "
            f"(timestamps {ts.min()}..{ts.max()})"
        )
    labels = np.where(is_test, TEST, TRAIN).astype(np.int8)
    params: dict[str, Any] = {
        "test_size": test_size if cut is None else None,
        "cut": cut_s,
        "valid_size": valid_size,
        "time_aware": True,
    }
    if valid_size:
        valid_cut = _quantile_cut(ts[~is_test], valid_size, "the training part for validation")
        labels[~is_test & (ts >= valid_cut)] = VALID
        params["valid_cut"] = valid_cut
    return _make(ds, labels, bool(valid_size), "time", params)


# --- fixed splits from files -------------------------------------------------------------------


def carve_validation(train: Dataset, fraction: float = 0.1, rng: RNGLike = 42, *,
                     time_ordered: bool = False) -> tuple[Dataset, Dataset]:
    """A per-user `fraction` of `train` as validation: returns (rest, validation).

    Seeded random per user by default (`user_random_split`); with `time_ordered`, each user's
    latest ratings, ties by item id (`user_time_split`), which is what a time-ordered test split
    asks of its validation: a random carve-out rewards predicting the past from the future, and
    tunes e.g. EASE's λ for the wrong task. The rule of `--valid-size`, used by `movierec tune`.

    Args:
        train: the training part to carve from.
        fraction: per-user share for validation, in (0, 1); default 0.1.
        rng: seed or Generator of the random carve-out (default 42, so that an unseeded call
            repeats); unused with `time_ordered`.
        time_ordered: carve each user's latest ratings instead of random ones.
    """
    if time_ordered:
        part = user_time_split(train, test_size=fraction)
    else:
        part = user_random_split(train, test_size=fraction, rng=rng)
    return part.train, part.test
