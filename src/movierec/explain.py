"""Item-to-item similarity, similar movies and "because you liked" explanations for any model.

A model that has item vectors (`item_vectors()`, e.g. MF's item factors) is compared in its own
item space (cosine of the vectors); every other model falls back to the cosine of item columns of
its training interaction matrix (co-occurrence), which every fitted model stores as `seen_`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from movierec.models.base import Recommender


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


def item_similarity(model: Recommender, item_codes: np.ndarray) -> np.ndarray:
    """Cosine similarity float32 [len(item_codes), n_items] in the model's item space."""
    unit = _normalized_vectors(model)
    codes = np.asarray(item_codes, dtype=np.int64)
    if isinstance(unit, np.ndarray):
        return unit[codes] @ unit.T
    return np.asarray((unit[:, codes].T @ unit).toarray(), dtype=np.float32)


def similar_items(model: Recommender, item_id: int, k: int = 10) -> pd.DataFrame:
    """The k items most similar to `item_id` (itself excluded): [item_id, similarity, rank]."""
    model._check_fitted()
    code = model.item_vocab_.codes([item_id])
    sims = item_similarity(model, code)[0]
    sims[code[0]] = -np.inf
    k = min(k, len(sims) - 1)
    top = np.argsort(-sims, kind="stable")[:k]
    return pd.DataFrame({"item_id": model.item_vocab_.ids(top), "similarity": sims[top],
                         "rank": np.arange(1, len(top) + 1)})


def explain(model: Recommender, user_id: int, item_ids: np.ndarray | list[int], n: int = 3
            ) -> dict[int, list[tuple[int, float]]]:
    """For each recommended item, the user's training items most similar to it.

    Returns:
        {item_id: [(history item_id, similarity), ...]} with at most `n` positive-similarity
        supports per item, best first.
    """
    model._check_fitted()
    ucode = model.user_vocab_.codes([user_id])[0]
    history = model.seen_[ucode].indices
    item_ids = np.asarray(item_ids)
    if len(history) == 0 or len(item_ids) == 0:
        return {int(i): [] for i in item_ids}
    codes = model.item_vocab_.codes(item_ids)
    sims = item_similarity(model, codes)[:, history]
    out: dict[int, list[tuple[int, float]]] = {}
    order = np.argsort(-sims, axis=1, kind="stable")[:, :n]
    for row, iid in enumerate(item_ids.tolist()):
        picks = [(int(model.item_vocab_.ids([history[j]])[0]), float(sims[row, j]))
                 for j in order[row] if sims[row, j] > 0]
        out[int(iid)] = picks
    return out
