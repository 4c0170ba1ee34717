"""check_leakage: partitions are disjoint and time-aware splits respect time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from movierec.errors import SplitError

TRAIN, VALID, TEST = 0, 1, 2

if TYPE_CHECKING:
    from movierec.split._base import Split


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
