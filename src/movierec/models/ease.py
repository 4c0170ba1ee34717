"""EASE: embarrassingly shallow autoencoder.

Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.errors import MovieRecError
from movierec.models.base import Recommender, check_param, is_number
from movierec.models.space import Float, SearchSpace
from movierec.random import RNGLike

__all__ = ["EASE", "check_memory", "memory_needed_gb", "weights_from_inverse"]

# Peak bytes of `fit` per item pair: the float64 Gram matrix (inverted and turned into the weights
# in place) and the float32 weights kept for scoring.
_BYTES_PER_PAIR = 12
# Bytes of one block of temporaries (a block of Gram rows, a block of the symmetrized inverse).
_BLOCK_BYTES = 1 << 24


def _gb_to_mb(value: Any) -> Any:
    """An old `max_memory_gb` value in MB (anything but a number is left for the check)."""
    return value * 1000 if is_number(value) else value


class EASE(Recommender):
    """Item-item linear autoencoder with a closed-form solution (Steck 2019, eq. 8).

    With X the binary users x items matrix and P = (XᵀX + λI)⁻¹, the weights are
    B = I − P · diag(1 / diag(P)) (so diag(B) = 0) and score(u, ·) = X_u · B.

    The item x item Gram matrix is dense: fitting holds one n_items² float64 matrix (built in row
    blocks, inverted and turned into B in place) and the float32 weights kept for scoring, 12 ×
    n_items² bytes at the peak. `fit` refuses with a MovieRecError naming that need, before
    allocating anything, when it exceeds `max_memory_mb` (60,000 items: 43.2 GB).

    Fold-in: a new user is scored exactly like a training user, x · B with x the binary row of
    the items they rated (`_score_history`); nothing is refitted.

    Args:
        lambda_: L2 regularization λ added to the diagonal of XᵀX (default 500.0, > 0). On the
            command line the key is `lambda`.
        max_memory_mb: largest peak memory (12 × n_items² bytes), in MB (10⁶ bytes, the unit of
            `evaluate`'s and `recommend`'s `max_memory_mb`), that `fit` may use (default 4000,
            > 0: up to 18,257 items). Formerly `max_memory_gb` in GB, still accepted with a
            DeprecationWarning (the value is multiplied by 1000).
    """

    name: ClassVar[str] = "ease"
    search_space: ClassVar[SearchSpace] = {
        "lambda_": Float(1.0, 1e4, log=True),
    }
    supports_fold_in: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True
    renamed_params: ClassVar[dict[str, Any]] = {"max_memory_gb": ("max_memory_mb", _gb_to_mb)}

    def __init__(self, *, lambda_: float = 500.0, max_memory_mb: float = 4000.0) -> None:
        check_param("lambda_", lambda_, _positive(lambda_), "a number > 0")
        check_param("max_memory_mb", max_memory_mb, _positive(max_memory_mb), "a number > 0")
        # A hyper-parameter despite its trailing underscore (`lambda` is a Python keyword): it
        # is recorded in model.json's params, never saved as learned state.
        self.lambda_ = lambda_
        self.max_memory_mb = max_memory_mb

    def fit(
        self,
        train: Dataset,
        valid: Dataset | None = None,
        *,
        rng: RNGLike = None,
        progress: bool = True,
    ) -> Self:
        """Solve for the item weights B in closed form; returns self."""
        check_memory("EASE", train.n_items, self.max_memory_mb,
                     "itemknn, whose memory grows with n_items x k")
        self._setup(train)
        self.item_weights_ = weights_from_inverse(_spd_inverse(_gram(self.seen_, self.lambda_)))
        return self

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        weights = self.item_weights_ if item_codes is None else self.item_weights_[:, item_codes]
        return np.asarray(self.seen_[user_codes] @ weights, dtype=np.float32)

    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user: x · B = Σ_{j rated} B[j, :].

        Ratings only mark which items were rated (EASE learns from the binary matrix); codes of
        −1 (unknown items) are ignored.
        """
        self._check_fitted()
        codes = np.unique(np.asarray(item_codes, dtype=np.int64))
        codes = codes[codes >= 0]
        return self.item_weights_[codes].sum(axis=0, dtype=np.float32)

    def _item_similarity(self, item_codes: np.ndarray, columns: np.ndarray | None = None
                         ) -> np.ndarray:
        """EASE's own item-to-item weights: entry [a, b] = B[a, b].

        What having item a adds to item b's score (so the movies "like" a are the ones a user who
        watched only a gets). Not symmetric: "because you liked" reads B[liked, recommended].
        """
        self._check_fitted()
        rows = self.item_weights_[np.asarray(item_codes, dtype=np.int64)]
        return rows if columns is None else rows[:, np.asarray(columns, dtype=np.int64)]


