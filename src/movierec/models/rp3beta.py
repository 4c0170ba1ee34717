"""RP3beta: a three-step random walk on the user-item graph, discounted by item popularity.

Paudel, Christoffel, Newell & Bernstein, "Updatable, Accurate, Diverse, and Scalable
Recommendations for Interactive Applications", ACM TiiS 2017; as evaluated (and implemented,
`RP3betaRecommender`) by Ferrari Dacrema, Cremonesi & Jannach, "Are We Really Making Much
Progress?", RecSys 2019.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from movierec.models._item_weights import SparseItemWeights
from movierec.models.base import check_param, is_int, is_number
from movierec.models.space import Choice, Float, Int, SearchSpace
from movierec.ranking import progress_blocks

__all__ = ["RP3beta", "rp3beta_weights"]

# Bytes of the dense block of walk probabilities computed at once (rows x n_items float64).
_BLOCK_BYTES = 1 << 26


def rp3beta_weights(seen: sp.csr_matrix, *, alpha: float, beta: float, n_neighbors: int,
                    normalize: bool, progress: bool = False) -> sp.csr_matrix:
    """The RP3beta item-item weights W [n_items, n_items] of a binary users x items matrix.

    With P_ui the row-normalized users x items matrix and P_iu the row-normalized items x users
    matrix (its transpose), both raised element-wise to `alpha` after normalizing:
    W'[i, j] = (P_iu · P_ui)[i, j] / pop_j^beta, pop_j the number of users of item j; the
    diagonal is set to 0, each row i keeps its `n_neighbors` largest positive entries (ties: the
    lower item code first) and, when `normalize`, is divided by its sum (l1). The order of
    operations is that of Dacrema et al.'s `RP3betaRecommender`, on binary input (`implicit`).

    Computed a block of rows at a time; the dense block holds `_BLOCK_BYTES // (8 n)` rows.
    """
    x = sp.csr_matrix(seen, dtype=np.float64)
    x.data[:] = 1.0
    n_users, n = x.shape
    per_user = np.diff(x.indptr).astype(np.float64)
    pop = np.bincount(x.indices, minlength=n).astype(np.float64)
    # On binary input the normalized entries are 1/|I_u| and 1/|U_i|, so their powers are
    # powers of the degrees; zero degrees stay 0.
    user_w = np.zeros(n_users)
    np.power(per_user, -alpha, out=user_w, where=per_user > 0)
    item_w = np.zeros(n)
    np.power(pop, -alpha, out=item_w, where=pop > 0)
    degree = np.zeros(n)
    np.power(pop, -beta, out=degree, where=pop > 0)
    p_ui = sp.csr_matrix(sp.diags(user_w) @ x)  # [u, j] = (1/|I_u|)^alpha
    p_iu = sp.csr_matrix(sp.diags(item_w) @ x.T)  # [i, u] = (1/|U_i|)^alpha
    block = max(1, _BLOCK_BYTES // (8 * max(n, 1)))
    kk = min(n_neighbors, n)
    rows, cols, vals = [], [], []
    for blk in progress_blocks(n, block, progress, desc="fit rp3beta"):
        w = (p_iu[blk] @ p_ui).toarray()
        w *= degree[None, :]
        w[np.arange(w.shape[0]), np.arange(blk.start, blk.stop)] = 0.0
        r, c = np.nonzero(_top_mask(w, kk))
        rows.append(r + blk.start)
        cols.append(c)
        vals.append(w[r, c])
    out = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(n, n))
    out.sort_indices()
    if normalize:
        sums = np.asarray(out.sum(axis=1)).ravel()
        scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
        out = sp.csr_matrix(sp.diags(scale) @ out)
    return sp.csr_matrix(out, dtype=np.float32)


def _top_mask(w: np.ndarray, k: int) -> np.ndarray:
    """Bool mask of the k largest positive entries of each row; ties go to the lower column.

    Linear in the row length: argpartition finds each row's k-th largest value v; every entry
    above v is kept, and entries equal to v in column order until the row has k.
    """
    n = w.shape[1]
    if k >= n:
        return w > 0
    kth = -np.partition(-w, k - 1, axis=1)[:, k - 1 : k]
    above = w > kth
    tied = w == kth
    room = k - above.sum(axis=1, keepdims=True)
    return (above | (tied & (np.cumsum(tied, axis=1) <= room))) & (w > 0)


class RP3beta(SparseItemWeights):
    """Item-item random walk with popularity discount (Paudel et al. 2017; Dacrema et al. 2019).

    With X the binary users x items matrix, P_ui = (row-normalized X)^α, P_iu = (row-normalized
    Xᵀ)^α (powers element-wise), the weights are W[i, j] = (P_iu · P_ui)[i, j] / pop_j^β with
    pop_j the number of training users of item j, a zero diagonal, each row i pruned to its
    n_neighbors largest entries and, with `normalize`, scaled to sum to 1. score(u, ·) = X_u · W.
    α = 1, β = 0 is P3alpha's plain three-step walk probability.

    Fold-in: a new user is scored exactly like a training user, x · W with x the binary row of
    the items they rated (`_score_history`); nothing is refitted.

    Args:
        alpha: exponent α of the transition probabilities (default 1.0, ≥ 0).
        beta: popularity exponent β; the weight of target item j is divided by pop_j^β
            (default 0.6, ≥ 0; 0: no discount).
        n_neighbors: largest weights kept per source item (row of W) (default 100, ≥ 1).
        normalize: scale each row of the pruned W to sum to 1 (default True).
    """

    name: ClassVar[str] = "rp3beta"
    search_space: ClassVar[SearchSpace] = {
        "alpha": Float(0.0, 2.0),
        "beta": Float(0.0, 1.5),
        "n_neighbors": Int(5, 1000, log=True),
        "normalize": Choice([True, False]),
    }
    supports_fold_in: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True

    def __init__(self, *, alpha: float = 1.0, beta: float = 0.6, n_neighbors: int = 100,
                 normalize: bool = True) -> None:
        check_param("alpha", alpha, is_number(alpha) and alpha >= 0, "a number ≥ 0")
        check_param("beta", beta, is_number(beta) and beta >= 0, "a number ≥ 0")
        check_param("n_neighbors", n_neighbors, is_int(n_neighbors, 1), "an integer ≥ 1")
        check_param("normalize", normalize, isinstance(normalize, bool),
                    "True or False (on the command line rp3beta.normalize=False)")
        self.alpha = alpha
        self.beta = beta
        self.n_neighbors = n_neighbors
        self.normalize = normalize

    def _fit_weights(self, progress: bool) -> sp.csr_matrix:
        """The pruned item-item walk weights W."""
        return rp3beta_weights(
            self.seen_, alpha=float(self.alpha), beta=float(self.beta),
            n_neighbors=int(self.n_neighbors), normalize=bool(self.normalize),
            progress=progress)
