"""Side-feature encoding for feature-aware models: user demographics and movie genres/year.

Torch-free. `user_feature_spec`/`item_feature_spec` learn vocabularies and moments from the
training users and items only; `encode_users`/`encode_items` turn a table into float32 rows with
that spec (unknown values give zero rows), so a saved model encodes exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = [
    "AGE_ENCODINGS",
    "ML1M_AGE_GROUPS",
    "encode_items",
    "encode_users",
    "feature_names",
    "item_feature_spec",
    "side_column",
    "user_feature_spec",
]

#: Age-group codes of ML-1M's users.dat (1: under 18, 18: 18-24, ..., 56: 56+).
ML1M_AGE_GROUPS = (1, 18, 25, 35, 45, 50, 56)
AGE_ENCODINGS = ("auto", "number", "groups")


def side_column(table: pd.DataFrame | None, key: str, ids: np.ndarray,
                column: str) -> pd.Series | None:
    """`column` of `table` for each of `ids` (NaN where an id is absent), or None without it."""
    if table is None or column not in table.columns or key not in table.columns:
        return None
    indexed = table.drop_duplicates(key).set_index(key)[column]
    return indexed.reindex(pd.Index(np.asarray(ids))).reset_index(drop=True)


def _vocab(values: pd.Series) -> list[Any]:
    """Sorted distinct non-missing values (plain Python scalars, so the list is JSON-able)."""
    known = values.dropna()
    return sorted({v.item() if isinstance(v, np.generic) else v for v in known.tolist()})


def _one_hot(values: pd.Series, vocab: Sequence[Any]) -> np.ndarray:
    """float32 [n, len(vocab)]; values outside `vocab` (or missing) give a zero row."""
    out = np.zeros((len(values), len(vocab)), dtype=np.float32)
    cols = pd.Index(list(vocab)).get_indexer(pd.Index(values.to_numpy()))
    rows = np.flatnonzero(cols >= 0)
    out[rows, cols[rows]] = 1.0
    return out


def _as_str(values: pd.Series) -> pd.Series:
    """Values as str objects, missing ones as None (vocabularies are kept as strings)."""
    return pd.Series(values.astype("string").to_numpy(dtype=object, na_value=None))


def _moments(values: pd.Series) -> dict[str, float] | None:
    """Mean and standard deviation (1 where it is 0) of the finite values; None without any."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return None
    std = float(x.std())
    return {"mean": float(x.mean()), "std": std if std > 0 else 1.0}


