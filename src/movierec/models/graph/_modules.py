"""torch modules of the graph recommenders (propagation, layers, attention)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from movierec.models.graph._graph import (
    drop_edges,
    propagate,
    propagate_sampled,
    sampled_adjacency,
    to_csr,
)

__all__ = ["AttnGraphRecModule", "LightGCNModule", "NGCFModule"]


# --- modules -----------------------------------------------------------------------------------
Propagation = Callable[[Tensor], Tensor]


class _GraphModule(nn.Module):
    """Embedding tables, the adjacency buffer and an eval-mode cache of the propagation.

    A subclass gives one layer, `step(k, side, e)`: the layer-(k+1) rows of nodes whose layer-k
    rows are `e` and whose aggregated messages are `side` (= Â E^(k) on those rows), and
    `combine(layers)`: the final representation from the rows [E^(0), …, E^(K)]. `layers(prop,
    e0)` runs the K steps with `prop(x)` one propagation step (Â x over the full graph, or M x
    over a sampled subgraph); `final()` combines them on the full graph, `sampled(...)` on a
    neighbour-sampled subgraph (training only), and `node_layers(e0, sides)` runs the same steps
    for nodes outside the graph whose messages are given (fold-in of a new user, a new movie
    placed by its people).

    Knowledge graph (`knowledge=True` of the models): with `item_people` (the binary items ×
    persons matrix as CSR (indptr, person codes)), person nodes follow the items in every node
    range (users | items | persons), with their own ego table `person_emb`; `adj` is then the
    normalized adjacency of the whole user–item–person graph. `final()` and `item_layers()`
    still give users and items only; `person_layers()` gives the persons' layers.
    """

    n_layers: int
    # Buffers (registered in __init__), declared for type checkers: nn.Module's __getattr__
    # would give them as Tensor | Module.
    adj: Tensor
    adj_csr: Tensor
    offset: Tensor
    people_ptr: Tensor  # knowledge graph only
    people_idx: Tensor
    person_emb: nn.Embedding

    def __init__(self, n_users: int, n_items: int, embedding_size: int, adj: Tensor,
                 global_mean: float = 0.0,
                 item_people: tuple[Tensor, Tensor, int] | None = None) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.user_emb = nn.Embedding(n_users, embedding_size)
        self.item_emb = nn.Embedding(n_items, embedding_size)
        self.n_persons = 0 if item_people is None else int(item_people[2])
        if item_people is not None:
            # Created only with the knowledge graph, so that a plain model draws the same
            # initial weights as before.
            self.person_emb = nn.Embedding(self.n_persons, embedding_size)
            self.register_buffer("people_ptr", item_people[0], persistent=False)
            self.register_buffer("people_idx", item_people[1], persistent=False)
        self.register_buffer("adj", adj, persistent=False)  # COO (inspection, node dropout)
        self.register_buffer("adj_csr", to_csr(adj), persistent=False)  # products
        self.register_buffer("offset", torch.tensor(float(global_mean)))
        self._cache: tuple[tuple, dict[str, object]] | None = None

    @property
    def knowledge(self) -> bool:
        """Whether the graph has person nodes (a `person_emb` table)."""
        return hasattr(self, "people_ptr")

    def ego(self) -> Tensor:
        """E^(0) = [user embeddings; item embeddings (; person embeddings)]."""
        if self.knowledge:
            return torch.cat([self.user_emb.weight, self.item_emb.weight,
                              self.person_emb.weight])
        return torch.cat([self.user_emb.weight, self.item_emb.weight])

    def ego_of(self, nodes: Tensor) -> Tensor:
        """E^(0) rows of global node ids (users 0..|U|−1, items |U|.., persons after them)."""
        is_user = (nodes < self.n_users).unsqueeze(-1)
        u = self.user_emb(nodes.clamp(max=self.n_users - 1))
        if not self.knowledge:
            i = self.item_emb((nodes - self.n_users).clamp(min=0))
            return torch.where(is_user, u, i)
        first_person = self.n_users + self.n_items
        i = self.item_emb((nodes - self.n_users).clamp(min=0, max=self.n_items - 1))
        is_person = (nodes >= first_person).unsqueeze(-1)
        if self.n_persons == 0:
            return torch.where(is_user, u, i)
        p = self.person_emb((nodes - first_person).clamp(min=0))
        return torch.where(is_user, u, torch.where(is_person, p, i))

    def people_of(self, items: Tensor) -> Tensor:
        """Person codes of the items' people, concatenated (int64, empty without knowledge)."""
        if not self.knowledge:
            return torch.empty(0, dtype=torch.int64, device=items.device)
        items = items.reshape(-1)
        start = self.people_ptr[items]
        count = self.people_ptr[items + 1] - start
        first = torch.cumsum(count, 0) - count
        pos = (torch.repeat_interleave(start - first, count)
               + torch.arange(int(count.sum()), device=items.device))
        return self.people_idx[pos]

    def person_penalty(self, items: Tensor) -> Tensor:
        """Σ ‖e_p^(0)‖² over the people of `items` (each time an item lists them); 0 without."""
        persons = self.people_of(items)
        if len(persons) == 0:
            return self.item_emb.weight.new_zeros(())
        return self.person_emb(persons).pow(2).sum()

    def step(self, k: int, side: Tensor, e: Tensor) -> Tensor:
        """Layer k + 1 of nodes with layer-k rows e [n, d] and messages side = (Â E^(k)) [n, d]."""
        raise NotImplementedError

    def combine(self, layers: list[Tensor]) -> Tensor:
        """Final representations [n, …] from the per-layer rows [E^(0), …, E^(K)] (each [n, d])."""
        raise NotImplementedError

    def layers(self, prop: Propagation | None = None, e: Tensor | None = None) -> list[Tensor]:
        """[E^(0), …, E^(K)] (default: the full graph, each [n_users + n_items, d])."""
        prop = self.full_propagation() if prop is None else prop
        e = self.ego() if e is None else e
        out = [e]
        for k in range(self.n_layers):
            e = self.step(k, prop(e), e)
            out.append(e)
        return out

    def represent(self, prop: Propagation, e: Tensor) -> Tensor:
        """Final representations [n, …] of the nodes with ego embeddings e [n, d]."""
        return self.combine(self.layers(prop, e))

    def node_layers(self, e0: Tensor, sides: Tensor) -> list[Tensor]:
        """[e^(0), …, e^(K)] of nodes outside the graph.

        From ego rows e0 [n, d] and their messages sides[k] = Σ_v Â_uv e_v^(k) [n, d] (k = 0..K−1)
        from neighbours whose layers are fixed, through the same `step` as the graph's own nodes;
        differentiable in e0.
        """
        out, e = [e0], e0
        for k in range(self.n_layers):
            e = self.step(k, sides[k], e)
            out.append(e)
        return out

    def full_propagation(self) -> Propagation:
        """Propagate x ↦ Â x over the full training graph."""
        return lambda x: propagate(self.adj_csr, x)

    def sampled_edges(self, dst: Tensor, src: Tensor, weight: Tensor
                      ) -> tuple[Tensor, Tensor, Tensor]:
        """The sampled edges used for messages (NGCF drops some in training)."""
        return dst, src, weight

    def sampled(self, nodes: Tensor, dst: Tensor, src: Tensor, weight: Tensor) -> Tensor:
        """Representations of a sampled subgraph's nodes (rows follow `nodes`); differentiable.

        Propagated over the sampled edges only (see `NeighborSampler`).
        """
        adj = sampled_adjacency(len(nodes), *self.sampled_edges(dst, src, weight))
        return self.represent(lambda x: propagate_sampled(adj, x), self.ego_of(nodes))

    def _compute(self) -> tuple[Tensor, Tensor]:
        rep = self.represent(self.full_propagation(), self.ego())
        return rep[:self.n_users], rep[self.n_users:self.n_users + self.n_items]

    def final(self) -> tuple[Tensor, Tensor]:
        """The propagated representations: recomputed in train mode, cached in eval mode."""
        return self._cached("final", self._compute)

    def item_layers(self) -> Tensor:
        """The items' rows of every layer of the full graph, [n_items, K+1, d].

        Cached like `final`; what a folded-in user's messages are made of.
        """
        end = self.n_users + self.n_items
        return self._cached("item_layers", lambda: torch.stack(
            [e[self.n_users:end] for e in self.layers()], dim=1))

    def person_layers(self) -> Tensor:
        """The persons' rows of every layer of the full graph, [n_persons, K+1, d].

        Cached like `final`; what a new movie's messages are made of (knowledge graph only).
        """
        start = self.n_users + self.n_items
        return self._cached("person_layers", lambda: torch.stack(
            [e[start:] for e in self.layers()], dim=1))

    def _cached(self, name: str, compute: Callable[[], object]) -> Any:
        """`compute()`, kept while the parameters are unchanged.

        Unchanged means the same ids and version counters (an optimizer step or `load_state_dict`
        invalidates it). Cached in eval mode without autograd only; recomputed every time otherwise.
        """
        if self.training or torch.is_grad_enabled():
            return compute()
        key = tuple((id(p), p._version) for p in self.parameters()) + (str(self.adj.device),)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, {})
        store = self._cache[1]
        if name not in store:
            store[name] = compute()
        return store[name]