def check_memory(model: str, n: int, max_memory_mb: float, instead: str) -> None:
    """Refuse, naming the need, before allocating a closed form's n x n matrices.

    Raises:
        MovieRecError: 12 x n² bytes exceed `max_memory_mb`; the message suggests `instead`.
    """
    needed = memory_needed_gb(n)
    if needed * 1000 > max_memory_mb:
        fits = int(np.sqrt(max_memory_mb * 1e6 / _BYTES_PER_PAIR))
        gb = f"{needed:.1f}" if needed >= 0.1 else f"{needed:.2g}"
        raise MovieRecError(
            f"{model} needs about {gb} GB for {n:,} x {n:,} item matrices (one float64 "
            f"to invert, float32 weights to keep) but max_memory_mb={max_memory_mb:g}; "
            f"raise max_memory_mb if the machine has that much memory, or keep at most "
            f"{fits:,} items (e.g. Dataset.filter(min_item_ratings=...)), or use {instead}"
        )


def weights_from_inverse(p: np.ndarray) -> np.ndarray:
    """B = I − P diag(1/diag(P)) as float32, from P = (XᵀX + Λ)⁻¹ (overwritten): diag(B) = 0."""
    p /= -np.diag(p).copy()[None, :]  # column j divided by −P_jj
    p[np.diag_indices(len(p))] = 0.0
    return p.astype(np.float32)


def memory_needed_gb(n_items: int) -> float:
    """Peak memory of `EASE.fit` in GB (10⁹ bytes): 12 × n_items² bytes."""
    return _BYTES_PER_PAIR * n_items * n_items / 1e9


def _gram(x: sp.csr_matrix, lambda_: float) -> np.ndarray:
    """XᵀX + λI as a dense float64 array, built a block of rows at a time.

    Row block r of XᵀX is X[:, r]ᵀ X, whose sparse product holds at most the block's rows, so
    no n x n sparse matrix (12 bytes a stored pair) ever exists next to the dense one.
    """
    x = sp.csr_matrix(x, dtype=np.float64)
    x_t = sp.csr_matrix(x.T)
    n = x.shape[1]
    gram = np.empty((n, n))
    step = max(1, _BLOCK_BYTES // (20 * max(n, 1)))
    for start in range(0, n, step):
        stop = min(n, start + step)
        gram[start:stop] = (x_t[start:stop] @ x).toarray()
    gram[np.diag_indices(n)] += lambda_
    return gram


def _positive(x: object) -> bool:
    return (
        isinstance(x, int | float | np.integer | np.floating)
        and not isinstance(x, bool)
        and bool(np.isfinite(x))
        and bool(x > 0)
    )


def _spd_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix via its Cholesky factor (LAPACK potri).

    About 1.5x faster than solving against the identity. Works in `a`'s memory: `a` is symmetric,
    so its transpose is the same matrix in the Fortran order LAPACK overwrites without a copy.
    """
    factor, info = scipy.linalg.lapack.dpotrf(a.T, lower=True, overwrite_a=True)
    if info != 0:
        raise MovieRecError(f"EASE: the regularized Gram matrix is not positive definite "
                            f"(LAPACK info={info}); increase lambda")
    inv, info = scipy.linalg.lapack.dpotri(factor, lower=True, overwrite_c=True)
    if info != 0:
        raise MovieRecError(f"EASE: inverting the Gram matrix failed (LAPACK info={info})")
    _symmetrize_lower(inv)
    return inv


def _symmetrize_lower(a: np.ndarray) -> None:
    """Copy the lower triangle of `a` onto its upper triangle in place, a block at a time."""
    n = a.shape[0]
    step = max(1, _BLOCK_BYTES // (8 * max(n, 1)))
    for start in range(0, n, step):
        stop = min(n, start + step)
        diag = a[start:stop, start:stop]
        diag[...] = np.tril(diag) + np.tril(diag, -1).T
        a[start:stop, stop:] = a[stop:, start:stop].T
