"""Graph operations: the normalized bipartite adjacency, sparse propagation, sampling.

Sampling covers node dropout, neighbour sampling and negatives.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from movierec.training import NegativeSampler

__all__ = ["NeighborSampler", "PopularityNegativeSampler", "SampledGraph", "bipartite_degrees",
           "choose_distinct", "drop_edges", "knowledge_degrees", "normalized_adjacency",
           "propagate", "propagate_sampled", "sampled_adjacency", "sparse_adjacency", "to_csr"]


# --- the graph ---------------------------------------------------------------------------------
def _binary(seen: sp.spmatrix) -> sp.csr_matrix:
    r = sp.csr_matrix(seen, dtype=np.float64)
    r.data[:] = 1.0
    r.sum_duplicates()
    return r


def bipartite_degrees(seen: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """(user degrees, item degrees) float64 of the bipartite graph of `seen`, as `Â` uses them."""
    r = _binary(seen)
    return np.asarray(r.sum(axis=1)).ravel(), np.asarray(r.sum(axis=0)).ravel()


def normalized_adjacency(seen: sp.spmatrix, people: sp.spmatrix | None = None
                         ) -> sp.coo_matrix:
    """D^-1/2 A D^-1/2 of the bipartite graph A = [[0, R], [Rᵀ, 0]] as a scipy COO matrix.

    Rows/columns 0..|U|−1 are users, |U|..|U|+|I|−1 items. Entry (u, |U|+i) = 1/√(d_u d_i) for an
    interaction (u, i); isolated nodes have zero rows. Vectorized from the CSR structure of `seen`.

    With `people` (binary items × persons P, the knowledge graph of `knowledge=True`) the graph
    gains person nodes after the items, |U|+|I|..|U|+|I|+|P|−1, and the item–person edges:
    A = [[0, R, 0], [Rᵀ, 0, P], [0, Pᵀ, 0]], normalized by the degrees of the whole graph (an
    item's degree counts its users and its people).
    """
    if people is not None:
        return _knowledge_adjacency(seen, people)
    r = _binary(seen)
    n_users, n_items = r.shape
    coo = r.tocoo()
    du, di = bipartite_degrees(r)
    vals = 1.0 / np.sqrt(du[coo.row] * di[coo.col])
    rows = np.concatenate([coo.row, coo.col + n_users])
    cols = np.concatenate([coo.col + n_users, coo.row])
    n = n_users + n_items
    return sp.coo_matrix((np.concatenate([vals, vals]), (rows, cols)), shape=(n, n))


def knowledge_degrees(seen: sp.spmatrix, people: sp.spmatrix
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, item, person) degrees float64 of the user–item–person graph (`people`: items × P)."""
    r, p = _binary(seen), _binary(people)
    du, di = bipartite_degrees(r)
    return du, di + np.asarray(p.sum(axis=1)).ravel(), np.asarray(p.sum(axis=0)).ravel()


def _knowledge_adjacency(seen: sp.spmatrix, people: sp.spmatrix) -> sp.coo_matrix:
    """`normalized_adjacency` with person nodes (see there)."""
    r, p = _binary(seen), _binary(people)
    n_users, n_items = r.shape
    if p.shape[0] != n_items:
        raise ValueError(f"people has {p.shape[0]} rows, the graph {n_items} items")
    degree = np.concatenate(knowledge_degrees(r, p))
    ui, ip = r.tocoo(), p.tocoo()
    # Each undirected edge once (lower node id first), then both directions.
    lo = np.concatenate([ui.row, ip.row + n_users]).astype(np.int64)
    hi = np.concatenate([ui.col + n_users, ip.col + n_users + n_items]).astype(np.int64)
    vals = 1.0 / np.sqrt(degree[lo] * degree[hi])
    n = n_users + n_items + p.shape[1]
    return sp.coo_matrix((np.concatenate([vals, vals]),
                          (np.concatenate([lo, hi]), np.concatenate([hi, lo]))), shape=(n, n))


def sparse_adjacency(seen: sp.spmatrix, people: sp.spmatrix | None = None) -> Tensor:
    """`normalized_adjacency(seen, people)` as a coalesced float32 `torch.sparse_coo_tensor`."""
    a = normalized_adjacency(seen, people).tocsr()
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
    """Sparse product y = Â x for a *symmetric* sparse Â.

    The backward pass is Â g again, which avoids the transpose (a re-sort of the COO indices) that
    `torch.sparse.mm`'s backward does per call.
    """

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor) -> Tensor:  # noqa: ANN001
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:  # noqa: ANN001
        return None, torch.sparse.mm(ctx.adj, grad)


def propagate(adj: Tensor, x: Tensor) -> Tensor:
    """Â x for the symmetric normalized adjacency (CSR or COO), differentiable in x."""
    return _SymmetricSpMM.apply(adj, x)


