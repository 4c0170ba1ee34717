"""Leak-free splits of a Dataset into train / (valid) / test.

Every splitter is a function that returns a `Split` whose `name` and `params` record how it was
made (for results.json), and calls `check_leakage` before returning. Stochastic splitters take
keyword `rng` (an int seed, a Generator, or None); with None a fresh seed is drawn and recorded in
`params["seed"]`, so every split can be reproduced from its record.

Shared rules:

* Parts keep the rows of the source dataset unchanged, in source order, and the source's side
  tables (`Dataset.with_ratings`). Users or items that occur in test/valid but not in train are
  kept and counted in `Split.report`, never dropped.
* Counts are rounded half up (``floor(x + 0.5)``): 2.5 ratings -> 3.
* `valid_size` is a fraction of the *training part* (what the test split left), carved out with the
  same kind of rule as the test part: random for random splits, latest for time-aware splits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.dataset import Dataset
from movierec.errors import SplitError
from movierec.random import RNGLike, as_generator, derive_seed

TRAIN, VALID, TEST = 0, 1, 2
PREDEFINED_FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
SPLIT_KINDS = ["random", "user-random", "user-time", "time", "loo", *PREDEFINED_FOLDS]


@dataclass(frozen=True, eq=False)
class Split:
    """Train / optional validation / test parts of one dataset.

    Attributes:
        train, test, valid: Datasets sharing the side tables of the source dataset.
        name: the strategy ("random", "user-random", "user-time", "time", "loo", "u1", "files").
        params: what the strategy was called with (fractions, seed, ...), for results.json.
    """

    train: Dataset
    test: Dataset
    valid: Dataset | None = None
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def report(self) -> dict[str, int]:
        """Counts of test/valid rows, users and items unseen in train: reported, not dropped."""
        out: dict[str, int] = {
            "train_ratings": self.train.n_ratings,
            "test_ratings": self.test.n_ratings,
        }
        parts = [("test", self.test)] + ([("valid", self.valid)] if self.valid is not None else [])
        if self.valid is not None:
            out["valid_ratings"] = self.valid.n_ratings
        for label, part in parts:
            users = part.ratings["user_id"].to_numpy()
            items = part.ratings["item_id"].to_numpy()
            new_u = self.train.user_vocab.codes(users, missing="negative") < 0
            new_i = self.train.item_vocab.codes(items, missing="negative") < 0
            out[f"{label}_unseen_users"] = int(len(np.unique(users[new_u])))
            out[f"{label}_unseen_items"] = int(len(np.unique(items[new_i])))
            out[f"{label}_rows_with_unseen"] = int((new_u | new_i).sum())
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for results files."""
        return {"name": self.name, **self.params, **self.report}