def _lookup(table: Tensor, codes: Tensor) -> Tensor:
    """Rows of `table` for codes, zeros for −1 (unknown)."""
    return table[codes.clamp(min=0)] * (codes >= 0).unsqueeze(-1)


class LightGCNModule(_GraphModule):
    """LightGCN propagation: E^(k+1) = Â E^(k); E = (1/(K+1)) Σ_{k=0..K} E^(k)."""

    def __init__(self, n_users: int, n_items: int, embedding_size: int, n_layers: int,
                 adj: Tensor, item_people: tuple[Tensor, Tensor, int] | None = None) -> None:
        super().__init__(n_users, n_items, embedding_size, adj, item_people=item_people)
        self.n_layers = n_layers
        nn.init.normal_(self.user_emb.weight, std=0.1)
        nn.init.normal_(self.item_emb.weight, std=0.1)
        if self.n_persons > 0:
            nn.init.normal_(self.person_emb.weight, std=0.1)

    def step(self, k: int, side: Tensor, e: Tensor) -> Tensor:
        return side

    def combine(self, layers: list[Tensor]) -> Tensor:
        return torch.stack(layers).mean(0)


class NGCFModule(_GraphModule):
    """NGCF embedding propagation (Wang et al. 2019, eq. 7 in matrix form).

    Each layer computes

        E^(k+1) = LeakyReLU((Â + I) E^(k) W1 + ((Â E^(k)) ⊙ E^(k)) W2),

    with node dropout on Â and message dropout on E^(k+1) in training; each layer's output is
    L2-normalized per row (as in the authors' code) and E = [E^(0) ‖ E^(1) ‖ … ‖ E^(K)].
    """

    def __init__(self, n_users: int, n_items: int, embedding_size: int, n_layers: int,
                 adj: Tensor, node_dropout: float, message_dropout: float,
                 global_mean: float, item_people: tuple[Tensor, Tensor, int] | None = None
                 ) -> None:
        super().__init__(n_users, n_items, embedding_size, adj, global_mean, item_people)
        d = embedding_size
        self.n_layers = n_layers
        self.w1 = nn.ModuleList(nn.Linear(d, d) for _ in range(n_layers))
        self.w2 = nn.ModuleList(nn.Linear(d, d) for _ in range(n_layers))
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.node_dropout = node_dropout
        self.message_dropout = nn.Dropout(message_dropout)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)
        if self.n_persons > 0:
            nn.init.xavier_uniform_(self.person_emb.weight)
        for lin in [*self.w1, *self.w2]:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def graph(self) -> Tensor:
        """Â, with node dropout in training mode only."""
        return drop_edges(self.adj, self.node_dropout) if self.training else self.adj

    def graph_csr(self) -> Tensor:
        """`graph()` in CSR form for the products."""
        if self.training and self.node_dropout > 0:
            return to_csr(self.graph())
        return self.adj_csr

    def layer(self, k: int, adj: Tensor, e: Tensor) -> Tensor:
        """One propagation layer (before message dropout and normalization)."""
        return self._combine(k, propagate(adj, e), e)

    def _combine(self, k: int, side: Tensor, e: Tensor) -> Tensor:
        return F.leaky_relu(self.w1[k](side + e) + self.w2[k](side * e), 0.2)

    def full_propagation(self) -> Propagation:
        adj = self.graph_csr()  # one node-dropout draw per forward pass, shared by the layers
        return lambda x: propagate(adj, x)

    def sampled_edges(self, dst: Tensor, src: Tensor, weight: Tensor
                      ) -> tuple[Tensor, Tensor, Tensor]:
        """Node dropout on the sampled edges in training (as `drop_edges` on the full Â)."""
        p = self.node_dropout
        if not self.training or p <= 0:
            return dst, src, weight
        keep = torch.rand(len(weight), device=weight.device) >= p
        return dst[keep], src[keep], weight[keep] / (1 - p)

    def step(self, k: int, side: Tensor, e: Tensor) -> Tensor:
        return self.message_dropout(self._combine(k, side, e))

    def combine(self, layers: list[Tensor]) -> Tensor:
        return torch.cat([layers[0], *(F.normalize(e, p=2, dim=-1) for e in layers[1:])], dim=-1)