def drop_edges(adj: Tensor, p: float) -> Tensor:
    """Node (edge) dropout of NGCF.

    Keep each non-zero of `adj` with probability 1 − p, scaled by 1/(1 − p) (global torch RNG, which
    the Trainer seeds).
    """
    if p <= 0:
        return adj
    keep = torch.rand(adj._nnz(), device=adj.device) >= p
    return torch.sparse_coo_tensor(adj._indices()[:, keep], adj._values()[keep] / (1 - p),
                                   adj.shape, is_coalesced=True,
                                   check_invariants=False)


# --- neighbour sampling ------------------------------------------------------------------------
class SampledGraph(NamedTuple):
    """A sampled subgraph around seed nodes (node ids: users 0..|U|−1, items |U|.., persons after).

    Attributes:
        nodes: global node ids int64 [n]; the seeds first (in the order given), then the nodes
            first reached at hop 1, hop 2, … (each sorted). Local index = position here.
        dst: local index of the receiving node of each sampled edge, int64 [m].
        src: local index of the sending (sampled) neighbour, int64 [m].
        weight: message weight float32 [m]: Â[dst, src] · deg(dst) / #sampled(dst).
    """

    nodes: Tensor
    dst: Tensor
    src: Tensor
    weight: Tensor


def choose_distinct(n: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """Draw k distinct offsets uniformly from [0, n_r) for every row r (all n_r ≥ k).

    The result is int64 [len(n), k]. Floyd's algorithm vectorized over the rows, so the loop runs k
    steps whatever the degrees, and no row's full neighbour list is touched.

    Floyd: for j = n − k, …, n − 1 draw t uniform in [0, j]; keep t unless already kept, else j.
    Every k-subset is equally likely.
    """
    out = torch.empty((len(n), k), dtype=torch.int64)
    for step in range(k):
        j = n - k + step
        t = (torch.rand(len(n), generator=generator, dtype=torch.float64) * (j + 1)).long()
        t = torch.minimum(t, j)  # float rounding guard
        taken = (out[:, :step] == t[:, None]).any(1)
        out[:, step] = torch.where(taken, j, t)
    return out


class NeighborSampler:
    """K-hop neighbour sampling on the training graph, in plain torch.

    The equivalent of PyG's `LinkNeighborLoader` / `NeighborSampler` (Hamilton et al. 2017).

    From the seed nodes, every node reached for the first time at hop h < K keeps up to
    `num_neighbors` of its neighbours, drawn uniformly without replacement (all of them when its
    degree is smaller); the neighbours not seen before form hop h + 1. Each node is expanded at
    most once, so the sampled edges are directed, neighbour → node: K layers of message passing
    over them give the seeds' K-layer representations, and a node at hop h is only ever read at
    layers ≤ K − h, which its own sample covers.

    Weights: an edge (w ← v) carries the *full-graph* normalized value Â_wv = 1/√(d_w d_v)
    (degrees of the whole training graph, as in the full model), times d_w / s_w where s_w =
    min(d_w, num_neighbors) is the number of neighbours w kept. Each neighbour is kept with
    probability s_w / d_w, so this inverse-inclusion (Horvitz–Thompson) factor makes one sampled
    layer an unbiased estimate of (Â x)_w; without it sampled propagation would shrink
    high-degree nodes by s_w / d_w during training but not at scoring time (which always uses
    the full graph). Across layers the estimate is only nearly unbiased (a node's sample is
    reused when a walk revisits it). With num_neighbors ≥ the largest degree every edge is
    kept with its exact Â value, so the seeds' representations equal the full-graph ones.

    Every step is vectorized over the frontier (`choose_distinct`: k vectorized steps per hop,
    no Python loop per node, no pass over a high-degree node's whole neighbour list).

    Args:
        seen: binary users × items CSR matrix of the training interactions.
        num_neighbors: fanout per node and hop (≥ 1).
        n_layers: hops K (≥ 0; 0 gives the seeds alone).
        people: binary items × persons matrix of the knowledge graph (`knowledge=True`): person
            nodes (after the items) are sampled like any other node; None: users and items only.
    """

    def __init__(self, seen: sp.spmatrix, num_neighbors: int, n_layers: int,
                 people: sp.spmatrix | None = None) -> None:
        a = normalized_adjacency(seen, people).tocsr()
        a.sum_duplicates()
        a.sort_indices()
        self.n_users, self.n_items = int(seen.shape[0]), int(seen.shape[1])
        self.n_nodes = int(a.shape[0])
        self.num_neighbors = int(num_neighbors)
        self.n_layers = int(n_layers)
        self._indptr = torch.from_numpy(a.indptr.astype(np.int64))
        self._indices = torch.from_numpy(a.indices.astype(np.int64))
        self._values = torch.from_numpy(a.data.astype(np.float32))

    def _hop(self, frontier: Tensor, generator: torch.Generator
             ) -> tuple[Tensor, Tensor, Tensor]:
        """Sampled edges of the frontier: (receiver, neighbour) global ids and weights."""
        k = self.num_neighbors
        start = self._indptr[frontier]
        deg = self._indptr[frontier + 1] - start
        small = (deg <= k).nonzero().squeeze(1)  # these keep every edge
        d_small = deg[small]
        first = torch.cumsum(d_small, 0) - d_small
        seg_small = torch.repeat_interleave(small, d_small)
        pos_small = (start[seg_small] + torch.arange(len(seg_small))
                     - torch.repeat_interleave(first, d_small))
        big = (deg > k).nonzero().squeeze(1)
        offsets = choose_distinct(deg[big], k, generator)  # [len(big), k]
        seg = torch.cat([seg_small, big.repeat_interleave(k)])
        pos = torch.cat([pos_small, (start[big][:, None] + offsets).reshape(-1)])
        d = deg[seg].to(torch.float32)
        weight = self._values[pos] * d / d.clamp(max=k)
        return frontier[seg], self._indices[pos], weight

    def sample(self, seeds: Tensor, generator: torch.Generator) -> SampledGraph:
        """The K-hop sampled subgraph around distinct global node ids `seeds` (int64, CPU)."""
        seeds = torch.as_tensor(seeds, dtype=torch.int64).cpu()
        local = torch.full((self.n_nodes,), -1, dtype=torch.int64)
        local[seeds] = torch.arange(len(seeds))
        nodes, dsts, srcs, weights = [seeds], [], [], []
        frontier, n = seeds, len(seeds)
        for _ in range(self.n_layers):
            if len(frontier) == 0:
                break
            dst, src, weight = self._hop(frontier, generator)
            new = torch.unique(src[local[src] < 0])
            local[new] = torch.arange(n, n + len(new))
            n += len(new)
            nodes.append(new)
            dsts.append(local[dst])
            srcs.append(local[src])
            weights.append(weight)
            frontier = new
        empty = torch.empty(0, dtype=torch.int64)
        return SampledGraph(torch.cat(nodes), torch.cat(dsts) if dsts else empty,
                            torch.cat(srcs) if srcs else empty,
                            torch.cat(weights) if weights else torch.empty(0))

    def __call__(self, users: Tensor, items: Tensor, generator: torch.Generator
                 ) -> dict[str, Tensor]:
        """Subgraph around the batch's users and items (any shapes, e.g. positives and negatives).

        Returns:
            {"sub_nodes", "sub_dst", "sub_src", "sub_weight"} (a `SampledGraph`) plus
            "sub_user" and "sub_item": the local indices of `users` and `items` (same shapes).
        """
        users = torch.as_tensor(users, dtype=torch.int64).cpu()
        items = torch.as_tensor(items, dtype=torch.int64).cpu()
        seeds = torch.unique(torch.cat([users.reshape(-1), items.reshape(-1) + self.n_users]))
        g = self.sample(seeds, generator)
        local = torch.empty(self.n_nodes, dtype=torch.int64)
        local[g.nodes] = torch.arange(len(g.nodes))
        return {"sub_nodes": g.nodes, "sub_dst": g.dst, "sub_src": g.src, "sub_weight": g.weight,
                "sub_user": local[users], "sub_item": local[items + self.n_users]}


def sampled_adjacency(n: int, dst: Tensor, src: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """The directed message matrix M [n, n] (M[dst, src] = weight) of a sampled subgraph.

    Returned with its transpose, both sparse CSR on the device of `weight` (edges are distinct
    pairs).
    """
    def csr(rows: Tensor, cols: Tensor) -> Tensor:
        # One integer sort instead of `coalesce()` (three times slower on CPU).
        order = torch.argsort(rows * n + cols)
        crow = torch.zeros(n + 1, dtype=torch.int64, device=rows.device)
        crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
        return torch.sparse_csr_tensor(crow, cols[order], weight[order], (n, n),
                                       check_invariants=False)

    return csr(dst, src), csr(src, dst)


class _DirectedSpMM(torch.autograd.Function):
    """y = M x with the transpose given, so the backward pass Mᵀ g needs no re-sort."""

    @staticmethod
    def forward(ctx, adj: Tensor, adj_t: Tensor, x: Tensor) -> Tensor:  # noqa: ANN001
        ctx.adj_t = adj_t
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, None, Tensor]:  # noqa: ANN001
        return None, None, torch.sparse.mm(ctx.adj_t, grad)


def propagate_sampled(adj: tuple[Tensor, Tensor], x: Tensor) -> Tensor:
    """M x for a sampled subgraph's (M, Mᵀ) from `sampled_adjacency`, differentiable in x."""
    return _DirectedSpMM.apply(adj[0], adj[1], x)


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
