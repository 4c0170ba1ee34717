"""The graph recommenders: LightGCN, NGCF, AttnGraphRec (fit through the shared Trainer)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from movierec.data.dataset import Dataset, item_rows
from movierec.data.people import people_spec
from movierec.models.base import check_param, is_int, is_number
from movierec.models.baseline import clip_to_scale
from movierec.models.graph._graph import (
    NeighborSampler,
    PopularityNegativeSampler,
    sparse_adjacency,
)
from movierec.models.graph._knowledge import (
    KnowledgeGraph,
    check_knowledge,
    people_matrix,
)
from movierec.models.graph._modules import (
    AttnGraphRecModule,
    LightGCNModule,
    NGCFModule,
    _GraphModule,
    _lookup,
)
from movierec.models.space import Float, Int, SearchSpace
from movierec.ranking import DotVectors
from movierec.training import (
    NegativeSampler,
    bpr_loss,
    check_trainer_params,
    iterate_batches,
    mse_loss,
)

__all__ = ["NGCF", "SAMPLING", "AttnGraphRec", "LightGCN"]

SAMPLING = ("full", "neighbor")


# --- the recommenders --------------------------------------------------------------------------
def _check_common(embedding_size: object, n_layers: object, layer_range: tuple[int, int],
                  epochs: object, batch_size: object, learning_rate: object, reg: object,
                  n_negatives: object, patience: object, device: object) -> None:
    lo, hi = layer_range
    check_param("embedding_size", embedding_size, is_int(embedding_size, 1), "an integer ≥ 1")
    check_param("n_layers", n_layers, is_int(n_layers, lo) and n_layers <= hi,  # type: ignore
                f"an integer in [{lo}, {hi}]")
    check_param("reg", reg, is_number(reg) and reg >= 0, "a number ≥ 0")  # type: ignore
    check_param("n_negatives", n_negatives, is_int(n_negatives, 1), "an integer ≥ 1")
    check_trainer_params({"epochs": epochs, "batch_size": batch_size,
                          "learning_rate": learning_rate, "patience": patience,
                          "device": device})


def _check_sampling(sampling: object, num_neighbors: object, negatives: object) -> None:
    check_param("sampling", sampling, sampling in SAMPLING, '"full" or "neighbor"')
    check_param("num_neighbors", num_neighbors, is_int(num_neighbors, 1), "an integer ≥ 1")
    check_param("negatives", negatives, negatives in ("uniform", "popularity"),
                '"uniform" or "popularity"')


class _GraphRecommender(KnowledgeGraph):
    """Shared hooks: adjacency from `seen_`, BPR negatives, neighbour sampling, cached scoring.

    With `sampling="full"` every step propagates over the whole training graph; with
    `sampling="neighbor"` `batches` samples the `n_layers`-hop neighbourhood of the batch's
    users, positives and negatives (`NeighborSampler`, fanout `num_neighbors`, driven by the
    trainer's generator) and the loss propagates over that subgraph only. Scoring, validation
    and `predict` always use the full graph. A new user is scored from a few ratings without
    refitting (`_score_history`, fold-in), for full- and neighbour-trained models alike.

    Knowledge graph (`knowledge=True`, LightGCN, NGCF and AttnGraphRec): the graph gains person
    nodes after the items — every director and the first `max_actors` billed actors, kept when
    they are in at least two movies of the whole item table (`movierec.data.people.
    people_spec`; one whose movies all lack training ratings is an isolated node) — and
    item–person edges from the training movies' rows beside the user–item ones;
    Â = D^-1/2 A D^-1/2 over the whole graph, so movies sharing people exchange messages through
    them. Persons get their own ego table, learned through the items they pass messages to; the
    L2 penalty covers the person rows of the batch's positives' and negatives' people (each
    time an item lists them), as it covers the items' own rows. The loss stays on user–movie
    pairs. The people vocabulary (`people_spec_`, JSON) and the items × persons matrix
    (`item_people_`) are saved with the model. A movie without any training rating is placed
    by its people (`score_new_items`, `_score_new_items`).
    """

    loss: str = "bpr"
    negatives: str = "uniform"
    n_negatives: int = 1
    batch_size: int = 2048
    n_layers: int = 1
    sampling: str = "full"
    num_neighbors: int = 10
    knowledge: bool = False
    max_actors: int = 3
    reg: float

    supports_fold_in: ClassVar[bool] = True
    # Fold-in of a new user (`_score_history`): ego-row start ("items": normalized sum of the
    # rated items' ego rows, "zero"), Adam steps and step size, cap on the unrated items used as
    # BPR negatives. Class attributes, not hyper-parameters: they change no fitted weight.
    # Fitting the ego row beats setting it from the items: on ML-100K (user-random 80/20, seed
    # 42, LightGCN 60 epochs, 200 test users' training histories folded in) NDCG@10 0.418 with
    # 20 steps against 0.404 with none (set from the items), the fitted users 0.414; 50 steps or
    # a zero start change it by less than the paired standard error (0.005). For AttnGraphRec
    # (MSE) the steps bring the test RMSE from 1.012 to 0.954 (fitted users 0.946).
    # benchmarks/graph_fold_in.py.
    fold_in_init: ClassVar[str] = "items"
    fold_in_steps: ClassVar[int] = 20
    fold_in_lr: ClassVar[float] = 0.05
    fold_in_negatives: ClassVar[int] = 2048

    def _prepare(self, train: Dataset) -> None:
        super()._prepare(train)
        if self.knowledge:
            # MovieRecError (no people in the item table) propagates from people_spec.
            spec = people_spec(train.items, max_actors=self.max_actors)
            self.people_spec_ = spec
            self.item_people_ = people_matrix(item_rows(train.items, train.item_vocab.index), spec,
                                              self.n_items_)
        if self.loss != "mse":
            self._sampler = (PopularityNegativeSampler(self.seen_)
                             if self.negatives == "popularity" else NegativeSampler(self.seen_))
        self._neighbors = (NeighborSampler(self.seen_, self.num_neighbors, self.n_layers,
                                           self._people())
                           if self.sampling == "neighbor" else None)

    def adjacency(self) -> Tensor:
        """Â of the training graph, from `seen_` (and `item_people_`), saved with the model."""
        return sparse_adjacency(self.seen_, self._people())

    def batches(self, data: dict[str, Tensor], generator: torch.Generator
                ) -> Iterator[dict[str, Tensor]]:
        for batch in iterate_batches(data, self.batch_size, generator):
            items = batch["item"]
            if self.loss != "mse":
                batch["negative"] = self._sampler(batch["user"], self.n_negatives, generator)
                items = torch.cat([items[:, None], batch["negative"]], dim=1)
            if self._neighbors is not None:
                batch.update(self._neighbors(batch["user"], items, generator))
            yield batch

    def _seed_vectors(self, module: _GraphModule, batch: dict[str, Tensor]
                      ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Representations of the batch's users, positives and negatives (None for MSE).

        From the sampled subgraph when the batch carries one, else from full-graph propagation.
        """
        if "sub_nodes" in batch:
            rep = module.sampled(batch["sub_nodes"], batch["sub_dst"], batch["sub_src"],
                                 batch["sub_weight"])
            eu, items = rep[batch["sub_user"]], rep[batch["sub_item"]]
            if self.loss == "mse":
                return eu, items, None
            return eu, items[:, 0], items[:, 1:]
        users, all_items = module.final()
        eu, ei = users[batch["user"]], all_items[batch["item"]]
        return eu, ei, None if self.loss == "mse" else all_items[batch["negative"]]

    def _dot_loss(self, module: _GraphModule, batch: dict[str, Tensor]) -> Tensor:
        """BPR on ŷ = e_uᵀ e_i (+ MSE variant for NGCF) plus λ/2 · ‖E^(0)_batch‖² / batch."""
        u, i = batch["user"], batch["item"]
        eu, ei, ej = self._seed_vectors(module, batch)
        ego_u, ego_i = module.user_emb(u), module.item_emb(i)
        penalty = ego_u.pow(2).sum() + ego_i.pow(2).sum()
        if module.knowledge:
            penalty = penalty + module.person_penalty(i)
        if self.loss == "mse":
            assert isinstance(module, NGCFModule)  # LightGCN trains by BPR only
            pred = (module.offset + (eu * ei).sum(-1) + module.user_bias(u).squeeze(-1)
                    + module.item_bias(i).squeeze(-1))
            fit = mse_loss(pred, batch["rating"])
        else:
            assert ej is not None
            j = batch["negative"]
            pos = (eu * ei).sum(-1)
            neg = (eu[:, None, :] * ej).sum(-1)
            fit = bpr_loss(pos, neg)
            penalty = penalty + module.item_emb(j).pow(2).sum()
            if module.knowledge:
                penalty = penalty + module.person_penalty(j)
        return fit + self.reg * penalty / (2 * len(u))

    def score_block(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor | None
                    ) -> Tensor:
        assert isinstance(module, _GraphModule)
        users, items = module.final()
        q = items if item_codes is None else items[item_codes]
        return self.pair_scores(module, users[user_codes], q, item_codes, self._user_bias(
            module, user_codes))

    def pair_scores(self, module: nn.Module, users: Tensor, items: Tensor,
                    item_codes: Tensor | None, user_bias: Tensor | None) -> Tensor:
        """Scores [B, n] of final user representations against final item representations.

        users [B, …] against items [n, …] (of `item_codes`, all items when None); `user_bias` [B]
        for the models that have one (None otherwise).
        """
        return users @ items.T

    def _user_bias(self, module: nn.Module, user_codes: Tensor) -> Tensor | None:
        return None

    def item_vectors(self) -> np.ndarray:
        """Final (propagated) item representations [n_items, d]."""
        with self._eval() as module:
            assert isinstance(module, _GraphModule)
            items = module.final()[1]
            return items.reshape(items.shape[0], -1).float().cpu().numpy()

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        pred = super()._predict(user_codes, item_codes)
        return clip_to_scale(pred, self.rating_scale_).astype(np.float32)

    # --- fold-in -------------------------------------------------------------------------------
    def _item_degrees(self) -> np.ndarray:
        """Item degrees d_i of the training graph (float64; with people, as Â counts them)."""
        return self._degrees()[1]

    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user u from the items they rated (fold-in).

        u joins the training graph with edges to its rated items I_u (degree d_u = |I_u|). Its
        messages are those of the full model, sides_k = Σ_{i∈I_u} e_i^(k) / √(d_u d_i), from the
        items' trained layer-k rows e_i^(k) (`item_layers`, cached per set of weights, so a call
        costs no propagation); the new edges' effect on the items — their degrees and the
        layers they receive from u — is neglected, as for one node among thousands. Then u's
        layers go through the model's own layer function, e_u^(k+1) = step(k, sides_k,
        e_u^(k)) (LightGCN and AttnGraphRec: sides_k itself; NGCF: its W1/W2 transform, message
        dropout off), are combined as in training and scored against the items by the model's
        own head. For a training user's own history the messages are exactly the fitted
        user's.

        The ego embedding e_u^(0) is unknown; it starts from the normalized sum of the items'
        ego embeddings (sides_0) and is fitted to the user's items with everything else frozen:
        `fold_in_steps` Adam steps (`fold_in_lr`) on the model's own objective plus its L2
        penalty (λ = `reg`), deterministic (no sampling unless there are more than
        `fold_in_negatives` unrated items, then a fixed-seed subset). Rating models (loss="mse")
        fit the ratings (NGCF also fits the user's bias b_u); ranking models treat every rated
        item as a positive against the unrated ones (BPR), as training treats every rating as an
        edge, whatever its value. (benchmarks/graph_fold_in.py compares these choices.)

        Args:
            item_codes: codes of the rated items; −1 (unknown) is ignored, and a repeated code
                keeps its last rating.
            ratings: one rating per code (used by rating models only).

        Raises:
            ValueError: no known item, or lengths differ.
        """
        self._check_fitted()
        codes = np.asarray(item_codes, dtype=np.int64).ravel()
        r = np.asarray(ratings, dtype=np.float64).ravel()
        if len(codes) != len(r):
            raise ValueError(f"item_codes ({len(codes)}) and ratings ({len(r)}) must have the "
                             "same length")
        keep = codes >= 0
        codes, r = codes[keep], r[keep]
        _, last = np.unique(codes[::-1], return_index=True)
        pick = np.sort(len(codes) - 1 - last)
        codes, r = codes[pick], r[pick]
        if self.fold_in_init not in ("items", "zero"):
            raise ValueError(f'fold_in_init must be "items" or "zero", got {self.fold_in_init!r}')
        if len(codes) == 0:
            raise ValueError(f"{type(self).__name__} fold-in needs at least one rated item "
                             "known to the model, got none (movierec.fold_in.fold_in falls "
                             "back to popularity then)")
        degrees = np.maximum(self._item_degrees()[codes], 1.0)
        weights = 1.0 / np.sqrt(len(codes) * degrees)
        with self._eval() as module:
            assert isinstance(module, _GraphModule)
            dev = self.device_
            layers = module.item_layers()  # [n_items, K+1, d]
            items = module.final()[1]
            idx = torch.from_numpy(codes).to(dev)
            w = torch.from_numpy(weights).to(device=dev, dtype=layers.dtype)
            sides = torch.einsum("m,mkd->kd", w, layers[idx])[:, None]  # [K+1, 1, d]
            x0 = sides[0] if self.fold_in_init == "items" else torch.zeros_like(sides[0])
            with torch.enable_grad():
                ego, bias = self._fit_ego(module, x0, sides, items, idx, r)
            rep = module.combine(module.node_layers(ego, sides))
            scores = self.pair_scores(module, rep, items, None, bias)
        return scores[0].float().cpu().numpy()

    def _fit_ego(self, module: _GraphModule, x0: Tensor, sides: Tensor, items: Tensor,
                 idx: Tensor, ratings: np.ndarray) -> tuple[Tensor, Tensor | None]:
        """The new user's ego row [1, d] (and bias [1] for NGCF-MSE, else None), fitted by Adam.

        `fold_in_steps` Adam steps on the training objective, the model's weights frozen.

        Gradients are taken with `torch.autograd.grad` on the user's own tensors only, so the
        model's parameters never receive a `.grad` (fold-in leaves the model untouched).
        """
        x = x0.detach().clone().requires_grad_(True)
        params = [x]
        bias = None
        if self._user_bias(module, idx[:1]) is not None:
            bias = torch.zeros(1, device=x.device, dtype=x.dtype, requires_grad=True)
            params.append(bias)
        if self.loss == "mse":
            target = torch.as_tensor(ratings, dtype=x.dtype, device=x.device)
            cand = idx
        else:
            cand = torch.cat([idx, self._fold_in_negatives(idx)])
        q = items[cand]
        opt = torch.optim.Adam(params, lr=self.fold_in_lr)
        for _ in range(self.fold_in_steps):
            rep = module.combine(module.node_layers(x, sides))
            s = self.pair_scores(module, rep, q, cand, bias)[0]
            if self.loss == "mse":
                fit = mse_loss(s, target)
            else:
                pos, neg = s[:len(idx)], s[len(idx):]
                fit = F.softplus(neg[None, :] - pos[:, None]).mean()
            loss = fit + self.reg * x.pow(2).sum() / 2
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            opt.step()
        return x.detach(), None if bias is None else bias.detach()

    def _fold_in_negatives(self, positives: Tensor) -> Tensor:
        """The unrated items (codes), or a fixed-seed subset of `fold_in_negatives` of them."""
        mask = torch.ones(self.n_items_, dtype=torch.bool, device=positives.device)
        mask[positives] = False
        rest = mask.nonzero().squeeze(1)
        if len(rest) > self.fold_in_negatives:
            gen = torch.Generator().manual_seed(0)
            pick = torch.randperm(len(rest), generator=gen)[:self.fold_in_negatives]
            rest = rest[pick.to(rest.device)].sort().values
        return rest

class LightGCN(_GraphRecommender):
    """LightGCN: light graph convolution for recommendation (He et al., SIGIR 2020).

    He, Deng, Wang, Li, Zhang & Wang, "LightGCN: Simplifying and Powering Graph Convolution Network
    for Recommendation", SIGIR 2020.

    Light graph convolution without feature transforms or non-linearities (eq. 3, matrix form
    eq. 8): E^(k+1) = Â E^(k) with Â = D^-1/2 A D^-1/2 of the training bipartite graph; layer
    combination (eq. 4) E = Σ_{k=0..K} α_k E^(k) with α_k = 1/(K+1); prediction (eq. 5)
    ŷ_ui = e_uᵀ e_i. Trained with BPR (eq. 15): Σ −ln σ(ŷ_ui − ŷ_uj) + λ‖E^(0)‖², the L2 term
    on the ego embeddings of the batch's users, positives and negatives (λ/2 · Σ‖·‖² / batch).
    Only E^(0) is learned. Ranking model: no rating prediction. Fold-in of a new user: its
    layers 1..K are the normalized sums of its items' trained layers, its E^(0) row is fitted by
    BPR on its items (`_score_history`).

    Trainer parameters (`movierec.training.TrainerParams`; defaults in the signature): a batch
    is (user, positive) pairs; learning_rate 5e-3 was better than 1e-3 on a validation
    carve-out of ML-100K, where 2048-rating batches give few steps per epoch.

    Args:
        embedding_size: d (default 64).
        n_layers: K propagation layers (default 3, in [0, 8]).
        reg: λ of the L2 penalty on the batch's ego embeddings (default 1e-4).
        n_negatives: sampled unseen items per positive (default 1).
        negatives: "uniform" (default) or "popularity" (P ∝ count^0.75 among unseen items).
        sampling: "full" (default: every step propagates over the whole graph) or "neighbor"
            (mini-batches on `n_layers`-hop neighbour-sampled subgraphs, see `NeighborSampler`).
        num_neighbors: fanout per node and hop with sampling="neighbor" (default 10).
        knowledge: add person nodes (directors, top-billed actors) and movie–person edges to
            the graph (default False; see `_GraphRecommender`). Needs an item table with
            director_ids/actor_ids (IMDb-joined or hetrec-ml-2k data; MovieRecError without),
            and lets `score_new_items` rank movies nobody has rated from their people.
        max_actors: top-billed actors per movie linked with `knowledge=True` (default 3, ≥ 0;
            every director is linked).
    """

    name: ClassVar[str] = "lightgcn"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(16, 128, log=True),
        "n_layers": Int(1, 4),
        "learning_rate": Float(1e-4, 3e-2, log=True),
        "reg": Float(1e-6, 1e-2, log=True),
    }
    predicts_ratings: ClassVar[bool] = False

    def __init__(self, *, embedding_size: int = 64, n_layers: int = 3, epochs: int = 200,
                 batch_size: int = 2048, learning_rate: float = 5e-3, reg: float = 1e-4,
                 n_negatives: int = 1, negatives: str = "uniform", sampling: str = "full",
                 num_neighbors: int = 10, knowledge: bool = False, max_actors: int = 3,
                 patience: int | None = 10, device: str = "auto") -> None:
        _check_common(embedding_size, n_layers, (0, 8), epochs, batch_size, learning_rate, reg,
                      n_negatives, patience, device)
        _check_sampling(sampling, num_neighbors, negatives)
        check_knowledge(knowledge, max_actors)
        self.knowledge = knowledge
        self.max_actors = max_actors
        self.embedding_size = embedding_size
        self.n_layers = n_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.reg = reg
        self.n_negatives = n_negatives
        self.negatives = negatives
        self.sampling = sampling
        self.num_neighbors = num_neighbors
        self.patience = patience
        self.device = device

    @property
    def objective(self) -> str:  # type: ignore[override]
        return "ranking"

    def build_module(self) -> LightGCNModule:
        return LightGCNModule(self.n_users_, self.n_items_, self.embedding_size, self.n_layers,
                              self.adjacency(), self._item_people())

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        assert isinstance(module, LightGCNModule)
        return self._dot_loss(module, batch)

    def dot_vectors(self) -> DotVectors:
        """The scores e_u · e_i of the propagated representations (`movierec.ranking.DotVectors`).

        Lets `movierec.ann.ANNIndex` index this model.
        """
        self._check_fitted()
        with self._eval() as module:
            assert isinstance(module, LightGCNModule)
            users, items = module.final()
            return DotVectors(users=users.reshape(len(users), -1).float().cpu().numpy(),
                              items=items.reshape(len(items), -1).float().cpu().numpy())


class NGCF(_GraphRecommender):
    """Neural Graph Collaborative Filtering (Wang, He, Wang, Feng & Chua, SIGIR 2019).

    Embedding propagation (eq. 7, matrix form):
    E^(k+1) = LeakyReLU((L + I) E^(k) W1^(k) + (L E^(k)) ⊙ E^(k) W2^(k)) with L = D^-1/2 A D^-1/2;
    message dropout on E^(k+1), node dropout (edges of L dropped per step) in training only;
    the representation is the concatenation e* = e^(0) ‖ … ‖ e^(K) (eq. 9; each layer
    L2-normalized as in the reference code) and ŷ_ui = e*_uᵀ e*_i (eq. 10). Loss (eq. 11, the
    "total loss"): BPR + λ‖E^(0)_batch‖². With `loss="mse"` it instead regresses the training
    ratings on the user–movie edges, r̂_ui = μ + b_u + b_i + e*_uᵀ e*_i, and `predict` returns
    ratings clipped to the scale (as MF; with BPR, `predict` is only a clipped score).
    Fold-in of a new user runs its messages from the items' trained layers through the same
    W1/W2 layers and fits its ego row (and bias, with MSE) to its ratings (`_score_history`).

    Trainer parameters (`movierec.training.TrainerParams`; defaults in the signature): a batch
    is (user, positive) pairs.

    Args:
        embedding_size: d of every layer (default 64).
        n_layers: K in [1, 4] (default 3).
        node_dropout: edge drop probability of L per step (default 0.1, in [0, 1)).
        message_dropout: dropout on each layer's messages (default 0.1, in [0, 1)).
        loss: "bpr" (default) or "mse".
        negatives: "uniform" (default) or "popularity" (P ∝ count^0.75 among unseen items).
        sampling: "full" (default) or "neighbor" (neighbour-sampled subgraphs; node dropout then
            drops sampled edges).
        num_neighbors: fanout per node and hop with sampling="neighbor" (default 10).
        knowledge: add person nodes and movie–person edges (default False; as LightGCN's).
        max_actors: top-billed actors per movie linked with `knowledge=True` (default 3).
        reg: λ on the batch's ego embeddings (default 1e-5).
        n_negatives: default 1.
    """

    name: ClassVar[str] = "ngcf"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(16, 128, log=True),
        "n_layers": Int(1, 4),
        "node_dropout": Float(0.0, 0.5),
        "message_dropout": Float(0.0, 0.5),
        "learning_rate": Float(1e-4, 3e-2, log=True),
        "reg": Float(1e-6, 1e-2, log=True),
    }
    predicts_ratings: ClassVar[bool] = True

    def __init__(self, *, embedding_size: int = 64, n_layers: int = 3, node_dropout: float = 0.1,
                 message_dropout: float = 0.1, loss: str = "bpr", negatives: str = "uniform",
                 sampling: str = "full", num_neighbors: int = 10, knowledge: bool = False,
                 max_actors: int = 3, epochs: int = 200,
                 batch_size: int = 2048, learning_rate: float = 1e-3, reg: float = 1e-5,
                 n_negatives: int = 1, patience: int | None = 10, device: str = "auto") -> None:
        _check_common(embedding_size, n_layers, (1, 4), epochs, batch_size, learning_rate, reg,
                      n_negatives, patience, device)
        check_param("node_dropout", node_dropout, is_number(node_dropout) and 0 <= node_dropout < 1,
                    "a number in [0, 1)")
        check_param("message_dropout", message_dropout,
                    is_number(message_dropout) and 0 <= message_dropout < 1, "a number in [0, 1)")
        check_param("loss", loss, loss in ("bpr", "mse"), '"bpr" or "mse"')
        _check_sampling(sampling, num_neighbors, negatives)
        check_knowledge(knowledge, max_actors)
        self.knowledge = knowledge
        self.max_actors = max_actors
        self.embedding_size = embedding_size
        self.n_layers = n_layers
        self.node_dropout = node_dropout
        self.message_dropout = message_dropout
        self.loss = loss
        self.negatives = negatives
        self.sampling = sampling
        self.num_neighbors = num_neighbors
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.reg = reg
        self.n_negatives = n_negatives
        self.patience = patience
        self.device = device

    def build_module(self) -> NGCFModule:
        return NGCFModule(self.n_users_, self.n_items_, self.embedding_size, self.n_layers,
                          self.adjacency(), self.node_dropout, self.message_dropout,
                          self.global_mean_ if self.loss == "mse" else 0.0, self._item_people())

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        assert isinstance(module, NGCFModule)
        return self._dot_loss(module, batch)

    def pair_scores(self, module: nn.Module, users: Tensor, items: Tensor,
                    item_codes: Tensor | None, user_bias: Tensor | None) -> Tensor:
        s = users @ items.T
        if self.loss == "mse":
            assert isinstance(module, NGCFModule) and user_bias is not None
            bi = module.item_bias.weight.squeeze(-1)
            bi = bi if item_codes is None else bi[item_codes]
            s = s + user_bias[:, None] + bi[None, :] + module.offset
        return s

    def _user_bias(self, module: nn.Module, user_codes: Tensor) -> Tensor | None:
        assert isinstance(module, NGCFModule)
        return module.user_bias(user_codes).squeeze(-1) if self.loss == "mse" else None

    def _new_item_scores(self, module: nn.Module, users: Tensor, items: Tensor,
                         user_bias: Tensor | None) -> Tensor:
        """e*_uᵀ e*_m, plus μ + b_u with `loss="mse"` (a new movie's bias b_m is 0)."""
        s = users @ items.T
        if self.loss == "mse":
            assert isinstance(module, NGCFModule) and user_bias is not None
            s = s + user_bias[:, None] + module.offset
        return s

    def predict_pairs(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor) -> Tensor:
        assert isinstance(module, NGCFModule)
        users, items = module.final()
        s = (_lookup(users, user_codes) * _lookup(items, item_codes)).sum(-1)
        if self.loss == "mse":
            s = (s + module.offset + _lookup(module.user_bias.weight, user_codes).squeeze(-1)
                 + _lookup(module.item_bias.weight, item_codes).squeeze(-1))
        return s

    def dot_vectors(self) -> DotVectors:
        """The scores e*_u · e*_i (plus μ + b_u + b_i with `loss="mse"`) as `DotVectors`.

        A `movierec.ranking.DotVectors`, so that `movierec.ann.ANNIndex` can index this model.
        """
        self._check_fitted()
        with self._eval() as module:
            assert isinstance(module, NGCFModule)
            users, items = module.final()
            vectors = DotVectors(users=users.reshape(len(users), -1).float().cpu().numpy(),
                                 items=items.reshape(len(items), -1).float().cpu().numpy())
            if self.loss != "mse":
                return vectors
            b_u = module.user_bias.weight.squeeze(-1).float().cpu().numpy()
            b_i = module.item_bias.weight.squeeze(-1).float().cpu().numpy()
            return DotVectors(users=vectors.users, items=vectors.items, item_bias=b_i,
                              user_offset=b_u + np.float32(float(module.offset)))


class AttnGraphRec(_GraphRecommender):
    """Attention-weighted graph recommender (the seed paper's hybrid of GCN and attention).

    User and item embeddings E^(0) (d = 64) are propagated by K LightGCN-style layers
    E^(k+1) = Â E^(k) (Â = D^-1/2 A D^-1/2, He et al. 2020). Instead of LightGCN's fixed mean,
    an attention module weights the K+1 representations per side and per pair (Bahdanau-style
    additive scoring): s_k = w_2ᵀ tanh(W_1 [e_u^(k); e_i^(k)] + b_1) ∈ R², α^u = softmax_k s_k[0],
    α^i = softmax_k s_k[1]; u = Σ α^u_k e_u^(k), i = Σ α^i_k e_i^(k). An MLP on [u; i; u ⊙ i]
    (the element-wise product added to the paper's [u; i] so the MLP need not learn a dot
    product, cf. Rendle et al. 2020) gives ŷ_ui = μ + MLP(·): a rating with `loss="mse"` (the
    default; `predict` clips to the scale), a ranking score with `loss="bpr"`.
    `attention(user_ids, item_ids)` returns the weights of given pairs. Fold-in of a new user
    feeds its layers (from the items' trained layers) to the same attention and MLP head and
    fits its ego row to its ratings (MSE: the scores are predicted ratings) or items (BPR).
    Block scoring evaluates the attention for every pair, chunked to at most `pair_chunk` pairs
    at a time.

    Trainer parameters (`movierec.training.TrainerParams`; defaults in the signature): a batch
    is (user, positive) pairs.

    Args:
        embedding_size: d (default 64).
        n_layers: K (default 2, in [1, 6]).
        attention_size: hidden width of the attention scorer (default 32).
        hidden_size: first MLP layer width (default 64; the second is half).
        dropout: dropout in the MLP (default 0.1, in [0, 1)).
        loss: "mse" (default) or "bpr".
        negatives: "uniform" (default) or "popularity" (BPR only).
        sampling: "full" (default) or "neighbor" (neighbour-sampled subgraphs).
        num_neighbors: fanout per node and hop with sampling="neighbor" (default 10).
        knowledge: add person nodes and movie–person edges (default False; as LightGCN's); a
            new movie's layers then go through the same attention and MLP head.
        max_actors: top-billed actors per movie linked with `knowledge=True` (default 3).
        reg: λ on the batch's ego embeddings (default 1e-4).
        n_negatives: sampled negatives per positive with bpr (default 1).
    """

    name: ClassVar[str] = "attngraphrec"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(16, 128, log=True),
        "n_layers": Int(1, 4),
        "attention_size": Int(8, 64, log=True),
        "hidden_size": Int(16, 256, log=True),
        "dropout": Float(0.0, 0.5),
        "learning_rate": Float(1e-4, 3e-2, log=True),
        "reg": Float(1e-6, 1e-2, log=True),
    }
    predicts_ratings: ClassVar[bool] = True
    score_block_size: ClassVar[int] = 256
    pair_chunk: ClassVar[int] = 1 << 15

    def __init__(self, *, embedding_size: int = 64, n_layers: int = 2, attention_size: int = 32,
                 hidden_size: int = 64, dropout: float = 0.1, loss: str = "mse",
                 negatives: str = "uniform", sampling: str = "full", num_neighbors: int = 10,
                 knowledge: bool = False, max_actors: int = 3, epochs: int = 50,
                 batch_size: int = 2048, learning_rate: float = 1e-3, reg: float = 1e-4,
                 n_negatives: int = 1, patience: int | None = 5, device: str = "auto") -> None:
        _check_common(embedding_size, n_layers, (1, 6), epochs, batch_size, learning_rate, reg,
                      n_negatives, patience, device)
        check_param("attention_size", attention_size, is_int(attention_size, 1), "an integer ≥ 1")
        check_param("hidden_size", hidden_size, is_int(hidden_size, 1), "an integer ≥ 1")
        check_param("dropout", dropout, is_number(dropout) and 0 <= dropout < 1,
                    "a number in [0, 1)")
        check_param("loss", loss, loss in ("bpr", "mse"), '"bpr" or "mse"')
        _check_sampling(sampling, num_neighbors, negatives)
        check_knowledge(knowledge, max_actors)
        self.knowledge = knowledge
        self.max_actors = max_actors
        self.embedding_size = embedding_size
        self.n_layers = n_layers
        self.attention_size = attention_size
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.loss = loss
        self.negatives = negatives
        self.sampling = sampling
        self.num_neighbors = num_neighbors
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.reg = reg
        self.n_negatives = n_negatives
        self.patience = patience
        self.device = device

    def build_module(self) -> AttnGraphRecModule:
        return AttnGraphRecModule(self.n_users_, self.n_items_, self.embedding_size,
                                  self.n_layers, self.adjacency(), self.attention_size,
                                  self.hidden_size, self.dropout,
                                  self.global_mean_ if self.loss == "mse" else 0.0,
                                  self._item_people())

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        assert isinstance(module, AttnGraphRecModule)
        u, i = batch["user"], batch["item"]
        lu, li, lj = self._seed_vectors(module, batch)
        pos = module.pair(lu, li)
        penalty = module.user_emb(u).pow(2).sum() + module.item_emb(i).pow(2).sum()
        if module.knowledge:
            penalty = penalty + module.person_penalty(i)
        if self.loss == "mse":
            fit = mse_loss(pos, batch["rating"])
        else:
            assert lj is not None
            j = batch["negative"]
            neg = module.pair(lu[:, None], lj)
            fit = bpr_loss(pos, neg)
            penalty = penalty + module.item_emb(j).pow(2).sum()
            if module.knowledge:
                penalty = penalty + module.person_penalty(j)
        return fit + self.reg * penalty / (2 * len(u))

    def pair_scores(self, module: nn.Module, users: Tensor, items: Tensor,
                    item_codes: Tensor | None, user_bias: Tensor | None) -> Tensor:
        """The MLP head on every (user, item) pair of layer stacks.

        users [B, K+1, d] and items [n, K+1, d], at most `pair_chunk` pairs at a time.
        """
        assert isinstance(module, AttnGraphRecModule)
        lu = users[:, None]  # [B, 1, K+1, d]
        step = max(1, self.pair_chunk // max(len(users), 1))
        chunks = [module.pair(lu, items[None, start:start + step])
                  for start in range(0, len(items), step)]
        return torch.cat(chunks, dim=1) if chunks else lu.new_empty(len(users), 0)

    def predict_pairs(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor) -> Tensor:
        assert isinstance(module, AttnGraphRecModule)
        users, items = module.final()
        lu = users[user_codes.clamp(min=0)] * (user_codes >= 0)[:, None, None]
        li = items[item_codes.clamp(min=0)] * (item_codes >= 0)[:, None, None]
        return module.pair(lu, li)

    def attention(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Layer weights float32 [n_pairs, 2, n_layers + 1] for (user id, item id) pairs.

        [:, 0] weights the user's representations E^(0..K), [:, 1] the item's; each row sums to 1.
        Ids unknown in training raise UnknownIdError.
        """
        self._check_fitted()
        u = self.user_vocab_.codes(np.asarray(user_ids))
        i = self.item_vocab_.codes(np.asarray(item_ids))
        with self._eval() as module:
            assert isinstance(module, AttnGraphRecModule)
            users, items = module.final()
            dev = users.device
            lu = users[torch.as_tensor(np.asarray(u, dtype=np.int64), device=dev)]
            li = items[torch.as_tensor(np.asarray(i, dtype=np.int64), device=dev)]
            a = module.attention(lu, li)
            return a.transpose(-1, -2).float().cpu().numpy()
