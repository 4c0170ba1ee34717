"""The normalized bipartite adjacency, sparse propagation, node dropout, negatives."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from movierec.train import NegativeSampler

__all__ = ["PopularityNegativeSampler", "drop_edges", "normalized_adjacency", "propagate",
           "sparse_adjacency", "to_csr"]


# --- the graph ---------------------------------------------------------------------------------
def normalized_adjacency(seen: sp.spmatrix) -> sp.coo_matrix:
    """D^-1/2 A D^-1/2 of the bipartite graph A = [[0, R], [Rᵀ, 0]] as a scipy COO matrix.

    Rows/columns 0..|U|−1 are users, |U|..|U|+|I|−1 items. Entry (u, |U|+i) = 1/√(d_u d_i) for an
    interaction (u, i); isolated nodes have zero rows. Vectorized from the CSR structure of `seen`.
    """
    r = sp.csr_matrix(seen, dtype=np.float64)
    r.data[:] = 1.0
    r.sum_duplicates()
    n_users, n_items = r.shape
    coo = r.tocoo()
    du = np.asarray(r.sum(axis=1)).ravel()
    di = np.asarray(r.sum(axis=0)).ravel()
    vals = 1.0 / np.sqrt(du[coo.row] * di[coo.col])
    rows = np.concatenate([coo.row, coo.col + n_users])
    cols = np.concatenate([coo.col + n_users, coo.row])
    n = n_users + n_items
    return sp.coo_matrix((np.concatenate([vals, vals]), (rows, cols)), shape=(n, n))


def sparse_adjacency(seen: sp.spmatrix) -> Tensor:
    """`normalized_adjacency` as a coalesced float32 `torch.sparse_coo_tensor`."""
    a = normalized_adjacency(seen).tocsr()
    a.sort_indices()
    a = a.tocoo()
    idx = torch.from_numpy(np.vstack([a.row, a.col]).astype(np.int64))
    val = torch.from_numpy(a.data.astype(np.float32))
    return torch.sparse_coo_tensor(idx, val, a.shape, is_coalesced=True, check_invariants=False)


def to_csr(adj: Tensor) -> Tensor:
    """A coalesced COO matrix as sparse CSR (faster products on CPU)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta"
        return adj.to_sparse_csr()


class _SymmetricSpMM(torch.autograd.Function):
    """y = Â x for a *symmetric* sparse Â: the backward pass is Â g again, which avoids the
    transpose (a re-sort of the COO indices) that `torch.sparse.mm`'s backward does per call."""

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]  # noqa: ANN001
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:  # type: ignore[override]  # noqa: ANN001
        return None, torch.sparse.mm(ctx.adj, grad)


def propagate(adj: Tensor, x: Tensor) -> Tensor:
    """Â x for the symmetric normalized adjacency (CSR or COO), differentiable in x."""
    return _SymmetricSpMM.apply(adj, x)


def drop_edges(adj: Tensor, p: float) -> Tensor:
    """Node (edge) dropout of NGCF: keep each non-zero of `adj` with probability 1 − p, scaled
    by 1/(1 − p) (global torch RNG, which the Trainer seeds)."""
    if p <= 0:
        return adj
    keep = torch.rand(adj._nnz(), device=adj.device) >= p
    return torch.sparse_coo_tensor(adj._indices()[:, keep], adj._values()[keep] / (1 - p),
                                   adj.shape, is_coalesced=True,
                                   check_invariants=False)


# --- negative sampling -------------------------------------------------------------------------
class PopularityNegativeSampler:
    """Negatives j with P(j | u) ∝ count_j^power among the items u has not seen in training.

    Exact by rejection: draws from the popularity distribution and redraws the seen ones; after
    `max_rounds` rounds (heavy users on tiny catalogues) the rest are drawn uniformly among the
    unseen items, so the loop is bounded.

    Args:
        seen: binary users × items CSR matrix of training interactions.
        power: exponent on the item counts (0.75 as in word2vec).
        max_rounds: rejection rounds before the uniform fallback.
    """

    def __init__(self, seen: sp.csr_matrix, power: float = 0.75, max_rounds: int = 20) -> None:
        m = sp.csr_matrix(seen)
        m.sort_indices()
        self.n_items = int(m.shape[1])
        counts = np.asarray((m > 0).sum(axis=0), dtype=np.float64).ravel()
        weights = np.power(counts, power) + 1e-12
        self._weights = torch.from_numpy(weights / weights.sum())
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        self._keys = torch.from_numpy(rows * self.n_items + m.indices.astype(np.int64))
        self._uniform = NegativeSampler(m)
        self.max_rounds = max_rounds

    def _is_seen(self, u: Tensor, j: Tensor) -> Tensor:
        if len(self._keys) == 0:
            return torch.zeros_like(j, dtype=torch.bool)
        q = u * self.n_items + j
        pos = torch.searchsorted(self._keys, q).clamp(max=len(self._keys) - 1)
        return self._keys[pos] == q

    def __call__(self, users: np.ndarray | Tensor, n: int, generator: torch.Generator) -> Tensor:
        """Item codes int64 [len(users), n]."""
        u = torch.as_tensor(np.asarray(users) if not isinstance(users, Tensor) else users,
                            dtype=torch.int64).cpu()
        uu = u[:, None].expand(len(u), n)
        out = torch.multinomial(self._weights, len(u) * n, replacement=True,
                                generator=generator).view(len(u), n)
        bad = self._is_seen(uu, out)
        for _ in range(self.max_rounds):
            if not bad.any():
                return out
            rows, cols = bad.nonzero(as_tuple=True)
            redraw = torch.multinomial(self._weights, len(rows), replacement=True,
                                       generator=generator)
            out[rows, cols] = redraw
            still = self._is_seen(u[rows], redraw)
            bad = torch.zeros_like(bad)
            bad[rows[still], cols[still]] = True
        if bad.any():
            rows = bad.nonzero()[:, 0]
            out[bad] = self._uniform(u[rows], 1, generator)[:, 0]
        return out
