"""SVD++: biased matrix factorization with implicit feedback (Koren, KDD 2008).

Trained on the shared Trainer.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from movierec.models.base import check_param, is_number
from movierec.models.mf import MF
from movierec.models.space import Choice, Float, Int, SearchSpace
from movierec.training import (
    bce_loss,
    bpr_loss,
    mse_loss,
)

__all__ = ["SVDpp", "SVDppModule"]



def csr_bags(indptr: Tensor, keys: Tensor, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(keys, offsets, |N(r)|^-½ per entry, bag sizes) of CSR `rows` [b] for an EmbeddingBag.

    `indptr`/`keys` are a CSR matrix's row pointers and column indices as tensors; a row code of
    −1 (unknown) gets an empty bag, whose sum is zero. Shared by SVD++ and FeatureNet.
    """
    known = rows >= 0
    rc = rows.clamp(min=0)
    start = indptr[rc]
    count = (indptr[rc + 1] - start) * known
    offsets = torch.cumsum(count, 0) - count
    total = int(count.sum())
    # Position of every entry in `keys`: its row's start plus its rank in the bag.
    shift = torch.repeat_interleave(start - offsets, count, output_size=total)
    flat = shift + torch.arange(total, device=rows.device)
    weight = torch.repeat_interleave(count.clamp(min=1).to(torch.float32).rsqrt(), count,
                                     output_size=total)
    return keys[flat], offsets, weight, count

