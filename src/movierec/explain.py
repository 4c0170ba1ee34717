"""Item-to-item similarity, similar movies and "because you liked" explanations for any model.

**Similarity.** Each model compares items in its own terms. A model with its own item-to-item
weights answers through `Recommender._item_similarity` (EASE: its weights B, so the similarity of
j to i is B_ij, what having watched i adds to j's score; ItemKNN: its pruned neighbourhood
similarities s_ij). A model that has item vectors (`item_vectors()`, e.g. MF's item factors) is
compared in that space (cosine of the vectors); every other model falls back to the cosine of
item columns of its training interaction matrix (co-occurrence), which every fitted model stores
as `seen_`. Similarities are read as "row item supports column item", which matters only for the
models whose weights are not symmetric (EASE).

**Similar movies** are not left to movies that only a handful of users rated, whose vectors or
co-occurrence columns are mostly noise that a cosine does not discount (MF put Golden Earrings
(1947), 2 ratings, 4th among the movies like Star Wars on ML-100K): movies with fewer than
`min_support` training ratings are left out (default `MIN_SUPPORT` = 5), and a positive
similarity s is shrunk by the movie's number of training ratings n, s · n / (n + λ) with
λ = `shrinkage` (default `SHRINKAGE` = 10: a movie with 10 ratings keeps half its similarity,
one with 300 keeps 97%). On ML-100K with MF (seeds 0 and 1) the support alone still left movies
with 8-15 ratings in Star Wars' top 10; with the shrinkage too, none under 85 ratings.

**"Because you liked"** cites only movies the user liked: rated at least `LIKED_RATING` (4) or
strictly above the user's own mean rating (`liked_mask`). Where a dataset holds a single rating
value (implicit feedback: every rating is 1), every rated movie counts as liked. Fitted models
record which training ratings these are (`liked_`, set in `Recommender._setup`); a model saved
by a movierec version that did not record them gives no explanations (a warning says so).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from movierec.data.dataset import Dataset
    from movierec.models.base import Recommender

__all__ = ["LIKED_RATING", "MIN_SUPPORT", "SHRINKAGE", "explain", "item_similarity", "liked_codes",
           "liked_mask", "liked_matrix", "similar_items", "similar_scores", "supports"]

logger = logging.getLogger(__name__)

#: A rating at least this high always counts as "liked" (on MovieLens' 0.5/1-5 star scales).
LIKED_RATING = 4.0
#: Fewest training ratings a movie needs to be listed as similar to another (default).
MIN_SUPPORT = 5
#: λ of the shrinkage n / (n + λ) of similar-list similarities by the item's training ratings n.
SHRINKAGE = 10.0


# --- what a user liked ---------------------------------------------------------------------------
def liked_mask(user_codes: np.ndarray, ratings: np.ndarray, *, implicit: bool = False
               ) -> np.ndarray:
    """Which ratings say "liked": rating ≥ `LIKED_RATING` or strictly above the user's mean.

    Args:
        user_codes: the rating's user (any integer labels; one user for a single profile).
        ratings: the rating values, aligned with `user_codes`.
        implicit: the data has a single rating value (implicit feedback): every rating is a
            "liked" (default False).

    Returns:
        bool [n].
    """
    r = np.asarray(ratings, dtype=np.float64)
    if implicit or len(r) == 0:
        return np.ones(len(r), dtype=bool)
    _, users = np.unique(np.asarray(user_codes), return_inverse=True)
    means = np.bincount(users, weights=r) / np.bincount(users)
    return (r >= LIKED_RATING) | (r > means[users])


def liked_matrix(train: Dataset) -> sp.csr_matrix:
    """Users x items bool CSR of the training ratings that say "liked" (see `liked_mask`)."""
    u, i = train.codes
    r = train.ratings["rating"].to_numpy()
    keep = liked_mask(u, r, implicit=bool(len(r)) and bool(np.all(r == r[0])))
    m = sp.csr_matrix((np.ones(int(keep.sum()), dtype=bool), (u[keep], i[keep])),
                      shape=(train.n_users, train.n_items), dtype=bool)
    m.sum_duplicates()
    m.sort_indices()
    return m


def liked_codes(model: Recommender, user_code: int) -> np.ndarray:
    """Item codes a training user liked (empty for a model saved without that record)."""
    liked = getattr(model, "liked_", None)
    if liked is None:
        if not model.__dict__.get("_warned_liked"):
            model.__dict__["_warned_liked"] = True
            logger.warning("this %s was saved without the record of which movies its users "
                           "liked (an older movierec): it gives no 'because you liked' "
                           "explanations until it is trained again", type(model).__name__)
        return np.empty(0, dtype=np.int32)
    return liked.indices[liked.indptr[user_code]:liked.indptr[user_code + 1]]


# --- similarity ----------------------------------------------------------------------------------
def _normalized_vectors(model: Recommender) -> np.ndarray | sp.csc_matrix:
    """Unit-norm item vectors [n_items, d] (dense) or unit-norm item columns (sparse)."""
    cache = model.__dict__.get("_unit_vectors")
    if cache is not None:
        return cache
    vectors = model.item_vectors()
    if vectors is not None:
        v = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        unit: np.ndarray | sp.csc_matrix = v / np.maximum(norms, 1e-12)
    else:
        x = sp.csc_matrix(model.seen_, dtype=np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0))).ravel()
        unit = sp.csc_matrix(x @ sp.diags(1.0 / np.maximum(norms, 1e-12)))
    model.__dict__["_unit_vectors"] = unit
    return unit


def item_similarity(model: Recommender, item_codes: np.ndarray,
                    columns: np.ndarray | None = None) -> np.ndarray:
    """Similarity float32 [len(item_codes), n_items or len(columns)] in the model's terms.

    Entry [a, b] is how much item a supports item b (see the module docstring): the model's own
    item weights where it has them, else the cosine of its item vectors or co-occurrence columns.

    Args:
        model: a fitted recommender.
        item_codes: row items (codes).
        columns: column items (codes); default all items.
    """
    codes = np.asarray(item_codes, dtype=np.int64)
    cols = None if columns is None else np.asarray(columns, dtype=np.int64)
    own = model._item_similarity(codes, cols)
    if own is not None:
        return np.asarray(own, dtype=np.float32)
    unit = _normalized_vectors(model)
    if isinstance(unit, np.ndarray):
        right = unit if cols is None else unit[cols]
        return np.asarray(unit[codes] @ right.T, dtype=np.float32)
    right_s = unit if cols is None else unit[:, cols]
    return np.asarray((unit[:, codes].T @ right_s).toarray(), dtype=np.float32)


def similar_scores(model: Recommender, item_code: int, *, min_support: int = MIN_SUPPORT,
                   shrinkage: float = SHRINKAGE) -> np.ndarray:
    """float32 [n_items]: how similar each item is to `item_code`, as the similar lists rank them.

    The model's similarity s_j (see `item_similarity`), a positive one shrunk by the item's
    number of training ratings n_j, s_j · n_j / (n_j + shrinkage); −inf for the item itself,
    for items with fewer than `min_support` training ratings, and where s_j is NaN.

    Raises:
        ValueError: min_support or shrinkage is negative.
    """
    from movierec.models.baseline import item_popularity

    if not min_support >= 0:
        raise ValueError(f"min_support must be ≥ 0, got {min_support}")
    if not (np.isfinite(shrinkage) and shrinkage >= 0):
        raise ValueError(f"shrinkage must be a number ≥ 0, got {shrinkage}")
    n = np.asarray(item_popularity(model), dtype=np.float64)
    sims = item_similarity(model, np.array([item_code]))[0].astype(np.float64)
    if shrinkage > 0:
        sims = np.where(sims > 0, sims * n / np.maximum(n + shrinkage, 1e-12), sims)
    sims[np.isnan(sims) | (n < min_support)] = -np.inf
    sims[item_code] = -np.inf
    return sims.astype(np.float32)


def similar_items(model: Recommender, item_id: int, k: int = 10, *,
                  min_support: int = MIN_SUPPORT, shrinkage: float = SHRINKAGE
                  ) -> pd.DataFrame:
    """The k items most similar to `item_id` (itself excluded): [item_id, similarity, rank].

    Args:
        model: a fitted model.
        item_id: original id of a training item (UnknownIdError otherwise).
        k: list length; fewer come back when fewer items have the support.
        min_support: leave out items with fewer training ratings (default 5; 0 keeps all).
        shrinkage: λ of the shrinkage n / (n + λ) of a positive similarity by the item's number
            of training ratings n (default 10; 0: none). The similarity column is the shrunk one.
    """
    model._check_fitted()
    code = int(model.item_vocab_.codes([item_id])[0])
    sims = similar_scores(model, code, min_support=min_support, shrinkage=shrinkage)
    n_ok = int(np.count_nonzero(sims > -np.inf))
    top = np.argsort(-sims, kind="stable")[:min(k, n_ok)]
    return pd.DataFrame({"item_id": model.item_vocab_.ids(top), "similarity": sims[top],
                         "rank": np.arange(1, len(top) + 1)})


# --- explanations --------------------------------------------------------------------------------
def supports(model: Recommender, item_codes: np.ndarray, history: np.ndarray, n: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """For each item, the `n` history items that support it most, best first.

    Returns:
        (history codes int64 [len(item_codes), n'], similarities float32 [.., n']) with
        n' = min(n, len(history)); pairs of similarity ≤ 0 are to be dropped by the caller.
    """
    codes = np.asarray(item_codes, dtype=np.int64)
    history = np.asarray(history, dtype=np.int64)
    if len(history) == 0 or len(codes) == 0 or n <= 0:
        return (np.empty((len(codes), 0), dtype=np.int64),
                np.empty((len(codes), 0), dtype=np.float32))
    sims = item_similarity(model, history, codes).T  # [item, history item]
    order = np.argsort(-sims, axis=1, kind="stable")[:, :n]
    return history[order], np.take_along_axis(sims, order, axis=1)


def explain(model: Recommender, user_id: int, item_ids: np.ndarray | list[int], n: int = 3
            ) -> dict[int, list[tuple[int, float]]]:
    """For each recommended item, the movies the user liked that support it most.

    Only training movies the user liked are cited: rated ≥ 4 or strictly above the user's own
    mean rating (see `liked_mask`).

    Returns:
        {item_id: [(liked item_id, similarity), ...]} with at most `n` positive-similarity
        supports per item, best first.
    """
    model._check_fitted()
    ucode = int(model.user_vocab_.codes([user_id])[0])
    item_ids = np.asarray(item_ids)
    codes = model.item_vocab_.codes(item_ids) if len(item_ids) else np.empty(0, np.int64)
    picks, sims = supports(model, codes, liked_codes(model, ucode), n)
    out: dict[int, list[tuple[int, float]]] = {}
    for row, iid in enumerate(item_ids.tolist()):
        keep = sims[row] > 0
        ids: np.ndarray | list[int] = model.item_vocab_.ids(picks[row][keep]) if keep.any() else []
        out[int(iid)] = [(int(j), float(s)) for j, s in zip(ids, sims[row][keep], strict=True)]
    return out
