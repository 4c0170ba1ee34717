"""Scoring by a sparse item x item weight matrix W, shared by RP3beta and SLIM.

score(u, ·) = x_u · W with x_u the user's binary row; a new user is scored the same way from the
items they rated (no refit); "similar"/"because you liked" read W's own rows.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.models.base import Recommender
from movierec.random import RNGLike

__all__ = ["SparseItemWeights"]


class SparseItemWeights(Recommender):
    """A Recommender whose `fit` learns `item_weights_`, a sparse CSR [n_items, n_items] W.

    A subclass gives `_fit_weights` (W from the binary training matrix `seen_`).
    """

    item_weights_: sp.csr_matrix

    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: RNGLike = None,
            progress: bool = True) -> Self:
        """Learn W from the binary training matrix; returns self (`valid`, `rng` unused)."""
        self._setup(train)
        self.item_weights_ = self._fit_weights(progress)
        self.__dict__.pop("_cache", None)  # W changed: its CSC copy is rebuilt on demand
        return self

    def _fit_weights(self, progress: bool) -> sp.csr_matrix:
        """W [n_items, n_items] from `seen_`."""
        raise NotImplementedError

    def _weights_csc(self) -> sp.csc_matrix:
        """W in CSC (column slices for `_score` with item codes), built once per object."""
        cache = self.__dict__.setdefault("_cache", {})
        if "csc" not in cache:
            cache["csc"] = sp.csc_matrix(self.item_weights_)
        return cache["csc"]

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        weights = (self.item_weights_ if item_codes is None
                   else self._weights_csc()[:, np.asarray(item_codes, dtype=np.int64)])
        return np.asarray((self.seen_[user_codes] @ weights).toarray(), dtype=np.float32)

    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user: x · W = Σ_{i rated} W[i, :].

        Ratings only mark which items were rated (W is learnt from the binary matrix); codes of
        −1 (unknown items) are ignored.
        """
        self._check_fitted()
        codes = np.unique(np.asarray(item_codes, dtype=np.int64))
        codes = codes[codes >= 0]
        return np.asarray(self.item_weights_[codes].sum(axis=0), dtype=np.float32).ravel()

    def _item_similarity(self, item_codes: np.ndarray, columns: np.ndarray | None = None
                         ) -> np.ndarray:
        """The model's own weights: entry [a, b] = W[a, b], what having item a adds to b's score.

        0 where W keeps no weight from a to b; not symmetric.
        """
        self._check_fitted()
        rows = self.item_weights_[np.asarray(item_codes, dtype=np.int64)]
        if columns is not None:
            rows = rows[:, np.asarray(columns, dtype=np.int64)]
        return np.asarray(rows.toarray(), dtype=np.float32)
