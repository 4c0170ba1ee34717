"""Dataset filters: item metadata, rating threshold, minimum counts and iterative k-core.

The order is fixed, so that a filter description reads the same in every paper-style table:

1. item-metadata filters (`require_genres`, `min_year`, `max_year`) drop ratings of items that
   fail them;
2. `min_rating` drops ratings below the threshold;
3. minimum counts, in one pass: items with fewer than `min_item_ratings` ratings go first, then
   users with fewer than `min_user_ratings` of the remaining ratings (as the seed papers do, so
   a few users may end below the item threshold's effect; use `kcore` for a guarantee);
4. iterative k-core: users and items with fewer than `kcore` ratings are removed repeatedly
   until every remaining user and item has at least `kcore`.

Side tables (items, users, tags, links) are lookups and are kept whole.
"""

from __future__ import annotations

import logging

import numpy as np

from movierec.data.dataset import Dataset
from movierec.errors import DataError

logger = logging.getLogger(__name__)


def _counts(ids: np.ndarray) -> np.ndarray:
    """For each row, how many rows share its id."""
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return counts[inverse]


def kcore_mask(user_ids: np.ndarray, item_ids: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the rows in the k-core: every kept user and item has ≥ k kept rows.

    Args:
        user_ids: user id of each rating row.
        item_ids: item id of each rating row.
        k: the core's minimum degree (≤ 1 keeps everything).
    """
    keep = np.ones(len(user_ids), dtype=bool)
    if k <= 1 or len(user_ids) == 0:
        return keep
    _, u = np.unique(user_ids, return_inverse=True)
    _, i = np.unique(item_ids, return_inverse=True)
    n_u, n_i = int(u.max()) + 1, int(i.max()) + 1
    while True:
        uc = np.bincount(u[keep], minlength=n_u)
        ic = np.bincount(i[keep], minlength=n_i)
        new = keep & (uc[u] >= k) & (ic[i] >= k)
        if new.sum() == keep.sum():
            return new
        keep = new


def _item_metadata_mask(ds: Dataset, require_genres: bool, min_year: int | None,
                        max_year: int | None) -> np.ndarray:
    items = ds.items
    if items is None:
        raise DataError(f"{ds.name}: require_genres/min_year/max_year need an item table, "
                        "and this dataset has none")
    ok = np.ones(len(items), dtype=bool)
    if require_genres:
        ok &= np.fromiter((len(g) > 0 for g in items["genres"]), dtype=bool, count=len(items))
    years = items["year"].to_numpy(np.float64)
    if min_year is not None:
        ok &= years >= min_year  # NaN compares False: unknown years are dropped
    if max_year is not None:
        ok &= years <= max_year
    allowed = items["item_id"].to_numpy()[ok]
    return np.isin(ds.ratings["item_id"].to_numpy(), allowed)


def apply_filters(
    ds: Dataset,
    *,
    min_user_ratings: int = 0,
    min_item_ratings: int = 0,
    kcore: int = 0,
    min_rating: float | None = None,
    require_genres: bool = False,
    min_year: int | None = None,
    max_year: int | None = None,
) -> Dataset:
    """A new Dataset with the filtered ratings; `ds` is not changed.

    Args:
        ds: the dataset.
        min_user_ratings: drop users with fewer ratings (after the item pass); 0 = off.
        min_item_ratings: drop items with fewer ratings; 0 = off.
        kcore: iterate until every user and item has at least this many ratings; 0 = off.
        min_rating: drop ratings below this value; None = off.
        require_genres: drop ratings of items without any genre.
        min_year: drop ratings of items released before this year (or of unknown year).
        max_year: drop ratings of items released after this year (or of unknown year).

    Raises:
        ValueError: a negative count.
        DataError: a metadata filter on a dataset without an item table.
    """
    for pname, value in (("min_user_ratings", min_user_ratings),
                         ("min_item_ratings", min_item_ratings), ("kcore", kcore)):
        if value < 0:
            raise ValueError(f"{pname} must be >= 0, got {value}")
    ratings = ds.ratings
    keep = np.ones(len(ratings), dtype=bool)
    if require_genres or min_year is not None or max_year is not None:
        keep &= _item_metadata_mask(ds, require_genres, min_year, max_year)
    if min_rating is not None:
        keep &= ratings["rating"].to_numpy() >= min_rating
    users = ratings["user_id"].to_numpy()
    items = ratings["item_id"].to_numpy()
    if min_item_ratings > 1:
        idx = np.flatnonzero(keep)
        keep[idx[_counts(items[idx]) < min_item_ratings]] = False
    if min_user_ratings > 1:
        idx = np.flatnonzero(keep)
        keep[idx[_counts(users[idx]) < min_user_ratings]] = False
    if kcore > 1:
        idx = np.flatnonzero(keep)
        keep[idx[~kcore_mask(users[idx], items[idx], kcore)]] = False
    if keep.all():
        return ds.with_ratings(ratings.copy())
    logger.info("%s: filters kept %d of %d ratings", ds.name, int(keep.sum()), len(keep))
    return ds.with_ratings(ratings.loc[keep])
