"""Graph CF with contrastive-style losses: UltraGCN and XSimGCL (fit through the shared Trainer).

Both reuse the package's graph machinery (`_GraphRecommender`: the training graph from `seen_`,
exact BPR negatives, cached full-graph scoring, fold-in of a new user) and score by a dot product
of final representations, so `dot_vectors()` serves the ANN index and the service.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from movierec import distributed
from movierec.models.base import check_param, is_int, is_number
from movierec.models.graph._graph import bipartite_degrees
from movierec.models.graph._models import _GraphRecommender
from movierec.models.graph._modules import _GraphModule
from movierec.models.space import Float, Int, SearchSpace
from movierec.ranking import DotVectors
from movierec.training import bpr_loss, check_trainer_params

__all__ = ["UltraGCN", "UltraGCNModule", "XSimGCL", "XSimGCLModule", "info_nce",
           "item_constraints", "ultragcn_betas"]


# --- the maths as functions --------------------------------------------------------------------
def ultragcn_betas(seen: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """UltraGCN's degree factors (β_u [n_users], β_i [n_items]) float64, eq. 10.

    β_{u,i} = (1/d_u) · √((d_u + 1)/(d_i + 1)) = β_u · β_i with β_u = √(d_u + 1)/d_u and
    β_i = 1/√(d_i + 1), d the degrees of the binary training graph (as the reference code); a
    node without edges gets β = 0 on the user side (it is never in a batch).
    """
    du, di = bipartite_degrees(seen)
    with np.errstate(divide="ignore", invalid="ignore"):
        bu = np.where(du > 0, np.sqrt(du + 1) / np.maximum(du, 1), 0.0)
    return bu, 1.0 / np.sqrt(di + 1)


def item_constraints(seen: sp.spmatrix, k: int, block: int = 1 << 22
                     ) -> tuple[np.ndarray, np.ndarray]:
    """UltraGCN's item–item constraint: the top-k neighbours S(i) and weights ω_ij (eq. 12).

    G = RᵀR (co-occurrence of the binary training matrix R) without its diagonal, g_i = Σ_j G_ij,
    ω_ij = G_ij · √(g_i + 1)/g_i · 1/√(g_j + 1) (the user–item β of eq. 10 on G, as the
    reference code computes it; the paper's G_ij/(g_i − G_ii) · √(g_i/g_j) up to the +1); S(i)
    the k items with the largest ω_ij (ties by item code). Rows are taken in dense blocks of at
    most `block` entries, so memory stays bounded on large catalogs.

    Returns:
        (neighbours int64 [n_items, k'], weights float32 [n_items, k']) with k' = min(k,
        n_items − 1); a row with fewer than k' co-occurring items is padded with weight 0.
    """
    r = sp.csr_matrix(seen, dtype=np.float64)
    r.data[:] = 1.0
    r.sum_duplicates()
    g = (r.T @ r).tocsr()
    g.setdiag(0.0)
    g.eliminate_zeros()
    n = g.shape[0]
    k = max(0, min(int(k), n - 1))
    gd = np.asarray(g.sum(axis=1)).ravel()
    row_f = np.where(gd > 0, np.sqrt(gd + 1) / np.maximum(gd, 1), 0.0)
    col_f = torch.from_numpy(1.0 / np.sqrt(gd + 1))
    idx = np.zeros((n, k), dtype=np.int64)
    val = np.zeros((n, k), dtype=np.float32)
    if k == 0:
        return idx, val
    step = max(1, block // max(n, 1))
    for start in range(0, n, step):
        rows = slice(start, min(n, start + step))
        dense = torch.from_numpy(g[rows].toarray()) * col_f[None, :]
        dense *= torch.from_numpy(row_f[rows])[:, None]
        top = torch.topk(dense, k, dim=1, sorted=True)
        idx[rows], val[rows] = top.indices.numpy(), top.values.numpy()
    return idx, val


def info_nce(view1: Tensor, view2: Tensor, tau: float) -> Tensor:
    """InfoNCE of two views [n, d] of the same n nodes (cosine similarity, temperature τ).

    −(1/n) Σ_v log( exp(cos(z'_v, z''_v)/τ) / Σ_w exp(cos(z'_v, z''_w)/τ) ): each node's other
    view is its positive, the other nodes' second views its negatives (XSimGCL eq. 4, SELFRec's
    `InfoNCE`).
    """
    a, b = F.normalize(view1, dim=1), F.normalize(view2, dim=1)
    logits = a @ b.T / tau
    return -torch.diagonal(F.log_softmax(logits, dim=1)).mean()


# --- modules -----------------------------------------------------------------------------------
class UltraGCNModule(_GraphModule):
    """UltraGCN: user and item embeddings only (no message passing), ŷ_ui = e_uᵀ e_i.

    The degree factors and the item–item neighbourhoods are non-persistent buffers rebuilt from
    the training graph (like Â), so they never enter the saved weights.
    """

    beta_user: Tensor
    beta_item: Tensor
    neighbors: Tensor
    neighbor_weights: Tensor

    def __init__(self, n_users: int, n_items: int, embedding_size: int, adj: Tensor,
                 betas: tuple[np.ndarray, np.ndarray], neighbors: tuple[np.ndarray, np.ndarray],
                 init_std: float) -> None:
        super().__init__(n_users, n_items, embedding_size, adj)
        self.n_layers = 0
        self.register_buffer("beta_user", torch.from_numpy(betas[0].astype(np.float32)),
                             persistent=False)
        self.register_buffer("beta_item", torch.from_numpy(betas[1].astype(np.float32)),
                             persistent=False)
        self.register_buffer("neighbors", torch.from_numpy(neighbors[0]), persistent=False)
        self.register_buffer("neighbor_weights", torch.from_numpy(neighbors[1]),
                             persistent=False)
        nn.init.normal_(self.user_emb.weight, std=init_std)
        nn.init.normal_(self.item_emb.weight, std=init_std)

    def combine(self, layers: list[Tensor]) -> Tensor:
        return layers[0]


class XSimGCLModule(_GraphModule):
    """LightGCN layers with uniform noise in training: E^(k+1) = Â E^(k) + Δ^(k+1) (XSimGCL eq. 6).

    Δ = ε · sign(Â E^(k)) ⊙ normalize(U(0, 1)) per row (training only; scoring and fold-in are
    noise-free); the final representation is the mean of layers 1..K (E^(0) excluded, as in the
    reference code).
    """

    def __init__(self, n_users: int, n_items: int, embedding_size: int, n_layers: int,
                 adj: Tensor, eps: float) -> None:
        super().__init__(n_users, n_items, embedding_size, adj)
        self.n_layers = n_layers
        self.eps = eps
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)

    def step(self, k: int, side: Tensor, e: Tensor) -> Tensor:
        if self.training and self.eps > 0:
            # Global torch RNG, which the Trainer seeds from the fit's generator.
            noise = F.normalize(torch.rand_like(side), dim=-1)
            return side + torch.sign(side) * noise * self.eps
        return side

    def combine(self, layers: list[Tensor]) -> Tensor:
        return torch.stack(layers[1:]).mean(0)


# --- the recommenders --------------------------------------------------------------------------
class _DotGraphRecommender(_GraphRecommender):
    """A ranking graph model scored by e_uᵀ e_i of its final representations."""

    @property
    def objective(self) -> str:  # type: ignore[override]
        return "ranking"

    def dot_vectors(self) -> DotVectors:
        """The scores e_u · e_i as `movierec.ranking.DotVectors` (for `movierec.ann.ANNIndex`)."""
        self._check_fitted()
        with self._eval() as module:
            assert isinstance(module, _GraphModule)
            users, items = module.final()
            return DotVectors(users=users.float().cpu().numpy(),
                              items=items.float().cpu().numpy())


def _check_shared(embedding_size: object, reg: object, lambda_: object, n_negatives: object,
                  params: dict[str, object]) -> None:
    check_param("embedding_size", embedding_size, is_int(embedding_size, 1), "an integer ≥ 1")
    check_param("reg", reg, is_number(reg) and reg >= 0, "a number ≥ 0")  # type: ignore
    check_param("lambda_", lambda_, is_number(lambda_) and lambda_ >= 0,  # type: ignore
                "a number ≥ 0")
    check_param("n_negatives", n_negatives, is_int(n_negatives, 1), "an integer ≥ 1")
    check_trainer_params(params)


class UltraGCN(_DotGraphRecommender):
    """UltraGCN: ultra simplification of graph convolution (Mao et al., CIKM 2021).

    Mao, Zhu, Xiao, Lu, Wang & He, "UltraGCN: Ultra Simplification of Graph Convolutional
    Networks for Recommendation", CIKM 2021. Instead of stacking message passing, it learns
    plain embeddings, ŷ_ui = e_uᵀ e_i, under the constraint that an infinite stack of graph
    convolutions would put on them: the loss weights each pair by
    β_{u,i} = (1/d_u)·√((d_u + 1)/(d_i + 1)) (eq. 10, `ultragcn_betas`):

        L_O = Σ_{(u,i)} [ −(w1 + w2 β_{u,i}) log σ(ŷ_ui)
                          − (r/N) Σ_{j ∈ N⁻} (w3 + w4 β_{u,j}) log σ(−ŷ_uj) ]     (eq. 14)
        L_I = −Σ_{(u,i)} Σ_{j ∈ S(i)} ω_ij log σ(ŷ_uj)                              (eq. 13)
        L   = (L_O + λ L_I + γ ‖Θ‖²/2) / batch                                      (eq. 15)

    with N sampled negatives per positive weighted by r (`negative_weight`; the reference code
    averages them, hence r/N), S(i) the top-K item–item neighbours of the positive and ω_ij
    their weights (`item_constraints`, skipped when λ = 0 or K = 0), and γ on every embedding.
    The loss is divided by the batch size, which Adam does not see (its steps are invariant to
    the loss's scale), so the reference code's γ and λ carry over. Negatives are drawn uniformly
    among the user's unseen items (the reference draws among all items).

    Defaults are the reference code's MovieLens-1M configuration (xue-pai/UltraGCN
    `ml-1m_config.ini`) except `epochs` (2000 there) and `learning_rate` (1e-3 there): an
    ML-100K epoch is 70 steps against ML-1M's 778, and at 1e-3 the model stayed at popularity
    level until early stopping ended it. 3e-3 was picked on validation carve-outs of ML-100K
    (random and time-ordered; docs/models/contrastive.md). `patience` is the reference's 50:
    with 20 the first flat epochs could end a fit before it learnt anything.
    Fold-in of a new user fits its embedding by BPR on its items, the items' frozen
    (`_score_history`).

    Args:
        embedding_size: d (default 128).
        w1, w2: weight w1 + w2·β_{u,i} of a positive (defaults 1e-7, 1).
        w3, w4: weight w3 + w4·β_{u,j} of a negative (defaults 1e-7, 1).
        n_negatives: N uniform unseen negatives per positive (default 200).
        negative_weight: r, the weight of the negatives' mean term (default 200).
        reg: γ of the L2 norm of all embeddings (default 1e-4).
        lambda_: λ of the item–item constraint L_I (default 1e-3; 0 turns it off). On the
            command line the key is `lambda`.
        n_neighbors: K item–item neighbours per positive (default 10).
        init_std: standard deviation of the normal initialization (default 1e-3).
    """

    name: ClassVar[str] = "ultragcn"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(32, 128, log=True),
        "w2": Float(0.1, 10.0, log=True),
        "w4": Float(0.1, 10.0, log=True),
        "n_negatives": Int(10, 300, log=True),
        "negative_weight": Float(1.0, 500.0, log=True),
        "reg": Float(1e-6, 1e-2, log=True),
        "lambda_": Float(1e-5, 1e-1, log=True),
        "learning_rate": Float(1e-4, 1e-2, log=True),
    }
    predicts_ratings: ClassVar[bool] = False
    loss = "bce"
    n_layers = 0
    # Negative scores come from a full product e_u·E_items when N · ratio ≥ n_items (both
    # exact). Forward + backward of the negative term, B = 1024, N = 200, d = 128, one thread
    # (2026-12-08): 25 / 37 / 147 / 262 / 855 ms by the product against 250-300 ms by gathering
    # for 1,682 / 3,200 / 9,742 / 20,000 / 60,000 items, so the product wins up to about
    # N · 100 items; 64 keeps a margin (ml-latest-small and ML-10M take the product).
    dense_negatives_ratio: ClassVar[int] = 64

    def __init__(self, *, embedding_size: int = 128, w1: float = 1e-7, w2: float = 1.0,
                 w3: float = 1e-7, w4: float = 1.0, n_negatives: int = 200,
                 negative_weight: float = 200.0, reg: float = 1e-4, lambda_: float = 1e-3,
                 n_neighbors: int = 10, init_std: float = 1e-3, epochs: int = 200,
                 batch_size: int = 1024, learning_rate: float = 3e-3,
                 patience: int | None = 50, device: str = "auto") -> None:
        _check_shared(embedding_size, reg, lambda_, n_negatives, locals())
        for key, value in (("w1", w1), ("w2", w2), ("w3", w3), ("w4", w4),
                           ("negative_weight", negative_weight)):
            check_param(key, value, is_number(value) and value >= 0, "a number ≥ 0")
        check_param("n_neighbors", n_neighbors, is_int(n_neighbors, 0), "an integer ≥ 0")
        check_param("init_std", init_std, is_number(init_std) and init_std > 0,
                    "a number > 0")
        self.embedding_size = embedding_size
        self.w1, self.w2, self.w3, self.w4 = w1, w2, w3, w4
        self.n_negatives = n_negatives
        self.negative_weight = negative_weight
        self.reg = reg
        self.lambda_ = lambda_
        self.n_neighbors = n_neighbors
        self.init_std = init_std
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.device = device

    def build_module(self) -> UltraGCNModule:
        k = self.n_neighbors if self.lambda_ > 0 else 0
        return UltraGCNModule(self.n_users_, self.n_items_, self.embedding_size,
                              self.adjacency(), ultragcn_betas(self.seen_),
                              item_constraints(self.seen_, k), self.init_std)

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        assert isinstance(module, UltraGCNModule)
        u, i, j = batch["user"], batch["item"], batch["negative"]
        eu = module.user_emb(u)
        pos = (eu * module.item_emb(i)).sum(-1)
        if j.shape[1] * self.dense_negatives_ratio >= module.n_items:
            # Many negatives on a small catalog: one product with every item, then a gather,
            # is much cheaper than gathering (and back-propagating) [B, N, d] rows.
            neg = (eu @ module.item_emb.weight.T).gather(1, j)
        else:
            neg = (eu[:, None, :] * module.item_emb(j)).sum(-1)  # [B, N]
        bu = module.beta_user[u]
        w_pos = self.w1 + self.w2 * bu * module.beta_item[i]
        w_neg = self.w3 + self.w4 * bu[:, None] * module.beta_item[j]
        total = (w_pos * F.softplus(-pos)).sum() \
            + self.negative_weight * (w_neg * F.softplus(neg)).mean(-1).sum()
        if self.lambda_ > 0 and module.neighbors.shape[1] > 0:
            nb = module.neighbors[i]  # [B, K]
            s = (eu[:, None, :] * module.item_emb(nb)).sum(-1)
            total = total + self.lambda_ * (module.neighbor_weights[i] * F.softplus(-s)).sum()
        norm = module.user_emb.weight.pow(2).sum() + module.item_emb.weight.pow(2).sum()
        # Data-parallel, every process adds the whole-table norm for its slice of the batch:
        # dividing by the world size keeps γ's share of the global batch's loss.
        return (total + self.reg * norm / (2 * distributed.world_size())) / len(u)


class XSimGCL(_DotGraphRecommender):
    """XSimGCL: extremely simple graph contrastive learning (Yu et al., TKDE 2023).

    Yu, Xia, Yin, Cui, Nguyen & Nguyen, "XSimGCL: Towards Extremely Simple Graph Contrastive
    Learning for Recommendation", IEEE TKDE 2023. LightGCN propagation E^(k+1) = Â E^(k) with,
    in training only, uniform noise added at every layer, Δ = ε · sign(E^(k+1)) ⊙ normalize(U(0,
    1)) (eq. 6); the representation is the mean of layers 1..K and ŷ_ui = e_uᵀ e_i. One noisy
    forward pass gives both the recommendation view (the final representation) and the
    contrastive view (layer l*), contrasted by InfoNCE over the batch's distinct users and
    distinct positive items (`info_nce`, cosine, temperature τ):

        L = L_BPR + λ (InfoNCE_users + InfoNCE_items) + reg · (‖E_u‖ + ‖E_i‖) / batch

    the last term on the batch's final user and positive-item representations (Frobenius norms,
    as SELFRec's `l2_reg_loss`). With ε = 0 and λ = 0 it is LightGCN with E^(0) left out of the
    layer mean. Fold-in of a new user needs no fitting: its representation depends only on its
    items' trained layers (`fold_in_steps` is 0).

    Defaults are SELFRec's `conf/XSimGCL.yaml` (Coder-Yu/SELFRec) except `epochs`/`patience`.

    Args:
        embedding_size: d (default 64).
        n_layers: K propagation layers (default 2, in [1, 8]).
        l_star: l*, the layer contrasted with the final representation (default 1, in [1, K]).
        eps: ε, the noise magnitude (default 0.2, ≥ 0).
        tau: τ, the InfoNCE temperature (default 0.15, > 0).
        lambda_: λ, the weight of the contrastive loss (default 0.2, ≥ 0). On the command line
            the key is `lambda`.
        reg: weight of the L2 term (default 1e-4).
        n_negatives: sampled unseen items per positive for BPR (default 1).
    """

    name: ClassVar[str] = "xsimgcl"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(32, 128, log=True),
        "n_layers": Int(1, 4),
        "eps": Float(0.01, 0.5, log=True),
        "tau": Float(0.05, 0.5, log=True),
        "lambda_": Float(0.01, 1.0, log=True),
        "learning_rate": Float(1e-4, 1e-2, log=True),
        "reg": Float(1e-6, 1e-2, log=True),
    }
    predicts_ratings: ClassVar[bool] = False
    fold_in_steps: ClassVar[int] = 0
    loss = "bpr"

    def __init__(self, *, embedding_size: int = 64, n_layers: int = 2, l_star: int = 1,
                 eps: float = 0.2, tau: float = 0.15, lambda_: float = 0.2, reg: float = 1e-4,
                 n_negatives: int = 1, epochs: int = 200, batch_size: int = 2048,
                 learning_rate: float = 1e-3, patience: int | None = 10,
                 device: str = "auto") -> None:
        _check_shared(embedding_size, reg, lambda_, n_negatives, locals())
        check_param("n_layers", n_layers, is_int(n_layers, 1) and n_layers <= 8,
                    "an integer in [1, 8]")
        check_param("l_star", l_star, is_int(l_star, 1) and l_star <= n_layers,
                    f"an integer in [1, n_layers={n_layers}]")
        check_param("eps", eps, is_number(eps) and eps >= 0, "a number ≥ 0")
        check_param("tau", tau, is_number(tau) and tau > 0, "a number > 0")
        self.embedding_size = embedding_size
        self.n_layers = n_layers
        self.l_star = l_star
        self.eps = eps
        self.tau = tau
        self.lambda_ = lambda_
        self.reg = reg
        self.n_negatives = n_negatives
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.device = device

    def build_module(self) -> XSimGCLModule:
        return XSimGCLModule(self.n_users_, self.n_items_, self.embedding_size, self.n_layers,
                             self.adjacency(), self.eps)

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        assert isinstance(module, XSimGCLModule)
        u, i, j = batch["user"], batch["item"], batch["negative"]
        layers = module.layers()  # noisy in train mode
        final, view = module.combine(layers), layers[self.l_star]
        n = module.n_users
        users, items = final[:n], final[n:]
        eu, ei = users[u], items[i]
        rec = bpr_loss((eu * ei).sum(-1), (eu[:, None, :] * items[j]).sum(-1))
        l2 = self.reg * (eu.norm() + ei.norm()) / len(u)
        if self.lambda_ == 0:
            return rec + l2
        uu, ii = torch.unique(u), torch.unique(i)
        cl = info_nce(users[uu], view[:n][uu], self.tau) \
            + info_nce(items[ii], view[n:][ii], self.tau)
        return rec + l2 + self.lambda_ * cl
