"""Item-based AutoRec: an autoencoder over each item's column of ratings (Sedhain et al. 2015)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from movierec.data.dataset import Dataset
from movierec.models.base import check_param, is_int, is_number
from movierec.models.baseline import clip_to_scale
from movierec.models.space import Float, Int, SearchSpace
from movierec.training import TorchRecommender, check_trainer_params

__all__ = ["AutoRec", "AutoRecModule", "ItemRatings", "dense_rows", "masked_mse"]


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean of (pred − target)² over the entries where `mask` is true (0 when there are none)."""
    mask = mask.to(pred.dtype)
    return (mask * (pred - target) ** 2).sum() / mask.sum().clamp(min=1.0)


def dense_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[Tensor, Tensor]:
    """Rows of a CSR matrix as dense float32 values and a bool mask of the stored entries.

    The mask follows the sparsity structure, not the values, so a stored rating of 0 counts as
    observed.
    """
    sub = matrix[np.asarray(rows, dtype=np.int64)]
    r = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    values = np.zeros(sub.shape, dtype=np.float32)
    mask = np.zeros(sub.shape, dtype=bool)
    values[r, sub.indices] = sub.data
    mask[r, sub.indices] = True
    return torch.from_numpy(values), torch.from_numpy(mask)


class AutoRecModule(nn.Module):
    """h(r) = f(W · g(V r + μ) + b) with g the sigmoid and f the identity.

    The input r ∈ ℝ^n_users is one item's ratings, 0 where unobserved; the output is that item's
    reconstructed rating for every user.

    Args:
        n_users: input and output size (one unit per training user).
        hidden_size: code size k.
        global_mean: initial decoder bias b, so that an untrained model predicts the mean rating.
        dropout: dropout probability on the code g(V r + μ) during training.
    """

    def __init__(self, n_users: int, hidden_size: int, global_mean: float,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = nn.Linear(n_users, hidden_size)  # V, μ
        self.decoder = nn.Linear(hidden_size, n_users)  # W, b
        self.dropout = nn.Dropout(dropout)
        self.global_mean = global_mean
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """V, W ~ U(±1/√fan_in) (torch's default); μ = 0; b = the global mean rating."""
        self.encoder.reset_parameters()
        self.decoder.reset_parameters()
        nn.init.zeros_(self.encoder.bias)
        nn.init.constant_(self.decoder.bias, self.global_mean)

    def encode(self, ratings: Tensor) -> Tensor:
        """Codes g(V r + μ) [b, k] of dense item rows [b, n_users]."""
        return torch.sigmoid(self.encoder(ratings))

    def encode_sparse(self, ratings: Tensor) -> Tensor:
        """Codes [n, k] of a sparse (COO) item × user tensor (cost: stored entries × k)."""
        return torch.sigmoid(torch.sparse.mm(ratings, self.encoder.weight.T) + self.encoder.bias)

    def decode(self, codes: Tensor, users: Tensor | None = None) -> Tensor:
        """Outputs W_u · h + b_u [b, users] for the given user codes (all users when None)."""
        if users is None:
            return self.decoder(codes)
        return codes @ self.decoder.weight[users].T + self.decoder.bias[users]

    def forward(self, ratings: Tensor) -> Tensor:
        """Reconstructions [b, n_users] of dense item rows [b, n_users]."""
        return self.decoder(self.dropout(self.encode(ratings)))

    def penalty(self) -> Tensor:
        """‖W‖² + ‖V‖² (Frobenius; biases are not penalized, as in the paper)."""
        return self.encoder.weight.pow(2).sum() + self.decoder.weight.pow(2).sum()


class ItemRatings:
    """Shared by the item autoencoders (`AutoRec`, `GLocalK`; put it before `TorchRecommender`).

    `_prepare_item_ratings` keeps the item x user rating matrix (`item_ratings_`, CSR) and the
    user and item mean ratings; `_predict` answers pairs with an unknown user (item) by the item's
    (user's) mean, both unknown by the global mean, and the rest by the model, clipped to the scale.
    """

    global_mean_: float
    rating_scale_: tuple[float, float]

    def _prepare_item_ratings(self, train: Dataset) -> None:
        r = train.matrix("rating")
        self.item_ratings_ = sp.csr_matrix(r.T, dtype=np.float32)
        self.item_ratings_.sort_indices()
        self.n_ratings_ = int(r.nnz)
        sums = np.asarray(r.sum(axis=1)).ravel(), np.asarray(r.sum(axis=0)).ravel()
        counts = np.diff(r.indptr), np.diff(self.item_ratings_.indptr)
        self.user_mean_ = np.where(counts[0] > 0, sums[0] / np.maximum(counts[0], 1),
                                   self.global_mean_).astype(np.float32)
        self.item_mean_ = np.where(counts[1] > 0, sums[1] / np.maximum(counts[1], 1),
                                   self.global_mean_).astype(np.float32)

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        u = np.asarray(user_codes, dtype=np.int64)
        i = np.asarray(item_codes, dtype=np.int64)
        out = np.full(len(u), self.global_mean_, dtype=np.float32)
        only_user, only_item = (u >= 0) & (i < 0), (u < 0) & (i >= 0)
        out[only_user] = self.user_mean_[u[only_user]]
        out[only_item] = self.item_mean_[i[only_item]]
        both = (u >= 0) & (i >= 0)
        if both.any():
            out[both] = super()._predict(u[both], i[both])  # type: ignore[misc]
        return clip_to_scale(out, self.rating_scale_).astype(np.float32)


class AutoRec(ItemRatings, TorchRecommender):
    """I-AutoRec (Sedhain, Menon, Sanner & Xie, WWW 2015): an item-based rating autoencoder.

    Each item's vector of ratings by all users is encoded and reconstructed, r̂_ui = (W · g(V r_i +
    μ) + b)_u, g = sigmoid.

    Training minimizes the paper's objective Σ_observed (r_ui − r̂_ui)² + λ/2 (‖W‖² + ‖V‖²)
    divided by the number N of training ratings, so that the loss reads as an MSE and `reg` keeps
    the paper's units: per batch of items, the masked MSE over its observed entries plus
    λ/(2N) (‖W‖² + ‖V‖²). Unobserved entries are 0 in the input and ignored by the loss. Batches
    are item rows of the item × user matrix, densified a batch at a time.

    Scoring never materializes the n_items × n_users reconstruction: the item codes
    H = g(R V^T + μ) [n_items, k] are one sparse product (cost: training ratings × k, recomputed
    per scoring call, memory n_items × k), then a block of users is W[users] H^T + b[users].
    `predict` clips to the rating scale; `score` does not (so that ranking has no ties at the top).

    Fallbacks of `predict`: a known user with an unknown item gets the user's mean training
    rating, an unknown user with a known item the item's mean, and both unknown the global mean.

    Fold-in (`_score_history`): a new user is a new column. Its input weights (a column of V) are
    unknown, which is the same as leaving its ratings out of the input, so the item codes H stay
    as trained; its decoder row (w, b) solves the training objective restricted to that row,
    Σ_j (r_j − w · h_j − b)² + λ/2 ‖w − w̄‖², with the penalty re-centred on the training users'
    mean row w̄ (b unpenalized): a ridge regression in closed form. Re-centring makes a user with
    one rating (or none) start from the average user's scores instead of a constant.

    Defaults were chosen on a 10% validation carve-out of ML-100K u1.base (see
    benchmarks/autorec_ml100k.py), never on u1.test.

    Trainer parameters (`movierec.training.TrainerParams`; defaults in the signature): a batch is
    items (rows of R); with the other defaults the validation RMSE is lowest around epoch
    45-60 of 60, then creeps up (0.8975 after 200).

    Args:
        hidden_size: code size k (default 250, ≥ 1; the paper uses 500, which scores 0.8895
            validation RMSE against 0.888 for 250 on the carve-out below, at twice the cost).
        reg: λ of the L2 penalty λ/2 (‖W‖² + ‖V‖²) on the paper's summed-error scale
            (default 150, ≥ 0).
        dropout: dropout probability on the code during training (default 0.0, in [0, 1); not in
            the paper).
    """

    name: ClassVar[str] = "autorec"
    predicts_ratings: ClassVar[bool] = True
    supports_fold_in: ClassVar[bool] = True
    search_space: ClassVar[SearchSpace] = {
        "hidden_size": Int(50, 1000, log=True),
        "learning_rate": Float(1e-4, 3e-3, log=True),
        "reg": Float(1.0, 1e3, log=True),
        "batch_size": Int(16, 512, log=True),
        "dropout": Float(0.0, 0.5),
        "epochs": Int(50, 400, log=True),
    }

    def __init__(self, *, hidden_size: int = 250, epochs: int = 60, batch_size: int = 64,
                 learning_rate: float = 3e-4, reg: float = 150.0, dropout: float = 0.0,
                 patience: int | None = 10, grad_clip: float | None = None,
                 device: str = "auto") -> None:
        check_param("hidden_size", hidden_size, is_int(hidden_size, 1), "an integer ≥ 1")
        check_trainer_params(locals())
        check_param("reg", reg, is_number(reg) and reg >= 0, "a number ≥ 0")
        check_param("dropout", dropout, is_number(dropout) and 0 <= dropout < 1,
                    "a number in [0, 1)")
        self.hidden_size = hidden_size
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.reg = reg
        self.dropout = dropout
        self.patience = patience
        self.grad_clip = grad_clip
        self.device = device

    # --- TorchRecommender hooks ----------------------------------------------------------------
    def _prepare(self, train: Dataset) -> None:
        super()._prepare(train)
        # Codes of an earlier fit's weights and ratings: (key, H).
        self._hidden_cache: tuple[tuple[Any, ...], Tensor] | None = None
        self._prepare_item_ratings(train)

    def build_module(self) -> AutoRecModule:
        """A fresh `AutoRecModule` for the fitted sizes and global mean."""
        return AutoRecModule(self.n_users_, self.hidden_size, self.global_mean_, self.dropout)

    def training_data(self, train: Dataset) -> dict[str, Tensor]:
        """Item codes only: `batches` densifies the matching rows of `item_ratings_`."""
        return {"item": torch.arange(self.n_items_, dtype=torch.int64)}

    def batches(self, data: dict[str, Tensor], generator: torch.Generator
                ) -> Iterator[dict[str, Tensor]]:
        """Shuffled batches of item rows, densified: item codes, ratings and their mask."""
        order = data["item"][torch.randperm(len(data["item"]), generator=generator)]
        for start in range(0, len(order), self.batch_size):
            items = order[start:start + self.batch_size]
            ratings, mask = dense_rows(self.item_ratings_, items.numpy())
            yield {"item": items, "rating": ratings, "mask": mask}

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """Masked MSE of the batch's reconstruction plus λ/(2N) (‖W‖² + ‖V‖²)."""
        assert isinstance(module, AutoRecModule)
        fit = masked_mse(module(batch["rating"]), batch["rating"], batch["mask"])
        return fit + self.reg / (2 * self.n_ratings_) * module.penalty()

    def hidden_codes(self, module: AutoRecModule) -> Tensor:
        """H = g(R V^T + μ) [n_items, k] on the module's device, from the training ratings.

        Computed once per set of encoder weights: scoring (every user block of `recommend`,
        every fold-in request of the service) reuses it until an optimizer step or a weight load
        changes the encoder (tensor version counters), and it is never cached while gradients
        are recorded or the module is in training mode (dropout).
        """
        enc = module.encoder
        key = (id(module), enc.weight._version, enc.bias._version, enc.weight.device)
        cacheable = not (module.training or torch.is_grad_enabled())
        cached = getattr(self, "_hidden_cache", None)
        if cacheable and cached is not None and cached[0] == key:
            return cached[1]
        h = self._encode_training_ratings(module)
        if cacheable:
            self._hidden_cache = (key, h)
        return h

    def _encode_training_ratings(self, module: AutoRecModule) -> Tensor:
        m = self.item_ratings_.tocoo()
        weight = module.encoder.weight
        index = torch.from_numpy(np.vstack([m.row, m.col]).astype(np.int64))
        r = torch.sparse_coo_tensor(index, torch.from_numpy(m.data), size=m.shape,
                                    dtype=weight.dtype, device=weight.device,
                                    check_invariants=False, is_coalesced=True)
        return module.encode_sparse(r)

    def score_block(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor | None
                    ) -> Tensor:
        """Scores [users, items]: the users' decoder rows applied to the item codes H."""
        assert isinstance(module, AutoRecModule)
        h = self.hidden_codes(module)
        if item_codes is not None:
            h = h[item_codes]
        return module.decode(h, user_codes).T

    def predict_pairs(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor) -> Tensor:
        """Ratings of known (user, item) pairs; `_predict` handles unknown codes."""
        assert isinstance(module, AutoRecModule)
        h = self.hidden_codes(module)[item_codes]
        w = module.decoder.weight[user_codes]
        return (h * w).sum(-1) + module.decoder.bias[user_codes]

    def item_vectors(self) -> np.ndarray:
        """Item codes H [n_items, hidden_size]: similar movies are compared in this space."""
        with self._eval() as module:
            assert isinstance(module, AutoRecModule)
            return self.hidden_codes(module).float().cpu().numpy()

    # --- fold-in -------------------------------------------------------------------------------
    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user given (item code, rating) pairs.

        Solves min over (w, b) of Σ_j (r_j − w · h_j − b)² + λ/2 ‖w − w̄‖² (λ = `reg`, w̄ the mean
        decoder row of the training users, b unpenalized) by least squares, then scores every
        item as w · h_i + b. Unknown item codes (−1) are ignored; with no known item the scores
        are the average training user's, w̄ · h_i + b̄.
        """
        codes = np.asarray(item_codes, dtype=np.int64)
        r = np.asarray(ratings, dtype=np.float64)
        keep = codes >= 0
        codes, r = codes[keep], r[keep]
        h = self.item_vectors().astype(np.float64)
        module = self.module_
        assert isinstance(module, AutoRecModule)
        decoder = module.decoder
        w_bar = decoder.weight.detach().cpu().numpy().astype(np.float64).mean(axis=0)
        b_bar = float(decoder.bias.detach().cpu().double().mean())
        prior = h @ w_bar + b_bar
        if len(codes) == 0:
            return prior.astype(np.float32)
        # Unknowns: the offsets (w − w̄, b − b̄), fitted to the residuals of the average user.
        k = h.shape[1]
        x = np.hstack([h[codes], np.ones((len(codes), 1))])
        ridge = np.hstack([np.sqrt(self.reg / 2) * np.eye(k), np.zeros((k, 1))])
        delta, *_ = np.linalg.lstsq(np.vstack([x, ridge]),
                                    np.concatenate([r - prior[codes], np.zeros(k)]), rcond=None)
        return (prior + h @ delta[:-1] + delta[-1]).astype(np.float32)