class AttnGraphRecModule(_GraphModule):
    """Embeddings → K LightGCN-style layers → pairwise layer attention → MLP.

    For a pair (u, i) with layer representations e_u^(k), e_i^(k) (k = 0..K):

        s_k = w_2ᵀ tanh(W_1 [e_u^(k); e_i^(k)] + b_1)   ∈ R² (one score per side),
        α^u = softmax_k(s_k[0]),  α^i = softmax_k(s_k[1]),
        u = Σ_k α^u_k e_u^(k),    i = Σ_k α^i_k e_i^(k),
        ŷ_ui = μ + MLP([u; i; u ⊙ i]).
    """

    def __init__(self, n_users: int, n_items: int, embedding_size: int, n_layers: int,
                 adj: Tensor, attention_size: int, hidden_size: int, dropout: float,
                 global_mean: float, item_people: tuple[Tensor, Tensor, int] | None = None
                 ) -> None:
        super().__init__(n_users, n_items, embedding_size, adj, global_mean, item_people)
        d = embedding_size
        self.n_layers = n_layers
        self.att_user = nn.Linear(d, attention_size)
        self.att_item = nn.Linear(d, attention_size, bias=False)
        self.att_out = nn.Linear(attention_size, 2, bias=False)
        self.mlp = nn.Sequential(nn.Linear(3 * d, hidden_size), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden_size, hidden_size // 2 or 1), nn.ReLU(),
                                 nn.Linear(hidden_size // 2 or 1, 1))
        nn.init.normal_(self.user_emb.weight, std=0.1)
        nn.init.normal_(self.item_emb.weight, std=0.1)
        if self.n_persons > 0:
            nn.init.normal_(self.person_emb.weight, std=0.1)

    def step(self, k: int, side: Tensor, e: Tensor) -> Tensor:
        return side

    def combine(self, layers: list[Tensor]) -> Tensor:
        return torch.stack(layers, dim=-2)  # [nodes, K+1, d]

    def attention(self, lu: Tensor, li: Tensor) -> Tensor:
        """Weights [..., K+1, 2] for broadcastable layer stacks lu, li [..., K+1, d].

        Softmax over layers; [..., 0] is the user side, [..., 1] the item side.
        """
        s = self.att_out(torch.tanh(self.att_user(lu) + self.att_item(li)))
        return torch.softmax(s, dim=-2)

    def pair(self, lu: Tensor, li: Tensor) -> Tensor:
        """Scores [...] for broadcastable layer stacks lu, li [..., K+1, d]."""
        a = self.attention(lu, li)
        u = (a[..., 0:1] * lu).sum(-2)
        i = (a[..., 1:2] * li).sum(-2)
        u, i = torch.broadcast_tensors(u, i)
        return self.offset + self.mlp(torch.cat([u, i, u * i], dim=-1)).squeeze(-1)