def _standardized(values: pd.Series, moments: dict[str, float]) -> np.ndarray:
    """float32 [n, 1] of (x − mean) / std; missing values become 0 (the mean)."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    z = (x - moments["mean"]) / moments["std"]
    return np.where(np.isfinite(z), z, 0.0).astype(np.float32)[:, None]


def user_feature_spec(users: pd.DataFrame | None, user_ids: np.ndarray, *,
                      age_encoding: str = "auto") -> dict[str, Any]:
    """The user-feature encoding learned from the users `user_ids` (the training users).

    Args:
        users: table with user_id and any of age, gender, occupation (None: no features).
        user_ids: original ids of the training users; only their rows shape the encoding.
        age_encoding: "number" (standardized years), "groups" (one-hot of the distinct ages, as
            for ML-1M's age-group codes) or "auto" (groups when every known age is one of
            `ML1M_AGE_GROUPS`, else number). Default "auto".

    Returns:
        JSON-able dict: "age" ({"kind": "number", "mean", "std"} or {"kind": "groups",
        "values"}), "gender" and "occupation" (sorted vocabularies); a feature with no known
        value among the training users is left out.
    """
    spec: dict[str, Any] = {}
    age = side_column(users, "user_id", user_ids, "age")
    if age is not None:
        known = pd.to_numeric(age, errors="coerce").dropna()
        groups = age_encoding == "groups" or (
            age_encoding == "auto" and len(known) > 0 and bool(known.isin(ML1M_AGE_GROUPS).all()))
        if groups and len(known):
            spec["age"] = {"kind": "groups", "values": [float(v) for v in sorted(set(known))]}
        elif (moments := _moments(age)) is not None:
            spec["age"] = {"kind": "number", **moments}
    for column in ("gender", "occupation"):
        values = side_column(users, "user_id", user_ids, column)
        if values is not None and (vocab := _vocab(_as_str(values))):
            spec[column] = vocab
    return spec


def encode_users(users: pd.DataFrame | None, user_ids: np.ndarray, spec: dict[str, Any]
                 ) -> np.ndarray:
    """float32 [len(user_ids), d_u] features of `user_ids` under `spec` (see `feature_names`).

    Unknown values — an occupation or gender outside the training vocabulary, a missing age, a
    user absent from `users` — encode as zeros, which for a standardized age is the mean.
    """
    parts = [np.zeros((len(user_ids), 0), dtype=np.float32)]
    if "age" in spec:
        age = side_column(users, "user_id", user_ids, "age")
        age = pd.Series(np.full(len(user_ids), np.nan)) if age is None else age
        if spec["age"]["kind"] == "groups":
            parts.append(_one_hot(pd.to_numeric(age, errors="coerce").astype(np.float64),
                                  spec["age"]["values"]))
        else:
            parts.append(_standardized(age, spec["age"]))
    for column in ("gender", "occupation"):
        if column in spec:
            values = side_column(users, "user_id", user_ids, column)
            values = pd.Series([None] * len(user_ids)) if values is None else values
            parts.append(_one_hot(_as_str(values), spec[column]))
    return np.ascontiguousarray(np.hstack(parts), dtype=np.float32)


def item_feature_spec(items: pd.DataFrame | None, item_ids: np.ndarray) -> dict[str, Any]:
    """The item-feature encoding learned from the items `item_ids` (the training items).

    Args:
        items: table with item_id and any of genres (tuples), year, month (1-12).
        item_ids: original ids of the training items.

    Returns:
        JSON-able dict: "genres" (sorted vocabulary), "year" ({"mean", "std"}), "month" (True
        when a month column has known values); features without known values are left out.
    """
    spec: dict[str, Any] = {}
    genres = side_column(items, "item_id", item_ids, "genres")
    if genres is not None:
        vocab = sorted({str(g) for gs in genres if isinstance(gs, tuple | list) for g in gs})
        if vocab:
            spec["genres"] = vocab
    year = side_column(items, "item_id", item_ids, "year")
    if year is not None and (moments := _moments(year)) is not None:
        spec["year"] = moments
    month = side_column(items, "item_id", item_ids, "month")
    if month is not None and _moments(month) is not None:
        spec["month"] = True
    return spec


def encode_items(items: pd.DataFrame | None, item_ids: np.ndarray, spec: dict[str, Any]
                 ) -> np.ndarray:
    """float32 [len(item_ids), d_i] features of `item_ids` under `spec` (see `feature_names`).

    Genres are multi-hot (genres outside the vocabulary are ignored), the year is standardized
    (unknown: 0, the mean), the month one-hot over 1-12 (unknown: zeros).
    """
    n = len(item_ids)
    parts = [np.zeros((n, 0), dtype=np.float32)]
    if "genres" in spec:
        genres = side_column(items, "item_id", item_ids, "genres")
        lists = pd.Series([tuple(g) if isinstance(g, tuple | list) else ()
                           for g in (genres if genres is not None else [()] * n)])
        flat = lists.explode()
        cols = pd.Index(spec["genres"]).get_indexer(pd.Index(flat.to_numpy()))
        rows = flat.index.to_numpy()[cols >= 0]
        multi = np.zeros((n, len(spec["genres"])), dtype=np.float32)
        multi[rows, cols[cols >= 0]] = 1.0
        parts.append(multi)
    if "year" in spec:
        year = side_column(items, "item_id", item_ids, "year")
        parts.append(_standardized(year if year is not None else pd.Series(np.full(n, np.nan)),
                                   spec["year"]))
    if spec.get("month"):
        month = side_column(items, "item_id", item_ids, "month")
        month = pd.Series(np.full(n, np.nan)) if month is None else month
        parts.append(_one_hot(pd.to_numeric(month, errors="coerce").astype(np.float64),
                              [float(m) for m in range(1, 13)]))
    return np.ascontiguousarray(np.hstack(parts), dtype=np.float32)


def feature_names(spec: dict[str, Any], kind: Literal["user", "item"]) -> list[str]:
    """Column names of `encode_users`/`encode_items` output, e.g. "occupation=writer", "year"."""
    names: list[str] = []
    if kind == "user":
        if "age" in spec:
            age = spec["age"]
            names += ([f"age={v:g}" for v in age["values"]] if age["kind"] == "groups"
                      else ["age"])
        for column in ("gender", "occupation"):
            names += [f"{column}={v}" for v in spec.get(column, [])]
    else:
        names += [f"genre={g}" for g in spec.get("genres", [])]
        names += ["year"] if "year" in spec else []
        names += [f"month={m}" for m in range(1, 13)] if spec.get("month") else []
    return names