# --- argument checks and small helpers ---------------------------------------------------------
def _check_fraction(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return `value` as float if it lies in (0, 1) (or [0, 1) with allow_zero), else raise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SplitError(f"{name} must be a number, got {value!r}") from None
    low_ok = v >= 0.0 if allow_zero else v > 0.0
    if not (low_ok and v < 1.0):  # also rejects NaN
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise SplitError(f"{name} must be in {interval}, got {value!r}")
    return v


def _check_count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise SplitError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _round_half_up(x: np.ndarray | float) -> np.ndarray:
    """Round half up (2.5 -> 3), the documented rule for every count in this module."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5).astype(np.int64)


def _seeded(rng: RNGLike) -> tuple[np.random.Generator, int | None]:
    """Generator for `rng` and the seed to record (None when a Generator was passed in)."""
    if isinstance(rng, np.random.Generator):
        return rng, None
    seed = derive_seed(None) if rng is None else int(rng)
    return as_generator(seed), seed


def _lex_order(keys: list[np.ndarray]) -> np.ndarray:
    """Row order sorting by keys[0], then keys[1], ...; remaining ties by row position.

    As many leading keys as fit are packed into one uint64 and sorted with a stable argsort (fast,
    and very fast on files already grouped by user); ties of that packed prefix are then resolved
    by a lexsort over the tied rows only.
    """
    n = len(keys[0])
    packed = np.zeros(n, dtype=np.uint64)
    used = j = 0
    while j < len(keys):
        k = keys[j].astype(np.int64, copy=False)
        offset = (k - k.min()).astype(np.uint64)  # wraps correctly for any int64 span
        bits = int(offset.max()).bit_length() if n else 0
        if used + bits > 64:
            break
        packed = (packed << np.uint64(bits)) | offset
        used, j = used + bits, j + 1
    order = np.argsort(packed, kind="stable")
    if j == len(keys):
        return order
    p = packed[order]
    equal = p[1:] == p[:-1]
    tied = np.zeros(n, dtype=bool)
    tied[1:] |= equal
    tied[:-1] |= equal
    idx = np.flatnonzero(tied)
    if idx.size:
        sub = order[idx]
        sub_keys = [k[sub] for k in reversed(keys[j:])]
        order[idx] = sub[np.lexsort([*sub_keys, p[idx]])]
    return order


def _tail_labels(
    users: np.ndarray,
    order: np.ndarray,
    *,
    test_frac: float = 0.0,
    test_n: int | None = None,
    valid_frac: float = 0.0,
    valid_n: int | None = None,
    min_train: int = 1,
) -> np.ndarray:
    """Label the last rows of each user (in `order`) test, the next-to-last valid, the rest train.

    `order` sorts rows by user and then by the key that decides the tail (time, or a random key).
    Per user with c rows: n_test = round_half_up(test_frac * c) (or test_n), capped so that
    min_train rows stay in train; n_valid likewise from the c - n_test rows left.
    """
    sorted_users = users[order]
    n = len(order)
    is_start = np.ones(n, dtype=bool)
    is_start[1:] = sorted_users[1:] != sorted_users[:-1]
    starts = np.flatnonzero(is_start)
    count = np.diff(np.append(starts, n))  # per user, in sorted order
    n_test = (
        np.full(len(count), test_n) if test_n is not None else _round_half_up(test_frac * count)
    )
    n_test = np.clip(n_test, 0, np.maximum(count - min_train, 0))
    rest = count - n_test
    n_valid = (
        np.full(len(count), valid_n) if valid_n is not None else _round_half_up(valid_frac * rest)
    )
    n_valid = np.clip(n_valid, 0, np.maximum(rest - min_train, 0))
    # rows of a user are [start, end); the last n_test are test, the n_valid before them valid
    end = np.repeat(starts + count, count)
    from_end = end - 1 - np.arange(n)
    sorted_labels = np.full(n, TRAIN, dtype=np.int8)
    sorted_labels[from_end < np.repeat(n_test + n_valid, count)] = VALID
    sorted_labels[from_end < np.repeat(n_test, count)] = TEST
    labels = np.empty(n, dtype=np.int8)
    labels[order] = sorted_labels
    return labels


def _make(
    ds: Dataset, labels: np.ndarray, with_valid: bool, name: str, params: dict[str, Any]
) -> Split:
    """Cut `ds` by row labels into a Split, check it for leakage and return it."""
    r = ds.ratings
    valid = ds.with_ratings(r[labels == VALID]) if with_valid else None
    split = Split(
        train=ds.with_ratings(r[labels == TRAIN]),
        test=ds.with_ratings(r[labels == TEST]),
        valid=valid,
        name=name,
        params=params,
    )
    check_leakage(split)
    return split


def _need_rows(ds: Dataset, n: int, what: str) -> None:
    if ds.n_ratings < n:
        raise SplitError(
            f"{what} needs at least {n} ratings; dataset {ds.name!r} has {ds.n_ratings}"
        )


# --- random splits -----------------------------------------------------------------------------
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
def _read_fold(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise SplitError(f"predefined split file not found: {path}")
    return pd.read_csv(
        path,
        sep="\t",
        header=None,
        names=["user_id", "item_id", "rating", "timestamp"],
        dtype={
            "user_id": np.int32,
            "item_id": np.int32,
            "rating": np.float32,
            "timestamp": np.int64,
        },
    )


def predefined_split(
    ds: Dataset,
    fold: str = "u1",
    *,
    data_dir: str | Path,
    valid_size: float = 0.0,
    rng: RNGLike = None,
) -> Split:
    """One of ML-100K's shipped folds (u1..u5: 80/20 five-fold; ua, ub: 10 test ratings per user).

    Reads `<data_dir>/<fold>.base` and `<fold>.test` (or the same under `<data_dir>/ml-100k/`),
    tab-separated user, item, rating, timestamp without header.

    Args:
        ds: the ML-100K dataset; every row of the fold files must be one of its ratings.
        fold: "u1".."u5", "ua" or "ub". Default "u1".
        data_dir: folder holding the fold files, or its parent.
        valid_size: fraction of the fold's training part moved to validation at random, in
            [0, 1). Default 0 (none).
        rng: seed or Generator for the validation carve-out (unused when valid_size is 0).

    Returns:
        Split named after the fold, whose parts keep `ds`'s side tables.

    Raises:
        SplitError: unknown fold, missing files (naming the path), or `ds` is not ML-100K.
    """
    if fold not in PREDEFINED_FOLDS:
        raise SplitError(f"fold must be one of {list(PREDEFINED_FOLDS)}, got {fold!r}")
    valid_size = _check_fraction("valid_size", valid_size, allow_zero=True)
    folder = Path(data_dir)
    if not (folder / f"{fold}.base").is_file() and (folder / "ml-100k" / f"{fold}.base").is_file():
        folder = folder / "ml-100k"
    base, test = _read_fold(folder / f"{fold}.base"), _read_fold(folder / f"{fold}.test")
    keys = ["user_id", "item_id", "timestamp"]
    both = pd.concat([base, test], ignore_index=True)[keys]
    found = both.merge(ds.ratings[keys].drop_duplicates(), on=keys, how="left", indicator=True)
    missing = int((found["_merge"] == "left_only").sum())
    if missing or len(both) != ds.n_ratings:
        raise SplitError(
            f"dataset {ds.name!r} ({ds.n_ratings} ratings) is not the ML-100K "
            f"release of {folder}: {missing} of {len(both)} fold rows are not in it"
        )
    params: dict[str, Any] = {
        "fold": fold,
        "path": str(folder),
        "valid_size": valid_size,
        "time_aware": False,
    }
    valid = None
    if valid_size:
        gen, params["seed"] = _seeded(rng)
        n_valid = int(np.clip(_round_half_up(valid_size * len(base)), 1, len(base) - 1))
        is_valid = np.zeros(len(base), dtype=bool)
        is_valid[gen.permutation(len(base))[:n_valid]] = True
        valid, base = ds.with_ratings(base[is_valid]), base[~is_valid]
    split = Split(
        train=ds.with_ratings(base),
        test=ds.with_ratings(test),
        valid=valid,
        name=fold,
        params=params,
    )
    check_leakage(split)
    return split


def files_split(
    train_path: str | Path,
    test_path: str | Path,
    valid_path: str | Path | None = None,
    *,
    base: Dataset | None = None,
    **read_kwargs: Any,
) -> Split:
    """A split the user brings as files, read with `movierec.data.files.load_ratings_file`.

    Args:
        train_path, test_path: rating files of the training and test parts.
        valid_path: optional rating file of the validation part.
        base: the release the files come from; when given, every part takes its side tables
            (items, users, tags, links) and name.
        **read_kwargs: passed to `load_ratings_file` (sep, header, columns, rating_scale, name).

    Returns:
        Split named "files"; `check_leakage` rejects files that share (user, item, time) rows.
    """
    from movierec.data.files import load_ratings_file

    paths = {"train": train_path, "test": test_path, "valid": valid_path}
    parts: dict[str, Dataset | None] = {}
    for label, path in paths.items():
        if path is None:
            parts[label] = None
            continue
        part = load_ratings_file(path, **read_kwargs)
        parts[label] = part if base is None else base.with_ratings(part.ratings)
    train, test = parts["train"], parts["test"]
    assert train is not None and test is not None
    params = {
        "train_path": str(train_path),
        "test_path": str(test_path),
        "valid_path": None if valid_path is None else str(valid_path),
        "time_aware": False,
    }
    split = Split(train=train, test=test, valid=parts["valid"], name="files", params=params)
    check_leakage(split)
    return split


# --- dispatcher --------------------------------------------------------------------------------
def make_split(
    ds: Dataset,
    kind: str,
    *,
    test_size: float = 0.2,
    valid_size: float = 0.0,
    rng: RNGLike = None,
    **kw: Any,
) -> Split:
    """Split `ds` with the strategy named `kind` (one of `SPLIT_KINDS`).

    Args:
        ds: the dataset to split.
        kind: "random", "user-random", "user-time", "time", "loo", or a predefined ML-100K fold
            "u1".."u5", "ua", "ub" (these need `data_dir=`).
        test_size: test fraction; ignored by "loo" and the predefined folds. Default 0.2.
        valid_size: validation fraction of the training part; for "loo" any value > 0 means one
            validation rating per user. Default 0.
        rng: seed or Generator, passed to the strategies that use one.
        **kw: strategy-specific options (min_train, test_n, cut, valid, data_dir).
    """
    if kind == "random":
        return random_split(ds, test_size=test_size, valid_size=valid_size, rng=rng, **kw)
    if kind == "user-random":
        return user_random_split(ds, test_size=test_size, valid_size=valid_size, rng=rng, **kw)
    if kind == "user-time":
        return user_time_split(ds, test_size=test_size, valid_size=valid_size, rng=rng, **kw)
    if kind == "time":
        return time_split(ds, test_size=test_size, valid_size=valid_size, **kw)
    if kind == "loo":
        valid = bool(kw.pop("valid", valid_size > 0))
        return leave_one_out(ds, valid=valid, rng=rng, **kw)
    if kind in PREDEFINED_FOLDS:
        if "data_dir" not in kw:
            raise SplitError(f"split kind {kind!r} reads ML-100K's fold files: pass data_dir=")
        return predefined_split(ds, kind, valid_size=valid_size, rng=rng, **kw)
    raise SplitError(f"unknown split kind {kind!r}; expected one of {SPLIT_KINDS}")


# --- leakage -----------------------------------------------------------------------------------
def _pair_keys(frame: pd.DataFrame) -> np.ndarray:
    """(user_id, item_id) packed into one int64 per row."""
    u = frame["user_id"].to_numpy().astype(np.int64)
    i = frame["item_id"].to_numpy().astype(np.int64)
    return (u << 32) | (i & 0xFFFFFFFF)


def _check_overlaps(parts: list[tuple[str, pd.DataFrame]]) -> None:
    """Raise if a (user, item, timestamp) row is in two parts.

    One sort of all (user, item) keys finds the pairs that occur more than once (none, in data
    without re-ratings); only rows with such pairs are then compared on the timestamp too.
    """
    keys = [_pair_keys(frame) for _, frame in parts]
    all_keys = np.sort(np.concatenate(keys))
    repeated = all_keys[1:][all_keys[1:] == all_keys[:-1]]
    if not repeated.size:
        return
    repeated = np.unique(repeated)
    cols = ["user_id", "item_id", "timestamp"]
    subsets = []
    for (name, frame), k in zip(parts, keys, strict=True):
        pos = np.minimum(np.searchsorted(repeated, k), len(repeated) - 1)
        subsets.append((name, frame.loc[repeated[pos] == k, cols]))
    for i, (a_name, a) in enumerate(subsets):
        for b_name, b in subsets[i + 1 :]:
            shared = b.merge(a, on=cols)
            if len(shared):
                row = shared.iloc[0]
                raise SplitError(
                    f"{len(shared)} (user, item, timestamp) row(s) are in both "
                    f"{a_name} and {b_name}, e.g. user {row.user_id}, item "
                    f"{row.item_id}, timestamp {row.timestamp}"
                )


def _check_user_order(parts: list[tuple[str, pd.DataFrame]], split_name: str) -> None:
    """Raise if a user has a rating in a later part earlier than one in an earlier part."""
    spans = [
        (name, frame.groupby("user_id", sort=False)["timestamp"].agg(["min", "max"]))
        for name, frame in parts
    ]
    for i, (e_name, earlier) in enumerate(spans):
        for l_name, later in spans[i + 1 :]:
            both = pd.concat(
                [earlier["max"].rename("last"), later["min"].rename("first")], axis=1, join="inner"
            )
            bad = both[both["first"] < both["last"]]
            if len(bad):
                user, row = bad.index[0], bad.iloc[0]
                raise SplitError(
                    f"time leak in split {split_name!r}: {len(bad)} user(s) have a {l_name} "
                    f"rating earlier than a {e_name} rating, e.g. user {user}: {l_name} at "
                    f"{row['first']} < {e_name} at {row['last']}"
                )


def check_leakage(split: Split) -> None:
    """Raise SplitError if the split leaks test (or validation) information into training.

    Checks that no (user, item, timestamp) row is in two parts; for time-aware splits
    (`params["time_aware"]`), that no user's test (valid) rating is earlier than one of their
    train (train or valid) ratings; for a global time cut (`params["cut"]`), that all test ratings
    are at/after the cut and all others before it (likewise for `params["valid_cut"]`).
    """
    parts = [("train", split.train.ratings)]
    if split.valid is not None:
        parts.append(("valid", split.valid.ratings))
    parts.append(("test", split.test.ratings))
    _check_overlaps(parts)
    if not split.params.get("time_aware"):
        return
    if "cut" in split.params:
        _check_cut(parts, split.params["cut"], "test", "cut")
        if "valid_cut" in split.params:
            _check_cut(parts[:2], split.params["valid_cut"], "valid", "valid_cut")
        return
    _check_user_order(parts, split.name)


def _check_cut(parts: list[tuple[str, pd.DataFrame]], cut: int, after: str, label: str) -> None:
    """Raise unless part `after` is entirely at/after `cut` and the parts before it before it."""
    for name, frame in parts:
        ts = frame["timestamp"].to_numpy()
        if not len(ts):
            continue
        if name == after and ts.min() < cut:
            raise SplitError(
                f"time leak: {name} has a rating at {ts.min()}, before the {label} {cut}"
            )
        if name != after and ts.max() >= cut:
            raise SplitError(
                f"time leak: {name} has a rating at {ts.max()}, at/after the {label} {cut}"
            )
        if name == after:
            return


__all__ = [
    "SPLIT_KINDS",
    "Split",
    "SplitError",
    "check_leakage",
    "files_split",
    "leave_one_out",
    "make_split",
    "predefined_split",
    "random_split",
    "time_split",
    "user_random_split",
    "user_time_split",
]
