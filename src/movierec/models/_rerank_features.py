"""The re-ranker's side features, computed from the training data alone (`movierec.models.rerank`).

Item popularity, mean rating and recency; the user's activity, mean rating and recency; genre
profiles for the genre overlap; release year and user demographics where the tables have them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.models._features import side_column
from movierec.models._sequences import positions, time_order

__all__ = ["CONTEXT_FEATURES", "SEQUENCE_FEATURES", "SEQUENCE_KEYS", "TIMELINE_KEYS",
           "context_columns", "sequence_columns", "sequence_side", "sequence_weights",
           "side_features", "timeline", "user_rows"]

#: The (user, item) time-context features: each item's training ratings counted up to the
#: user's last training day, and within the user's own active period (from `context_days`
#: before their first training rating to their last), as of that day.
CONTEXT_FEATURES = ("ctx_item_log_count_before", "ctx_item_log_count_window",
                    "ctx_item_share_window", "ctx_item_days_since_first")
#: The (user, item) sequence features: Σ_j S[j, i] over the user's training movies j, and over
#: their `RECENT` latest, with S the time-adjacency similarity of `sequence_weights`.
SEQUENCE_FEATURES = ("seq_adjacency", "seq_adjacency_recent")
#: How many of a user's latest training movies "seq_adjacency_recent" sums over (ML-100K
#: user-time validation carve-out: 3 and 5 gave NDCG@10 0.1796, 10 gave 0.1764).
RECENT = 5
#: Neighbours kept per movie in the time-adjacency similarity.
SEQUENCE_NEIGHBORS = 100
#: The side arrays `timeline` adds, which the context features are computed from.
TIMELINE_KEYS = ("timeline_key", "timeline_cum", "timeline_day_total", "user_first_day",
                 "user_last_day")
#: The side matrices `sequence_side` adds, which the sequence features are computed from.
SEQUENCE_KEYS = ("seq_weights", "user_recent")

_DAY = 86400.0


def _per_code(codes: np.ndarray, values: np.ndarray, n: int, how: str) -> np.ndarray:
    """Max/min/sum of `values` per code in [0, n) as float64 (NaN where a code has none)."""
    out = np.full(n, np.nan)
    if how == "sum":
        return np.bincount(codes, weights=values, minlength=n).astype(np.float64)
    frame = pd.Series(values).groupby(codes).agg(how)
    out[frame.index.to_numpy()] = frame.to_numpy(np.float64)
    return out


def side_features(train: Dataset, genres: Sequence[str], occupations: Sequence[str]
                  ) -> dict[str, np.ndarray]:
    """Item and user features from `train` alone, in its own codes.

    Times are in days before the training end (the latest training timestamp). Users' and
    items' missing side information is NaN (LightGBM's missing value).

    Args:
        train: the ratings the features are computed from (their side tables too).
        genres: the genre columns (the training genres, so both stages agree).
        occupations: occupation categories; a user's `user_occupation` is the index, NaN if
            absent.

    Returns:
        Arrays: "item_log_count", "item_mean_rating", "item_days_since_last",
        "item_days_since_first", "item_year" [n_items]; "item_genres" float32 [n_items, G];
        "user_log_count", "user_mean_rating", "user_days_since_last", "user_age",
        "user_gender" (1 M, 0 F), "user_occupation" [n_users]; "user_genres" float32
        [n_users, G], the share of the user's rated items that have each genre.
    """
    u, i = train.codes
    n_users, n_items = train.n_users, train.n_items
    r = train.ratings["rating"].to_numpy(np.float64)
    days = (train.ratings["timestamp"].max() - train.ratings["timestamp"].to_numpy()) / _DAY
    item_n = np.bincount(i, minlength=n_items).astype(np.float64)
    user_n = np.bincount(u, minlength=n_users).astype(np.float64)
    item_genres = np.asarray(train.genre_matrix(train.item_vocab.index, list(genres)).todense(),
                             dtype=np.float32).reshape(n_items, len(genres))
    seen = train.matrix("binary")
    user_genres = np.asarray(seen @ item_genres, dtype=np.float32) / np.maximum(user_n, 1)[:, None]
    out = {
        "item_log_count": np.log1p(item_n),
        "item_mean_rating": _per_code(i, r, n_items, "sum") / np.maximum(item_n, 1),
        "item_days_since_last": _per_code(i, days, n_items, "min"),
        "item_days_since_first": _per_code(i, days, n_items, "max"),
        "item_year": _item_column(train.items, train.item_vocab.index, "year"),
        "item_genres": item_genres.astype(np.float32),
        "user_log_count": np.log1p(user_n),
        "user_mean_rating": _per_code(u, r, n_users, "sum") / np.maximum(user_n, 1),
        "user_days_since_last": _per_code(u, days, n_users, "min"),
        "user_genres": user_genres.astype(np.float32),
    }
    ids = train.user_vocab.index
    out["user_age"] = _user_column(train.users, ids, "age")
    gender = _user_column(train.users, ids, "gender", numeric=False)
    out["user_gender"] = np.where(gender == "M", 1.0, np.where(gender == "F", 0.0, np.nan))
    occupation = _user_column(train.users, ids, "occupation", numeric=False)
    index = pd.Index(list(occupations)).get_indexer(pd.Index(occupation))
    out["user_occupation"] = np.where(index >= 0, index, np.nan).astype(np.float64)
    return {k: np.asarray(v, dtype=np.float32 if v.ndim == 2 else np.float64)
            for k, v in out.items()}


def _item_column(items: pd.DataFrame | None, ids: np.ndarray, column: str) -> np.ndarray:
    values = side_column(items, "item_id", ids, column)
    if values is None:
        return np.full(len(ids), np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(np.float64)


def _user_column(users: pd.DataFrame | None, ids: np.ndarray, column: str, *,
                 numeric: bool = True) -> np.ndarray:
    values = side_column(users, "user_id", ids, column)
    if values is None:
        return np.full(len(ids), np.nan) if numeric else np.full(len(ids), None, dtype=object)
    if numeric:
        return pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    return values.astype("string").to_numpy(dtype=object, na_value=None)


def timeline(train: Dataset) -> dict[str, np.ndarray]:
    """Each item's training ratings per day, cumulated, for the time-context features.

    Days count from the first training timestamp; n_days is len("timeline_day_total").
    Returns float64 arrays: "timeline_key" (item code × n_days + day of each (item, day) with
    ratings, sorted), "timeline_cum" (the item's ratings up to and including that day),
    "timeline_day_total" [n_days] (all ratings up to and including each day), "user_first_day"
    and "user_last_day" [n_users] (NaN where none).
    """
    u, i = train.codes
    t = train.ratings["timestamp"].to_numpy(np.float64)
    start = float(t.min()) if len(t) else 0.0
    day = np.floor((t - start) / _DAY).astype(np.int64)
    n_days = int(day.max()) + 1 if len(day) else 1
    key, counts = np.unique(i.astype(np.int64) * n_days + day, return_counts=True)
    cum = np.cumsum(counts)
    item = key // n_days
    first = np.r_[True, item[1:] != item[:-1]] if len(item) else np.zeros(0, dtype=bool)
    before = np.where(first, cum - counts, 0)
    cum = cum - np.maximum.accumulate(before) if len(cum) else cum
    day_f = day.astype(np.float64)
    return {
        "timeline_key": key.astype(np.float64),
        "timeline_cum": cum.astype(np.float64),
        "timeline_day_total": np.cumsum(np.bincount(day, minlength=n_days)).astype(np.float64),
        "user_first_day": _per_code(u, day_f, train.n_users, "min"),
        "user_last_day": _per_code(u, day_f, train.n_users, "max"),
    }


def _upto(side: dict[str, np.ndarray], items: np.ndarray, days: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts up to and including each day, for (item, day) pairs.

    Returns:
        (the item's training ratings, all training ratings, the item's first training day):
        0, 0 and NaN before the item's or the data's first rating.
    """
    totals = side["timeline_day_total"]
    n_days = len(totals)
    keys = side["timeline_key"]
    d = np.clip(days, -1, n_days - 1).astype(np.int64)
    base = items.astype(np.int64) * n_days
    pos = np.searchsorted(keys, base + d, side="right") - 1
    safe = np.maximum(pos, 0)
    ok = (pos >= 0) & (keys[safe].astype(np.int64) // n_days == items) & (d >= 0)
    first = keys[np.minimum(np.searchsorted(keys, base), len(keys) - 1)] - base
    return (np.where(ok, side["timeline_cum"][safe], 0.0),
            np.where(d >= 0, totals[np.maximum(d, 0)], 0.0),
            np.where(ok, first, np.nan))


def context_columns(side: dict[str, np.ndarray], user: dict[str, np.ndarray], rows: np.ndarray,
                    cols: np.ndarray, context_days: int) -> dict[str, np.ndarray]:
    """The `CONTEXT_FEATURES` of (row, item) pairs; `user` holds the rows' user features.

    Nothing after the user's last training day is counted, so on a time-ordered split no
    feature looks into the user's future; a user without a training day (a new user folded
    in, NaN days) is placed at the training end.
    """
    end = float(len(side["timeline_day_total"]) - 1)
    last = np.nan_to_num(user["user_last_day"][rows], nan=end)
    first = np.nan_to_num(user["user_first_day"][rows], nan=end)
    before, total_before, first_day = _upto(side, cols, last)
    earlier, total_earlier, _ = _upto(side, cols, first - float(context_days) - 1)
    window = before - earlier
    return {
        "ctx_item_log_count_before": np.log1p(before),
        "ctx_item_log_count_window": np.log1p(window),
        "ctx_item_share_window": window / np.maximum(total_before - total_earlier, 1.0),
        "ctx_item_days_since_first": last - first_day,
    }


def sequence_weights(users: np.ndarray, items: np.ndarray, n_items: int, window: int,
                     n_neighbors: int = SEQUENCE_NEIGHBORS) -> sp.csr_matrix:
    """Time-adjacency similarity S float32 CSR [n_items, n_items] of time-ordered ratings.

    `users`, `items`: codes of the ratings sorted by user, then time (`time_order`). c_ab
    counts the times movies a and b are within `window` places of each other in a user's
    sequence (both orders); S[a, b] = c_ab / √(n_a n_b), n the movies' rating counts, a zero
    diagonal, each row pruned to its `n_neighbors` largest entries (ties to the lower column).
    The item-kNN cosine restricted to what users rated close together: on ML-100K the order of
    rating carries what the MovieLens pages showed together.
    """
    rows, cols = [], []
    for d in range(1, window + 1):
        same = users[d:] == users[:-d]
        a, b = items[:-d][same], items[d:][same]
        rows += [a, b]
        cols += [b, a]
    r = np.concatenate(rows) if rows else np.empty(0, np.int64)
    c = np.concatenate(cols) if cols else np.empty(0, np.int64)
    keep = r != c
    m = sp.csr_matrix((np.ones(int(keep.sum())), (r[keep], c[keep])), shape=(n_items, n_items))
    m.sum_duplicates()
    count = np.bincount(items, minlength=n_items).astype(np.float64)
    row = np.repeat(np.arange(n_items), np.diff(m.indptr))
    m.data = m.data / np.sqrt(count[row] * count[m.indices])
    order = np.lexsort((m.indices, -m.data, row))
    rank = np.arange(len(order)) - m.indptr[row[order]]
    top = order[rank < n_neighbors]
    out = sp.csr_matrix((m.data[top], (row[top], m.indices[top])), shape=(n_items, n_items),
                        dtype=np.float32)
    out.sort_indices()
    return out


def sequence_side(train: Dataset, window: int, n_recent: int = RECENT) -> dict[str, sp.csr_matrix]:
    """The `SEQUENCE_KEYS` of `train`, from one time ordering of its ratings.

    "seq_weights": `sequence_weights` with `window`; "user_recent": binary float32 CSR
    [n_users, n_items] of each user's `n_recent` latest training movies.
    """
    u, i = train.codes
    order = time_order(u, i, train.ratings["timestamp"].to_numpy())
    us, its = u[order].astype(np.int64), i[order].astype(np.int64)
    pos, length = positions(us, train.n_users)
    recent = length - pos <= n_recent
    return {
        "seq_weights": sequence_weights(us, its, train.n_items, window),
        "user_recent": sp.csr_matrix(
            (np.ones(int(recent.sum()), np.float32), (us[recent], its[recent])),
            shape=(train.n_users, train.n_items)),
    }


def sequence_columns(side: dict[str, np.ndarray], user: dict[str, np.ndarray],
                     rows: np.ndarray, cols: np.ndarray) -> dict[str, np.ndarray]:
    """The `SEQUENCE_FEATURES` of (row, item) pairs.

    The user's history (`user["history"]`, binary [rows, n_items]) and latest movies
    (`user["user_recent"]`), each summed through the time-adjacency weights.
    """
    weights = side["seq_weights"]
    return {name: np.asarray((sp.csr_matrix(movies) @ weights).toarray())[rows, cols]
            .astype(np.float64)
            for name, movies in (("seq_adjacency", user["history"]),
                                 ("seq_adjacency_recent", user["user_recent"]))}


def user_rows(side: dict[str, np.ndarray], codes: np.ndarray, history: sp.csr_matrix
              ) -> dict[str, np.ndarray]:
    """The user features of `side` for a block of user codes, and their binary `history`."""
    return {**{k: v[codes] for k, v in side.items() if k.startswith("user_")},
            "history": history}
