"""Negative sampling (exact, uniform over each user's unseen items) and shuffled mini-batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

__all__ = ["NegativeSampler", "iterate_batches", "sample_negatives"]


class NegativeSampler:
    """Uniform sampling of items a user has not interacted with in training — exactly.

    Instead of rejection sampling (which leaves collisions after a fixed number of rounds, or loops
    without bound for heavy users), each draw is a uniform rank r ∈ [0, n_items − |I_u|) among the
    user's unseen items, mapped to the r-th unseen item j = r + #{s ∈ I_u : s − pos(s) ≤ r} by one
    vectorized `searchsorted` over the CSR structure. Every unseen item has probability
    1 / (n_items − |I_u|) (up to float64 rounding of r), and a seen item is never returned. A user
    who has rated every item has no negative: such users get a uniform item instead.

    Args:
        seen: binary users x items CSR matrix of training interactions (sorted indices).
    """

    def __init__(self, seen: sp.csr_matrix) -> None:
        m = sp.csr_matrix(seen)
        m.sort_indices()
        self.n_items = int(m.shape[1])
        indptr = m.indptr.astype(np.int64)
        counts = np.diff(indptr)
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), counts)
        # s − pos(s) is non-decreasing within a row and < n_items, so the keys are sorted.
        adjusted = m.indices.astype(np.int64) - (np.arange(len(rows)) - indptr[rows])
        self._keys = torch.from_numpy(rows * self.n_items + adjusted)
        self._indptr = torch.from_numpy(indptr)
        self._n_unseen = torch.from_numpy(self.n_items - counts)

    def __call__(self, users: np.ndarray | Tensor, n: int, generator: torch.Generator) -> Tensor:
        """Item codes int64 [len(users), n], unseen in training by the matching user.

        Args:
            users: user codes (CPU).
            n: negatives per user.
            generator: CPU torch generator for the draws.
        """
        u = torch.as_tensor(np.asarray(users) if not isinstance(users, Tensor) else users,
                            dtype=torch.int64).cpu()
        n_unseen = self._n_unseen[u][:, None]
        free = torch.where(n_unseen > 0, n_unseen, torch.full_like(n_unseen, self.n_items))
        draw = torch.rand((len(u), n), generator=generator, dtype=torch.float64)
        r = torch.minimum((draw * free).long(), free - 1)
        ranks = torch.searchsorted(self._keys, u[:, None] * self.n_items + r, right=True)
        below = ranks - self._indptr[u][:, None]
        return torch.where(n_unseen > 0, r + below, r)


def sample_negatives(seen: sp.csr_matrix, users: np.ndarray | Tensor, n: int,
                     generator: torch.Generator) -> Tensor:
    """Draw `n` items per user, uniformly among the items the user did not interact with.

    Exact (no rejection rounds); see `NegativeSampler`, which models keep to avoid re-indexing
    `seen` on every batch.

    Args:
        seen: binary users x items CSR matrix of training interactions.
        users: user codes.
        n: negatives per user.
        generator: CPU torch generator.

    Returns:
        Item codes int64 [len(users), n].
    """
    return NegativeSampler(seen)(users, n, generator)


def iterate_batches(data: dict[str, Tensor], batch_size: int, generator: torch.Generator
                    ) -> Iterator[dict[str, Tensor]]:
    """Shuffled mini-batches: one `randperm` per epoch, then slices of every tensor in `data`."""
    n = len(next(iter(data.values())))
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield {k: v[idx] for k, v in data.items()}
