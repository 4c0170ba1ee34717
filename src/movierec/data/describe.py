"""Summary statistics of a Dataset, as a plain JSON-ready dict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.dataset import Dataset


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = all equal, → 1 = one holds everything)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(2.0 * np.sum(ranks * x) / (n * total) - (n + 1) / n)


def degree_stats(counts: np.ndarray) -> dict[str, float]:
    """min, median, mean, max and Gini of per-user or per-item rating counts."""
    if len(counts) == 0:
        return {"min": 0, "median": 0.0, "mean": 0.0, "max": 0, "gini": 0.0}
    return {"min": int(counts.min()), "median": float(np.median(counts)),
            "mean": float(counts.mean()), "max": int(counts.max()), "gini": gini(counts)}


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(int(ts), tz=UTC).date().isoformat()


def genre_counts(ds: Dataset) -> list[dict[str, Any]]:
    """Ratings per genre, most rated first: [{"genre", "ratings", "share"}] (share of ratings)."""
    if ds.items is None or "genres" not in ds.items or ds.n_ratings == 0:
        return []
    per_item = ds.ratings["item_id"].value_counts()
    exploded = ds.items[["item_id", "genres"]].explode("genres").dropna(subset=["genres"])
    exploded = exploded.assign(ratings=exploded["item_id"].map(per_item).fillna(0))
    by_genre = exploded.groupby("genres")["ratings"].sum().sort_values(ascending=False,
                                                                         kind="stable")
    return [{"genre": str(g), "ratings": int(c), "share": float(c) / ds.n_ratings}
            for g, c in by_genre.items() if c > 0]


def describe(ds: Dataset, *, top_genres: int = 20) -> dict[str, Any]:
    """Counts, sparsity, rating histogram, time range, degree statistics and genre totals.

    Args:
        ds: the dataset.
        top_genres: how many genres to list, most rated first.

    Returns:
        A dict with keys name, users, items, ratings, items_in_catalog, tags, has_users_table,
        density, sparsity, rating_scale, rating_mean, rating_histogram ({value: count}),
        time_range ({"first", "last"} ISO dates, or None without timestamps), user_degree and
        item_degree ({min, median, mean, max, gini}), genres (top list of {genre, ratings,
        share}), and item_features ({column: share of catalog movies with a value}) for the
        people, country and IMDb columns the item table has (HetRec, or after an IMDb join).
    """
    r = ds.ratings
    values, counts = np.unique(r["rating"].to_numpy(), return_counts=True)
    ts = r["timestamp"].to_numpy()
    time_range = None
    if len(ts) and ts.max() > 0:
        time_range = {"first": _iso(ts.min()), "last": _iso(ts.max())}
    user_deg = pd.Series(r["user_id"]).value_counts().to_numpy()
    item_deg = pd.Series(r["item_id"]).value_counts().to_numpy()
    return {
        "name": ds.name,
        "users": ds.n_users,
        "items": ds.n_items,
        "ratings": ds.n_ratings,
        "items_in_catalog": None if ds.items is None else len(ds.items),
        "tags": None if ds.tags is None else len(ds.tags),
        "has_users_table": ds.users is not None,
        "density": ds.density,
        "sparsity": 1.0 - ds.density,
        "rating_scale": ds.rating_scale,
        "rating_mean": float(r["rating"].mean()) if len(r) else None,
        "rating_histogram": {float(v): int(c) for v, c in zip(values, counts, strict=True)},
        "time_range": time_range,
        "user_degree": degree_stats(user_deg),
        "item_degree": degree_stats(item_deg),
        "genres": genre_counts(ds)[:top_genres],
        "item_features": item_feature_coverage(ds),
    }


#: Item columns whose coverage `describe` reports when the item table has them.
FEATURE_COLUMNS = ("imdb_id", "directors", "writers", "actors", "countries", "runtime",
                   "imdb_rating", "imdb_votes", "rt_all_critics_score", "rt_audience_score")


def item_feature_coverage(ds: Dataset) -> dict[str, float]:
    """Share of the item table's movies with a value in each feature column it has.

    A tuple column (directors, actors, ...) counts a movie when the tuple is not empty; others
    when the value is not missing. Empty without an item table or such columns.
    """
    from movierec.data.imdb import coverage

    return coverage(ds.items, FEATURE_COLUMNS)
