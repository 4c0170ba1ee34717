"""Split dataclass and the helpers every strategy shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from movierec.data.dataset import Dataset
from movierec.errors import SplitError
from movierec.random import RNGLike, as_generator, derive_seed
from movierec.split._leakage import TEST, TRAIN, VALID, check_leakage

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
