"""Biased matrix factorization trained with the shared Trainer (Koren, Bell & Volinsky 2009)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self, cast

import numpy as np
import torch
from torch import Tensor, nn

from movierec.data.dataset import Dataset
from movierec.errors import MissingExtraError, MovieRecError
from movierec.models.base import check_param, is_int, is_number
from movierec.models.baseline import clip_to_scale
from movierec.models.space import Float, Int, SearchSpace
from movierec.random import RNGLike
from movierec.ranking import DotVectors
from movierec.training import (
    LOSSES,
    NegativeSampler,
    Resume,
    TorchRecommender,
    bce_loss,
    bpr_loss,
    check_trainer_params,
    iterate_batches,
    mse_loss,
    scaled_logit,
)

__all__ = ["MF", "MFModule"]

#: How `MF` can be fitted: the shared torch Trainer, or numba's compiled BPR SGD.
BACKENDS = ("torch", "numba")


class MFModule(nn.Module):
    """r̂_ui = μ + b_u + b_i + p_u · q_i, optionally squashed to the rating range.

    With `scale=(lo, hi)` the output is lo + (hi − lo) · σ(z_ui) with z_ui = c + b_u + b_i +
    p_u · q_i and c = logit((μ − lo) / (hi − lo)), so an untrained model predicts μ. A code of −1
    (unknown user or item) contributes a zero factor and a zero bias.

    Args:
        n_users: number of user codes.
        n_items: number of item codes.
        embedding_size: factor dimension k.
        global_mean: μ, the mean training rating.
        dropout: dropout probability on the factors during training.
        scale: (lo, hi) for sigmoid output, or None for the plain linear model.
    """

    # Buffers (registered in __init__), declared for type checkers: nn.Module's __getattr__
    # would give them as Tensor | Module.
    offset: Tensor

    def __init__(self, n_users: int, n_items: int, embedding_size: int, global_mean: float,
                 dropout: float = 0.0, scale: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.user_factors = nn.Embedding(n_users, embedding_size)
        self.item_factors = nn.Embedding(n_items, embedding_size)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.dropout = nn.Dropout(dropout)
        self.scale = scale
        offset = global_mean if scale is None else scaled_logit(global_mean, scale)
        self.register_buffer("offset", torch.tensor(float(offset)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Factors ~ N(0, 0.01²) (small, so training starts near the bias model); biases 0."""
        nn.init.normal_(self.user_factors.weight, std=0.01)
        nn.init.normal_(self.item_factors.weight, std=0.01)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def _lookup(self, table: nn.Embedding, codes: Tensor) -> Tensor:
        known = (codes >= 0).unsqueeze(-1)
        return table(codes.clamp(min=0)) * known

    def user_terms(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """(p_u [.., k], b_u [..]) with zeros for unknown users."""
        return (self.dropout(self._lookup(self.user_factors, u)),
                self._lookup(self.user_bias, u).squeeze(-1))

    def item_terms(self, i: Tensor) -> tuple[Tensor, Tensor]:
        """(q_i [.., k], b_i [..]) with zeros for unknown items."""
        return (self.dropout(self._lookup(self.item_factors, i)),
                self._lookup(self.item_bias, i).squeeze(-1))

    def output(self, z: Tensor) -> Tensor:
        """Map z = offset + b_u + b_i + p·q to the prediction (identity or scaled sigmoid)."""
        if self.scale is None:
            return z
        lo, hi = self.scale
        return lo + (hi - lo) * torch.sigmoid(z)

    def forward(self, u: Tensor, i: Tensor) -> Tensor:
        """Predictions for code pairs (broadcast: u [b], i [b] or u [b, 1], i [b, n])."""
        p, b_u = self.user_terms(u)
        q, b_i = self.item_terms(i)
        return self.output(self.offset + b_u + b_i + (p * q).sum(-1))

    def block(self, u: Tensor, i: Tensor | None) -> Tensor:
        """Predictions [users, items] for every pair (all items when `i` is None)."""
        p, b_u = self.user_terms(u)
        if i is None:
            q, b_i = self.item_factors.weight, self.item_bias.weight.squeeze(-1)
        else:
            q, b_i = self.item_terms(i)
        return self.output(self.offset + b_u[:, None] + b_i[None, :] + p @ q.T)


class MF(TorchRecommender):
    """Biased matrix factorization: r̂_ui = μ + b_u + b_i + p_u · q_i.

    Koren et al., IEEE Computer 2009; trained by mini-batch Adam on the shared `Trainer`.

    With `loss="mse"` it fits the ratings; `sigmoid=True` squashes the output to the rating range,
    lo + (hi − lo) · σ(·). With `loss="bpr"` or `"bce"` it learns a ranking from implicit feedback
    against `n_negatives` sampled unseen items per rating (early stopping then uses NDCG@10); its
    `predict` still returns the model's output clipped to the rating scale, which is then only a
    score, not a rating estimate.

    The L2 penalty `reg` is applied per batch to the factors and biases that the batch touches
    (the classic SGD regularizer, λ · mean(‖p_u‖² + ‖q_i‖² + b_u² + b_i²)); `weight_decay` is
    Adam's decay of every parameter at every step. Defaults were tuned on a 10% validation
    carve-out of ML-100K u1.base (see benchmarks/mf_ml100k.py), never on u1.test.

    Fold-in: a new user's (p, b) are solved in closed form by ridge regression against the fixed
    item factors (`_score_history`).

    Trainer parameters (`movierec.training.TrainerParams`; defaults in the signature): a batch is
    ratings; with the other defaults the validation RMSE plateaus from about epoch 20 of
    25; `sparse_updates` makes a step ~25x faster than dense Adam at 160k users x 60k items.

    Args:
        embedding_size: factor dimension k (default 64, ≥ 1).
        reg: per-batch L2 penalty λ on the touched factors and biases (default 0.05, ≥ 0).
        dropout: dropout probability on the factors during training (default 0.0, in [0, 1)).
        sigmoid: squash predictions to the rating range with a scaled sigmoid (default False).
        loss: "mse" (ratings), "bpr" or "bce" (ranking with sampled negatives). Default "mse".
        n_negatives: sampled unseen items per rating for bpr/bce (default 1, ≥ 1).
        fold_in_reg: ridge λ of `_score_history` for a new user's factors and bias (default 1.0).
        backend: "torch" (the shared Trainer, default) or "numba": with loss="bpr" only,
            `implicit`-style per-sample SGD in a compiled loop (`movierec.models._bpr_numba`):
            each epoch draws as many (user, item, popularity-sampled negative) triples as there
            are ratings. It reads `embedding_size`, `epochs`, `learning_rate` (the SGD step,
            not Adam's: implicit's 0.01 is a good start), `reg` (per-sample L2 on p_u, q_i,
            q_j, b_i, b_j), `patience` (with validation data) and `threads`; it needs
            `dropout=0` and `n_negatives=1` and ignores the other trainer parameters.
        threads: threads of the numba backend (default None: $MOVIEREC_THREADS, else 1; ≥ 1).
            Several threads update the factors Hogwild!-style, without locks, as implicit does:
            exact repeats need one thread. The torch backend ignores it (torch's own thread
            count applies).
    """

    name: ClassVar[str] = "mf"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(8, 256, log=True),
        "learning_rate": Float(1e-4, 3e-2, log=True),
        "weight_decay": Float(1e-7, 1e-2, log=True),
        "reg": Float(1e-3, 1.0, log=True),
        "dropout": Float(0.0, 0.5),
    }
    predicts_ratings: ClassVar[bool] = True
    supports_fold_in: ClassVar[bool] = True

    def __init__(self, *, embedding_size: int = 64, epochs: int = 25, batch_size: int = 1024,
                 learning_rate: float = 2e-3, weight_decay: float = 1e-4, reg: float = 0.05,
                 dropout: float = 0.0, sigmoid: bool = False, loss: str = "mse",
                 n_negatives: int = 1, patience: int | None = 3, grad_clip: float | None = None,
                 fold_in_reg: float = 1.0, sparse_updates: bool = False,
                 device: str = "auto", backend: str = "torch",
                 threads: int | None = None) -> None:
        check_param("embedding_size", embedding_size, is_int(embedding_size, 1), "an integer ≥ 1")
        check_trainer_params(locals())
        check_param("reg", reg, is_number(reg) and reg >= 0, "a number ≥ 0")
        check_param("dropout", dropout, is_number(dropout) and 0 <= dropout < 1,
                    "a number in [0, 1)")
        check_param("sigmoid", sigmoid, isinstance(sigmoid, bool), "a bool")
        check_param("loss", loss, loss in LOSSES, f"one of {list(LOSSES)}")
        check_param("n_negatives", n_negatives, is_int(n_negatives, 1), "an integer ≥ 1")
        check_param("fold_in_reg", fold_in_reg, is_number(fold_in_reg) and fold_in_reg > 0,
                    "a number > 0")
        check_param("backend", backend, backend in BACKENDS, f"one of {list(BACKENDS)}")
        check_param("backend", backend, backend == "torch" or (
            loss == "bpr" and dropout == 0 and n_negatives == 1),
                    '"torch" unless loss="bpr", dropout=0 and n_negatives=1')
        check_param("threads", threads, threads is None or is_int(threads, 1),
                    "an integer ≥ 1 or None")
        self.embedding_size = embedding_size
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.reg = reg
        self.dropout = dropout
        self.sigmoid = sigmoid
        self.loss = loss
        self.n_negatives = n_negatives
        self.patience = patience
        self.grad_clip = grad_clip
        self.fold_in_reg = fold_in_reg
        self.sparse_updates = sparse_updates
        self.device = device
        self.backend = backend
        self.threads = threads

    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: RNGLike = None,
            progress: bool = True, checkpoint_dir: str | Path | None = None,
            resume: Resume = False, on_epoch: Callable[[dict[str, Any]], None] | None = None
            ) -> Self:
        """Train with the shared Trainer, or with the compiled BPR loop (`backend="numba"`).

        See `TorchRecommender.fit` for the arguments; the numba backend writes no checkpoints.

        Raises:
            MovieRecError: `checkpoint_dir` or `resume` with `backend="numba"`.
            MissingExtraError: `backend="numba"` without numba installed.
        """
        if self.backend == "torch":
            return super().fit(train, valid, rng=rng, progress=progress,
                               checkpoint_dir=checkpoint_dir, resume=resume, on_epoch=on_epoch)
        if checkpoint_dir is not None or resume:
            raise MovieRecError("checkpoint_dir and resume need MF(backend='torch'), "
                                "got backend='numba'")
        try:
            from movierec.models._bpr_numba import fit_bpr
        except ImportError as exc:
            raise MissingExtraError("MF(backend='numba') needs numba: "
                                    "pip install 'movierec[numba]'") from exc

        fit_bpr(self, train, valid, rng=rng, progress=progress, on_epoch=on_epoch)
        return self

    # --- TorchRecommender hooks ----------------------------------------------------------------
    def _prepare(self, train: Dataset) -> None:
        super()._prepare(train)
        if self.loss != "mse":
            self._sampler = NegativeSampler(self.seen_)

    def build_module(self) -> nn.Module:
        """A fresh `MFModule` for the fitted sizes and mean (a scaled output with `sigmoid`)."""
        lo, hi = self.rating_scale_
        scale = (lo, hi) if self.sigmoid and hi > lo else None
        return MFModule(self.n_users_, self.n_items_, self.embedding_size, self.global_mean_,
                        self.dropout, scale)

    def batches(self, data: dict[str, Tensor], generator: torch.Generator):  # noqa: ANN201
        """Rating batches, with `n_negatives` sampled unseen items per rating for bpr/bce."""
        for batch in iterate_batches(data, self.batch_size, generator):
            if self.loss != "mse":
                batch["negative"] = self._sampler(batch["user"], self.n_negatives, generator)
            yield batch

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """The batch's loss (mse, bpr or bce) plus `reg` times the touched rows' L2 penalty."""
        assert isinstance(module, MFModule)
        u, i = batch["user"], batch["item"]
        p, b_u = module.user_terms(u)
        q, b_i = module.item_terms(i)
        penalty = (p.pow(2).sum(-1) + q.pow(2).sum(-1) + b_u**2 + b_i**2).mean()
        pos = module.output(module.offset + b_u + b_i + (p * q).sum(-1))
        if self.loss == "mse":
            fit = mse_loss(pos, batch["rating"])
        else:
            neg_i = batch["negative"]
            q_n, b_n = module.item_terms(neg_i)
            neg = module.offset + b_u[:, None] + b_n + (p[:, None, :] * q_n).sum(-1)
            pos_z = module.offset + b_u + b_i + (p * q).sum(-1)
            fit = bpr_loss(pos_z, neg) if self.loss == "bpr" else bce_loss(pos_z, neg)
            penalty = penalty + (q_n.pow(2).sum(-1) + b_n**2).mean()
        return fit + self.reg * penalty

    def score_block(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor | None
                    ) -> Tensor:
        """Scores [users, items] from the module's `block`."""
        # An MFModule, or a subclass's module with the same interface (SVD++'s).
        return cast(MFModule, module).block(user_codes, item_codes)

    def predict_pairs(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor) -> Tensor:
        """The module's predictions for code pairs."""
        return module(user_codes, item_codes)

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        pred = super()._predict(user_codes, item_codes)
        return clip_to_scale(pred, self.rating_scale_).astype(np.float32)

    def item_vectors(self) -> np.ndarray:
        """Item factors q_i [n_items, embedding_size]: similar movies are compared in this space."""
        self._check_fitted()
        module = cast(MFModule, self.module_)  # or a subclass's module, as in score_block
        return module.item_factors.weight.detach().cpu().numpy()

    # --- fold-in -------------------------------------------------------------------------------
    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user given (item code, rating) pairs.

        Solves min over (p, b) of Σ_j (r_j − μ − b_j − b − p · q_j)² + λ (‖p‖² + b²) in closed
        form with the item factors fixed (λ = `fold_in_reg`), then scores every item as
        μ + b + b_i + p · q_i (through the sigmoid when `sigmoid=True`, whose residuals are then
        taken on the logit scale). Unknown item codes (−1) are ignored.
        """
        self._check_fitted()
        codes = np.asarray(item_codes, dtype=np.int64)
        r = np.asarray(ratings, dtype=np.float64)
        keep = codes >= 0
        codes, r = codes[keep], r[keep]
        module = self.module_
        assert isinstance(module, MFModule)
        q_all = module.item_factors.weight.detach().cpu().numpy().astype(np.float64)
        b_all = module.item_bias.weight.detach().cpu().numpy().astype(np.float64).ravel()
        offset = float(module.offset)
        if module.scale is not None:
            r = np.asarray(scaled_logit(r, module.scale))
        x = np.hstack([q_all[codes], np.ones((len(codes), 1))])
        y = r - offset - b_all[codes]
        a = x.T @ x + self.fold_in_reg * np.eye(x.shape[1])
        w = np.linalg.solve(a, x.T @ y)
        z = offset + w[-1] + b_all + q_all @ w[:-1]
        if module.scale is not None:
            lo, hi = module.scale
            z = lo + (hi - lo) / (1 + np.exp(-z))
        return z.astype(np.float32)


    # --- dot-product vectors (movierec.ann) -----------------------------------------------------
    def dot_vectors(self) -> DotVectors:
        """The scores as output(μ + b_u + b_i + p_u · q_i) (`movierec.ranking.DotVectors`).

        Lets `movierec.ann.ANNIndex` index this model; SVD++'s module puts its implicit sum into
        p_u. The output is the module's own (the identity, or the scaled sigmoid).
        """
        self._check_fitted()
        with self._eval() as evaluated:
            module = cast(MFModule, evaluated)  # or a subclass's module, as in score_block
            device = self.device_
            terms = module.user_terms(torch.arange(self.n_users, device=device))
            items, b_i = module.item_terms(torch.arange(self.n_items, device=device))
            p, b_u = terms[0], terms[1]
            output = None
            if getattr(module, "scale", None) is not None:
                def output(z: np.ndarray) -> np.ndarray:
                    with torch.no_grad():
                        x = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
                        return module.output(x.to(device)).cpu().numpy()
            return DotVectors(users=p.float().cpu().numpy(), items=items.float().cpu().numpy(),
                              user_offset=(b_u.float().cpu().numpy()
                                           + np.float32(float(module.offset))),
                              item_bias=b_i.float().cpu().numpy(), output=output)
