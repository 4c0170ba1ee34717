"""Users' time-ordered rating sequences, in numpy alone (no torch).

Shared by the sequential models (`movierec.models.sequential`) and the re-ranker's sequence
features (`movierec.models._rerank_features`): each user's ratings in time order, ties by item
code.
"""

from __future__ import annotations

import numpy as np

__all__ = ["build_histories", "build_windows", "positions", "time_order"]


def time_order(users: np.ndarray, items: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Permutation sorting ratings by (user, timestamp, item): each user's sequence in order."""
    return np.lexsort((np.asarray(items), np.asarray(timestamps), np.asarray(users)))


def positions(users_sorted: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(position within the user's sequence, length of that sequence) for user-sorted rows."""
    counts = np.bincount(users_sorted, minlength=n_users).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(users_sorted), dtype=np.int64) - starts[users_sorted]
    return pos, counts[users_sorted]


def build_histories(users: np.ndarray, items: np.ndarray, timestamps: np.ndarray,
                    n_users: int, n_items: int, max_len: int,
                    ratings: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each user's latest `max_len` items in time order, left-padded with `n_items`.

    Args:
        users: user codes of every rating.
        items: item codes of every rating.
        timestamps: their times; equal times are ordered by item code.
        n_users: number of user codes.
        n_items: number of item codes (also the pad index).
        max_len: columns kept (the latest interactions).
        ratings: optional ratings aligned with `items`.

    Returns:
        (items int64 [n_users, max_len], ratings float32 [n_users, max_len]; 0 at padding).
    """
    users = np.asarray(users, dtype=np.int64)
    order = time_order(users, items, timestamps)
    u = users[order]
    pos, length = positions(u, n_users)
    from_end = length - 1 - pos
    keep = from_end < max_len
    col = max_len - 1 - from_end[keep]
    hist = np.full((n_users, max_len), n_items, dtype=np.int64)
    hist[u[keep], col] = np.asarray(items, dtype=np.int64)[order][keep]
    rat = np.zeros((n_users, max_len), dtype=np.float32)
    if ratings is not None:
        rat[u[keep], col] = np.asarray(ratings, dtype=np.float32)[order][keep]
    return hist, rat


def build_windows(users: np.ndarray, items: np.ndarray, timestamps: np.ndarray,
                  ratings: np.ndarray, n_users: int, n_items: int, max_len: int
                  ) -> dict[str, np.ndarray]:
    """Teacher-forcing windows: every training interaction is a target exactly once.

    A user's sequence s_0..s_{n−1} is cut from its end into ⌈n / max_len⌉ rows; target s_t sits
    in row w = (n−1−t) // max_len at column max_len−1 − (n−1−t) % max_len, with input s_{t−1}
    (the pad index `n_items` for t = 0). Rows are left-padded with `n_items`, so the last row of
    a user is aligned exactly like the context used at evaluation.

    Returns:
        {"user": [R], "input": [R, max_len], "target": [R, max_len], "rating": [R, max_len]}.
    """
    users = np.asarray(users, dtype=np.int64)
    order = time_order(users, items, timestamps)
    u = users[order]
    it = np.asarray(items, dtype=np.int64)[order]
    r = np.asarray(ratings, dtype=np.float32)[order]
    pos, length = positions(u, n_users)
    from_end = length - 1 - pos
    counts = np.bincount(u, minlength=n_users).astype(np.int64)
    n_windows = -(-counts // max_len)
    offsets = np.concatenate([[0], np.cumsum(n_windows)[:-1]])
    row = offsets[u] + from_end // max_len
    col = max_len - 1 - from_end % max_len
    n_rows = int(n_windows.sum())
    prev = np.concatenate([[n_items], it[:-1]])
    prev[pos == 0] = n_items
    inp = np.full((n_rows, max_len), n_items, dtype=np.int64)
    tgt = np.full((n_rows, max_len), n_items, dtype=np.int64)
    rat = np.zeros((n_rows, max_len), dtype=np.float32)
    inp[row, col] = prev
    tgt[row, col] = it
    rat[row, col] = r
    row_user = np.repeat(np.arange(n_users, dtype=np.int64), n_windows)
    return {"user": row_user, "input": inp, "target": tgt, "rating": rat}
