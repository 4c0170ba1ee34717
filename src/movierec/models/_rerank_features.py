"""The re-ranker's side features, computed from the training data alone (`movierec.models.rerank`).

Item popularity, mean rating and recency; the user's activity, mean rating and recency; genre
profiles for the genre overlap; release year and user demographics where the tables have them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from movierec.data.dataset import Dataset
from movierec.models._features import side_column

__all__ = ["side_features", "user_rows"]

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


def user_rows(side: dict[str, np.ndarray], codes: np.ndarray) -> dict[str, np.ndarray]:
    """The user features of `side` for a block of user codes."""
    return {k: v[codes] for k, v in side.items() if k.startswith("user_")}