class SVDppModule(nn.Module):
    """r̂_ui = μ + b_u + b_i + q_i · (p_u + |N(u)|^-½ Σ_{j ∈ N(u)} y_j).

    N(u) is the set of items user u rated in training, held as the CSR structure (`indptr`,
    `indices`) of the training matrix in non-persistent buffers: they are rebuilt from the
    model's `seen_` matrix, so the state dict holds only learned weights. The implicit sum is one
    `nn.EmbeddingBag(mode="sum")` over the users' CSR slices with per-sample weights |N(u)|^-½.
    A code of −1 (unknown user or item) contributes zero factors, a zero implicit sum and zero
    biases.

    Args:
        n_users: number of user codes.
        n_items: number of item codes.
        embedding_size: factor dimension k.
        global_mean: μ, the mean training rating.
        history: binary users x items CSR matrix of training interactions (N(u) per row).
    """

    # Buffers (registered in __init__), declared for type checkers: nn.Module's __getattr__
    # would give them as Tensor | Module.
    offset: Tensor
    indptr: Tensor
    indices: Tensor

    def __init__(self, n_users: int, n_items: int, embedding_size: int, global_mean: float,
                 history: sp.csr_matrix) -> None:
        super().__init__()
        self.user_factors = nn.Embedding(n_users, embedding_size)
        self.item_factors = nn.Embedding(n_items, embedding_size)
        self.implicit_factors = nn.EmbeddingBag(n_items, embedding_size, mode="sum")
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.register_buffer("offset", torch.tensor(float(global_mean)))
        m = sp.csr_matrix(history).sorted_indices()  # a copy: `history` may be read-only
        if m.shape != (n_users, n_items):
            raise ValueError(f"history must be {n_users} x {n_items}, got {m.shape}")
        self.register_buffer("indptr", torch.from_numpy(m.indptr.astype(np.int64)),
                             persistent=False)
        self.register_buffer("indices", torch.from_numpy(m.indices.astype(np.int64)),
                             persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Factors ~ N(0, 0.01²) (small, so training starts near the bias model); biases 0."""
        for table in (self.user_factors, self.item_factors, self.implicit_factors):
            nn.init.normal_(table.weight, std=0.01)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def _lookup(self, table: nn.Embedding, codes: Tensor) -> Tensor:
        known = (codes >= 0).unsqueeze(-1)
        return table(codes.clamp(min=0)) * known

    def history_bags(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(items, offsets, |N(u)|^-½ per item, bag sizes) of users `u` [b] for EmbeddingBag.

        Unknown users (−1) get an empty bag, whose sum is zero.
        """
        return csr_bags(self.indptr, self.indices, u)

    def implicit(self, u: Tensor) -> Tensor:
        """|N(u)|^-½ Σ_{j ∈ N(u)} y_j [b, k] for user codes `u` [b] (zeros for unknown users)."""
        items, offsets, weight, _ = self.history_bags(u)
        return self.implicit_factors(items, offsets, per_sample_weights=weight)

    def user_terms(self, u: Tensor, penalty: bool = False
                   ) -> tuple[Tensor, Tensor, Tensor | None]:
        """(p_u + implicit sum [b, k], b_u [b], penalty or None) for user codes `u` [b].

        Each distinct user's bag is summed once. With `penalty`, the third value is the scalar
        mean over the b ratings of |N(u)|^-1 Σ_{j ∈ N(u)} ‖y_j‖² (the mean squared norm of the
        user's implicit factors), written as Σ_j c_j ‖y_j‖² with constant weights c_j: one
        product over the item table instead of a second bag and its backward.
        """
        distinct, inverse = torch.unique(u, return_inverse=True)
        items, offsets, weight, count = self.history_bags(distinct)
        vec = (self._lookup(self.user_factors, distinct)
               + self.implicit_factors(items, offsets, per_sample_weights=weight))
        b_u = self._lookup(self.user_bias, u).squeeze(-1)
        if not penalty:
            return vec[inverse], b_u, None
        y = self.implicit_factors.weight
        with torch.no_grad():
            ratings_per_user = torch.bincount(inverse, minlength=len(distinct)).to(y.dtype)
            per_entry = weight**2 * torch.repeat_interleave(ratings_per_user, count,
                                                            output_size=len(items))
            c = torch.zeros(len(y), dtype=y.dtype, device=y.device).index_add_(0, items,
                                                                                per_entry)
        return vec[inverse], b_u, (c * y.pow(2).sum(-1)).sum() / max(len(u), 1)

    def item_terms(self, i: Tensor) -> tuple[Tensor, Tensor]:
        """(q_i [.., k], b_i [..]) with zeros for unknown items."""
        return self._lookup(self.item_factors, i), self._lookup(self.item_bias, i).squeeze(-1)

    def forward(self, u: Tensor, i: Tensor) -> Tensor:
        """Predictions [b] for code pairs u [b], i [b]: the equation above."""
        z, b_u, _ = self.user_terms(u)
        q, b_i = self.item_terms(i)
        return self.offset + b_u + b_i + (z * q).sum(-1)

    def block(self, u: Tensor, i: Tensor | None) -> Tensor:
        """Predictions [users, items] for every pair (all items when `i` is None)."""
        z, b_u, _ = self.user_terms(u)
        if i is None:
            q, b_i = self.item_factors.weight, self.item_bias.weight.squeeze(-1)
        else:
            q, b_i = self.item_terms(i)
        return self.offset + b_u[:, None] + b_i[None, :] + z @ q.T


class SVDpp(MF):
    """SVD++: r̂_ui = μ + b_u + b_i + q_i · (p_u + |N(u)|^-½ Σ_{j ∈ N(u)} y_j).

    Koren, "Factorization meets the neighborhood", KDD 2008; trained by mini-batch Adam on the
    shared `Trainer`.

    N(u) is every item the user rated in training (the implicit feedback of "who rated what");
    each item has a second factor y_j, so a user is described by p_u plus the normalized sum of
    the y's of the movies they chose to rate. With `loss="mse"` the model fits the ratings; with
    `loss="bpr"` or `"bce"` it learns a ranking against `n_negatives` sampled unseen items per
    rating (early stopping then uses NDCG@10) and `predict` returns only a clipped score.

    Regularization as in MF: `reg` · mean(‖p_u‖² + ‖q_i‖² + b_u² + b_i²) over the batch's
    ratings, plus `reg_implicit` · mean(|N(u)|^-1 Σ_{j ∈ N(u)} ‖y_j‖²), and Adam's
    `weight_decay` on every parameter. Defaults were chosen on a 10% validation carve-out of
    ML-100K u1.base (see benchmarks/svdpp_ml100k.py), never on u1.test.

    Fold-in: a new user's N(u) is the set of items they rated, their implicit sum follows from
    the fixed y's, and (p, b) are solved in closed form by ridge regression (`_score_history`).

    Args:
        embedding_size: factor dimension k (default 32, ≥ 1; 16-32 beat 64-128 on ML-100K).
        epochs: maximum passes over the training ratings (default 25, ≥ 1; the validation RMSE
            bottoms out around epoch 20-25 with the other defaults).
        batch_size: ratings per Adam step (default 512, ≥ 1).
        learning_rate: Adam step size (default 2e-3, > 0).
        weight_decay: Adam weight decay on every parameter (default 1e-4, ≥ 0).
        reg: per-batch L2 penalty λ on the touched p, q and biases (default 0.05, ≥ 0).
        reg_implicit: per-batch L2 penalty on the implicit factors y of the batch's users
            (default 1.0, ≥ 0: the y's overfit within ~10 epochs at 0, and 0.5-2 work best).
        loss: "mse" (ratings), "bpr" or "bce" (ranking with sampled negatives). Default "mse".
        n_negatives: sampled unseen items per rating for bpr/bce (default 1, ≥ 1).
        patience: epochs without validation improvement before stopping, when `fit` gets `valid`
            (default 3; None: never stop early).
        grad_clip: maximum global gradient norm (default None: no clipping).
        fold_in_reg: ridge λ of `_score_history` for a new user's factors and bias (default 1.0).
        device: "auto" (cuda when available), "cpu", "cuda", "cuda:1"... (default "auto").
    """

    name: ClassVar[str] = "svdpp"
    predicts_ratings: ClassVar[bool] = True
    supports_fold_in: ClassVar[bool] = True
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(8, 128, log=True),
        "learning_rate": Float(3e-4, 1e-2, log=True),
        "weight_decay": Float(1e-6, 1e-3, log=True),
        "reg": Float(1e-3, 0.5, log=True),
        "reg_implicit": Float(1e-2, 5.0, log=True),
        "batch_size": Choice([256, 512, 1024, 2048]),
    }

    def __init__(self, *, embedding_size: int = 32, epochs: int = 25, batch_size: int = 512,
                 learning_rate: float = 2e-3, weight_decay: float = 1e-4, reg: float = 0.05,
                 reg_implicit: float = 1.0, loss: str = "mse", n_negatives: int = 1,
                 patience: int | None = 3, grad_clip: float | None = None,
                 fold_in_reg: float = 1.0, device: str = "auto") -> None:
        # MF validates and stores the shared parameters (SVD++ has no dropout or sigmoid).
        super().__init__(embedding_size=embedding_size, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, weight_decay=weight_decay, reg=reg,
                         loss=loss, n_negatives=n_negatives, patience=patience,
                         grad_clip=grad_clip, fold_in_reg=fold_in_reg, device=device)
        check_param("reg_implicit", reg_implicit, is_number(reg_implicit) and reg_implicit >= 0,
                    "a number ≥ 0")
        self.reg_implicit = reg_implicit

    # --- TorchRecommender hooks (batches, scoring, clipping, item_vectors: as MF) --------------
    def build_module(self) -> SVDppModule:
        """A fresh `SVDppModule` for the fitted sizes, global mean and seen matrix."""
        # seen_ is restored before build_module on load, so N(u) needs no tensors of its own.
        return SVDppModule(self.n_users_, self.n_items_, self.embedding_size, self.global_mean_,
                           self.seen_)

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """The batch's loss (mse, bpr or bce) plus the `reg` and `reg_implicit` penalties."""
        assert isinstance(module, SVDppModule)
        u, i = batch["user"], batch["item"]
        z, b_u, y_sq = module.user_terms(u, penalty=self.reg_implicit > 0)
        p = module._lookup(module.user_factors, u)
        q, b_i = module.item_terms(i)
        penalty = (p.pow(2).sum(-1) + q.pow(2).sum(-1) + b_u**2 + b_i**2).mean()
        pos = module.offset + b_u + b_i + (z * q).sum(-1)
        if self.loss == "mse":
            fit = mse_loss(pos, batch["rating"])
        else:
            q_n, b_n = module.item_terms(batch["negative"])
            neg = module.offset + b_u[:, None] + b_n + (z[:, None, :] * q_n).sum(-1)
            fit = bpr_loss(pos, neg) if self.loss == "bpr" else bce_loss(pos, neg)
            penalty = penalty + (q_n.pow(2).sum(-1) + b_n**2).mean()
        loss = fit + self.reg * penalty
        if y_sq is not None:
            loss = loss + self.reg_implicit * y_sq
        return loss

    # --- fold-in -------------------------------------------------------------------------------
    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user given (item code, rating) pairs.

        N(u) is the set of known rated items, so the implicit sum s = |N(u)|^-½ Σ_j y_j is fixed;
        then (p, b) minimise Σ_j (r_j − μ − b_j − b − (p + s) · q_j)² + λ (‖p‖² + b²) in closed
        form (λ = `fold_in_reg`), and every item is scored μ + b + b_i + (p + s) · q_i. Unknown
        item codes (−1) are ignored.
        """
        self._check_fitted()
        codes = np.asarray(item_codes, dtype=np.int64)
        r = np.asarray(ratings, dtype=np.float64)
        keep = codes >= 0
        codes, r = codes[keep], r[keep]
        module = self.module_
        assert isinstance(module, SVDppModule)
        t = lambda x: x.detach().cpu().numpy().astype(np.float64)  # noqa: E731
        q_all = t(module.item_factors.weight)
        b_all = t(module.item_bias.weight).ravel()
        y_all = t(module.implicit_factors.weight)
        offset = float(module.offset)
        distinct = np.unique(codes)
        s = y_all[distinct].sum(0) / np.sqrt(max(len(distinct), 1))
        x = np.hstack([q_all[codes], np.ones((len(codes), 1))])
        y = r - offset - b_all[codes] - q_all[codes] @ s
        a = x.T @ x + self.fold_in_reg * np.eye(x.shape[1])
        w = np.linalg.solve(a, x.T @ y)
        return (offset + w[-1] + b_all + q_all @ (w[:-1] + s)).astype(np.float32)
