"""EASE: embarrassingly shallow autoencoder (Steck, "Embarrassingly Shallow Autoencoders for
Sparse Data", WWW 2019)."""

from __future__ import annotations

from typing import ClassVar, Self

import numpy as np
import scipy.linalg

from movierec.data.dataset import Dataset
from movierec.errors import MovieRecError
from movierec.models.base import Recommender, check_param
from movierec.random import RNGLike

__all__ = ["EASE"]


class EASE(Recommender):
    """Item-item linear autoencoder with a closed-form solution (Steck 2019, eq. 8).

    With X the binary users x items matrix and P = (XᵀX + λI)⁻¹, the weights are
    B = I − P · diag(1 / diag(P)) (so diag(B) = 0) and score(u, ·) = X_u · B.

    The item x item Gram matrix is dense, so fitting needs n_items² × 8 bytes (float64) at least;
    `fit` refuses with a MovieRecError when that exceeds `max_memory_gb`.

    Args:
        lambda_: L2 regularization λ added to the diagonal of XᵀX (default 500.0, > 0). On the
            command line the key is `lambda`.
        max_memory_gb: largest n_items² × 8 bytes, in GB (10⁹ bytes), that `fit` may allocate
            (default 4.0, > 0).
    """

    name: ClassVar[str] = "ease"

    def __init__(self, *, lambda_: float = 500.0, max_memory_gb: float = 4.0) -> None:
        check_param("lambda_", lambda_, _positive(lambda_), "a number > 0")
        check_param("max_memory_gb", max_memory_gb, _positive(max_memory_gb), "a number > 0")
        self.lambda_ = lambda_
        self.max_memory_gb = max_memory_gb

    def fit(
        self,
        train: Dataset,
        valid: Dataset | None = None,
        *,
        rng: RNGLike = None,
        progress: bool = True,
    ) -> Self:
        """Solve for the item weights B in closed form; returns self."""
        n = train.n_items
        needed = n * n * 8 / 1e9
        if needed > self.max_memory_gb:
            raise MovieRecError(
                f"EASE needs {needed:.1f} GB for the {n:,} x {n:,} item Gram matrix (float64) but "
                f"max_memory_gb={self.max_memory_gb}; raise max_memory_gb or filter rare items "
                "(e.g. min_item_ratings)"
            )
        self._setup(train)
        x = self.seen_.astype(np.float64)
        gram = (x.T @ x).toarray()
        gram[np.diag_indices(n)] += self.lambda_
        # XᵀX + λI is symmetric positive definite: invert through its Cholesky factor.
        p = scipy.linalg.cho_solve(
            scipy.linalg.cho_factor(gram, overwrite_a=True), np.eye(n), overwrite_b=True
        )
        weights = p / (-np.diag(p))[None, :]
        weights[np.diag_indices(n)] = 0.0
        self.item_weights_ = weights.astype(np.float32)
        return self

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        weights = self.item_weights_ if item_codes is None else self.item_weights_[:, item_codes]
        return np.asarray(self.seen_[user_codes] @ weights, dtype=np.float32)


def _positive(x: object) -> bool:
    return (
        isinstance(x, int | float | np.integer | np.floating)
        and not isinstance(x, bool)
        and bool(np.isfinite(x))
        and x > 0
    )
