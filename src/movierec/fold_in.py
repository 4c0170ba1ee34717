"""Scores for a new user from a few ratings, without retraining ("fold-in").

One entry point for every model family, `score_new_user(model, item_ids, ratings)`:

* models with `supports_fold_in` answer through their own `_score_history(item_codes,
  ratings)`: MF solves the user's factors and bias against the fixed item factors (ridge), Bias
  the user's bias, ItemKNN and EASE multiply the binary history row by their item-item weights,
  UserKNN compares the new row with the training users, Pop and Mean give the popularity list;
* any other model (e.g. a neural model without a fold-in rule) is scored in its own item space:
  score(i) = Σ_j w_j cos(q_j, q_i) over the rated items j, with w_j the rating's excess over
  the user's mean, max(r_j − mean, 0) (1 when all ratings are equal), q the model's item
  vectors, or its item columns of the training matrix when it has none
  (`movierec.explain.item_similarity`);
* when no rating names an item the model knows, every model falls back to popularity.

Item ids are original ids; unknown ones are ignored and reported; a repeated item keeps its
last rating.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from movierec.models.baseline import item_popularity

if TYPE_CHECKING:
    from movierec.models.base import Recommender

__all__ = ["FoldIn", "fold_in", "fold_in_method", "known_ratings", "score_new_user"]

Method = Literal["model", "item-similarity", "popularity"]


@dataclass(frozen=True)
class FoldIn:
    """A new user's scores and how they were obtained.

    Attributes:
        scores: float32 [n_items] in the model's item codes; higher is better.
        item_codes: int64 codes of the rated items that the model knows (unique).
        ratings: float64 ratings of those items, aligned with `item_codes`.
        unknown_item_ids: original ids that the model does not know (ignored).
        method: "model" (the model's own `_score_history`), "item-similarity" (the generic
            item-space fallback) or "popularity" (no usable rating).
    """

    scores: np.ndarray
    item_codes: np.ndarray
    ratings: np.ndarray
    unknown_item_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    method: Method = "model"


def known_ratings(model: Recommender, item_ids: np.ndarray | list[int],
                  ratings: np.ndarray | list[float]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split (item id, rating) pairs into the model's known codes and the unknown ids.

    Args:
        model: a fitted model.
        item_ids: original item ids (integers).
        ratings: one finite rating per item id.

    Returns:
        (codes int64 [m], ratings float64 [m], unknown ids int64) with the known items unique
        (a repeated item keeps its last rating) and in first-seen order.

    Raises:
        ValueError: lengths differ, ids are not integers or a rating is not finite.
    """
    model._check_fitted()
    ids = np.asarray(item_ids)
    r = np.asarray(ratings, dtype=np.float64)
    if ids.ndim != 1 or r.ndim != 1 or len(ids) != len(r):
        raise ValueError(f"item_ids ({ids.shape}) and ratings ({r.shape}) must be 1-D and of "
                         "equal length")
    if len(ids) and ids.dtype.kind not in "iu":
        raise ValueError(f"item ids must be integers, got dtype {ids.dtype}")
    if not np.isfinite(r).all():
        raise ValueError("ratings must be finite numbers")
    ids = ids.astype(np.int64, copy=False)
    # Last occurrence of each id wins: unique over the reversed array, then restore the order.
    _, last = np.unique(ids[::-1], return_index=True)
    pick = np.sort(len(ids) - 1 - last)
    ids, r = ids[pick], r[pick]
    codes = model.item_vocab_.codes(ids, missing="negative").astype(np.int64)
    known = codes >= 0
    return codes[known], r[known], ids[~known]


def fold_in_method(model: Recommender) -> Method:
    """How `fold_in` scores a user with at least one known item for this model."""
    return "model" if model.supports_fold_in else "item-similarity"


def fold_in(model: Recommender, item_ids: np.ndarray | list[int],
            ratings: np.ndarray | list[float]) -> FoldIn:
    """Score every item for a new user given their ratings (see the module docstring).

    Args:
        model: a fitted model; it is not modified except for caches of derived arrays.
        item_ids: original ids of the rated items.
        ratings: the ratings, on the model's rating scale.

    Returns:
        A `FoldIn` with float32 scores over the model's items.
    """
    codes, r, unknown = known_ratings(model, item_ids, ratings)
    if len(codes) == 0:
        return FoldIn(item_popularity(model).copy(), codes, r, unknown, "popularity")
    method = fold_in_method(model)
    if method == "model":
        scores = model._score_history(codes, r)  # type: ignore[attr-defined]
    else:
        scores = _item_space_scores(model, codes, r)
    scores = np.asarray(scores, dtype=np.float32).ravel()
    if scores.shape != (model.n_items,):
        raise RuntimeError(f"{type(model).__name__} fold-in returned shape {scores.shape}, "
                           f"expected ({model.n_items},)")
    return FoldIn(scores, codes, r, unknown, method)


def score_new_user(model: Recommender, item_ids: np.ndarray | list[int],
                   ratings: np.ndarray | list[float]) -> np.ndarray:
    """Scores float32 [n_items] (model item codes) of a new user from (item id, rating) pairs.

    Args:
        model: a fitted model of any family.
        item_ids: original ids of the rated items (unknown ones are ignored).
        ratings: the ratings, one per item id.
    """
    return fold_in(model, item_ids, ratings).scores


def _item_space_scores(model: Recommender, codes: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Items like the ones the user rated above their own mean: Σ_j w_j cos(j, i).

    The sum runs over the rated items j, with w_j = max(r_j − mean(r), 0) (1 when all are equal).

    The positive part, not r_j − mean(r): signed weights sum to zero, which cancels the direction
    that most item embeddings share, and what is left ranks little better than noise (LightGCN's
    item space on ML-100K: NDCG@10 0.025 with signed weights, `benchmarks/graph_fold_in.py`).
    """
    from movierec.explain import item_similarity

    weights = np.maximum(r - r.mean(), 0.0)
    if not np.any(weights):
        weights = np.ones_like(r)
    sims = item_similarity(model, codes)  # [len(codes), n_items]
    return (weights.astype(np.float32) @ sims).astype(np.float32)
