"""GLocal-K: an item autoencoder with local kernels, fine-tuned through a global kernel.

Han, Tamaskar, Ren, Liu & Poon, "GLocal-K: Global and Local Kernels for Recommender Systems"
(CIKM 2021); reference code: github.com/usydnlp/Glocal_K (TensorFlow 1, one notebook).

**Local kernel.** The model is an I-AutoRec-style autoencoder over the item × user rating matrix
R (each row an item's ratings by every user, 0 where unobserved): `n_layers` sigmoid layers of
`hidden_size` units and an identity output layer back to n_users. Every weight matrix W
[n_in, n_out] is used as W ⊙ K, with K the compactly supported RBF kernel of learned vectors
u_i ∈ ℝ^d (one per input unit) and v_j ∈ ℝ^d (one per output unit), d = `kernel_dim`:

    K_ij = max(0, 1 − ‖u_i − v_j‖²),        layer(x) = g(x (W ⊙ K) + b)

so a weight whose u_i and v_j drift apart (‖u_i − v_j‖ ≥ 1) is switched off: the kernel learns
a sparse connectivity.

**Global kernel.** After pre-training, the autoencoder's reconstruction R̂ = AE(R) is averaged
over users (one value per item, the reference's "item-based average pooling"), and this vector
weighs a bank of n_items learned k × k kernels (k = `global_kernel_size`) into one k × k global
kernel G = dot_scale · mean_u(R̂) · C, with C [n_items, k²]. G convolves the rating matrix (a
one-channel image, zero "same" padding) and the result, passed through a ReLU, is the input of
the same autoencoder again:

    R̂_final = AE(ReLU(R ∗ G)),   G = dot_scale · reshape(mean_u(AE(R)) · C, [k, k])

Predictions are R̂_final clipped to the rating scale; ranking scores are R̂_final unclipped.

**Training** minimizes the reference's objective, a sum over the whole matrix (not a mean):

    ½ Σ_observed (r − r̂)² + Σ_layers (λ₂/2 ‖W‖² + λ_s/2 ‖K‖²),   λ₂ = `reg`, λ_s = `reg_kernel`

with scipy's L-BFGS-B (history 10), restarted every epoch for a fixed number of iterations, as
the reference's `ScipyOptimizerInterface(maxiter=iter_p)` called once per epoch: first
`pretrain_epochs` × `pretrain_iterations` on AE(R) (the layers only), then `epochs` ×
`iterations` on AE(ReLU(R ∗ G)) over every parameter, the layers (also through the AE(R) that
G is pooled from) and C. Float32 tensors, float64 optimizer state, as in the reference.

This is a `TorchRecommender` trained by the shared `Trainer` in two full-batch stages
(`training_stages`): each epoch is one `optimizer.step(closure)` of the `LBFGS` optimizer (scipy's
L-BFGS-B restarted), over the whole matrix as one batch. So it gets the Trainer's per-epoch
checkpoints and resume (L-BFGS keeps no state between epochs); under torchrun every process
computes the same full batch (no speed-up). `history_` has the Trainer's record layout (epoch,
train_loss, valid_metric, metric, seconds) plus `stage` ("pretrain" / "finetune") and
`train_rmse`; `on_epoch` is honoured (`movierec tune` prunes with it). With `valid`, the
validation RMSE is measured after every epoch and the best epoch over both stages is kept
(`patience` can stop the fine-tuning stage early); when no fine-tuning epoch beats the
pre-trained autoencoder (ml-latest-small: 0.8588 pre-trained, 0.8697 at best fine-tuned), the
model stays the local-kernel autoencoder (`finetuned_` False). Without `valid`, the last epoch.

Cost: everything is dense. Each L-BFGS function evaluation is a forward and backward pass over
the n_items × n_users matrix (two autoencoder passes when fine-tuning), and L-BFGS makes 6-8 of
them per epoch: the default fit on ML-100K u1.base takes about 3 CPU minutes on one core. One
fine-tuning evaluation adds about 130 MB to the process's peak memory on ML-100K and 1 GB on an
ML-1M-size matrix (3,706 × 6,040); ML-20M-size data does not fit. The reconstruction is
computed once per set of weights and reused by every scoring call.

Where this differs from the reference code, and why:

- Ids: the matrix holds the training users and items only (codes sorted by id, as the
  reference's id order), where the reference sizes it by every id in train and test (items only
  in the test part are all-zero rows). So the rows adjacent in the global convolution differ
  where an item has no training rating, and such items get the fallback below instead of the
  output of an all-zero input row.
- Fallbacks (as `autorec`): a known user with an unknown item gets the user's mean training
  rating, an unknown user with a known item the item's mean, both unknown the global mean.
- Model selection: the reference reports the best *test* RMSE over the fine-tuning epochs; here
  the kept epoch is chosen on `valid` (or is the last one), never on test data.
- The kernel is computed as max(0, 1 − (‖u_i‖² + ‖v_j‖² − 2 u_i · v_j)) rather than from the
  square of `tf.norm(u − v)`: the same function (up to float rounding), without the norm's
  undefined gradient at 0 and without an n_in × n_out × d tensor.
- The global convolution is a sum of k² shifted copies of the zero-padded matrix (the same
  cross-correlation as `tf.nn.conv2d` with "SAME" padding), which is faster on a CPU.
- The observed-entry mask follows the sparsity structure (a stored rating is observed) rather
  than `rating > 1e-12`: the same for MovieLens, whose ratings are ≥ 0.5.
- Initialization draws the reference's distributions (TF1 defaults: Glorot-uniform W, and b
  U(±√(3/n)), Glorot-uniform for a 1-D shape; truncated normal u, v with σ = 10⁻³ and C with
  σ = 0.1, cut at 2σ) from torch's generator, so the numbers differ from TensorFlow's.
- `epochs=0` (no fine-tuning) is allowed and gives the local-kernel autoencoder alone, the
  paper's ablation without the global kernel.

Fold-in is not supported: a new user is a new input and output unit of every layer and a new
column of the convolved image, with no trained weights.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from movierec.data.dataset import Dataset
from movierec.models.autorec import ItemRatings
from movierec.models.base import check_param, is_int, is_number
from movierec.models.baseline import clip_to_scale
from movierec.models.space import Float, Int, SearchSpace
from movierec.training import Stage, TorchRecommender, check_trainer_params

__all__ = [
    "LBFGS",
    "GLocalK",
    "GLocalKModule",
    "LocalKernelLayer",
    "global_conv",
    "lbfgs",
    "local_kernel",
    "masked_sse",
]

logger = logging.getLogger(__name__)

#: L-BFGS-B history size (scipy's `maxcor`), the reference's value.
LBFGS_HISTORY = 10


def local_kernel(u: Tensor, v: Tensor) -> Tensor:
    """K [n_in, n_out] with K_ij = max(0, 1 − ‖u_i − v_j‖²) for u [n_in, d] and v [n_out, d].

    ‖u_i − v_j‖² is computed as ‖u_i‖² + ‖v_j‖² − 2 u_i · v_j: one small matrix product instead
    of an [n_in, n_out, d] tensor of differences (5x the memory and time for d = 5).
    """
    dist2 = u.pow(2).sum(1)[:, None] + v.pow(2).sum(1)[None, :] - 2.0 * (u @ v.T)
    return torch.clamp(1.0 - dist2, min=0.0)


def masked_sse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """½ Σ (pred − target)² over the entries where `mask` is true (TF's `l2_loss` of them)."""
    return 0.5 * (mask.to(pred.dtype) * (pred - target)).pow(2).sum()


def global_conv(ratings: Tensor, kernel: Tensor) -> Tensor:
    """ReLU(ratings ∗ kernel): a [rows, cols] matrix convolved as a one-channel image.

    Cross-correlation with zero "same" padding (the output has the input's shape; for an even k
    the extra row and column of padding go after, as in `tf.nn.conv2d(..., padding="SAME")`);
    `kernel` is [k, k]. Written as the sum of k² shifted copies of the padded matrix, each
    scaled by one kernel entry: on one CPU core that is 5x faster, forward and backward, than
    `F.conv2d`'s single-channel convolution.
    """
    k = kernel.shape[0]
    before = (k - 1) // 2
    padded = F.pad(ratings, (before, k - 1 - before, before, k - 1 - before))
    n_rows, n_cols = ratings.shape
    out = torch.zeros_like(ratings)
    for a in range(k):
        for b in range(kernel.shape[1]):
            out = out + kernel[a, b] * padded[a:a + n_rows, b:b + n_cols]
    return torch.relu(out)


class LocalKernelLayer(nn.Module):
    """y = g(x (W ⊙ K(u, v)) + b): a dense layer whose weights are gated by a local kernel.

    Args:
        n_in: input size.
        n_out: output size.
        kernel_dim: dimension d of the kernel vectors u_i, v_j.
        activation: apply the sigmoid (hidden layers) or not (the output layer).
    """

    def __init__(self, n_in: int, n_out: int, kernel_dim: int, activation: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.u = nn.Parameter(torch.empty(n_in, kernel_dim))
        self.v = nn.Parameter(torch.empty(n_out, kernel_dim))
        self.bias = nn.Parameter(torch.empty(n_out))
        self.activation = activation
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """TF1's defaults, as the reference: Glorot-uniform W and b, truncated-normal u and v.

        b ~ U(±√(3/n_out)), and u, v ~ N(0, 10⁻⁶) truncated at 2σ (so that every kernel value starts
        near 1).
        """
        n_in, n_out = self.weight.shape
        limit = math.sqrt(6.0 / (n_in + n_out))
        nn.init.uniform_(self.weight, -limit, limit)
        limit_b = math.sqrt(3.0 / n_out)
        nn.init.uniform_(self.bias, -limit_b, limit_b)
        for p in (self.u, self.v):
            nn.init.trunc_normal_(p, mean=0.0, std=1e-3, a=-2e-3, b=2e-3)

    def kernel(self) -> Tensor:
        """K [n_in, n_out] of the current u, v."""
        return local_kernel(self.u, self.v)

    def effective_weight(self) -> Tensor:
        """W ⊙ K [n_in, n_out]: the weights the layer applies."""
        return self.weight * self.kernel()

    def forward(self, x: Tensor, weight: Tensor | None = None) -> Tensor:
        """g(x (W ⊙ K) + b).

        `weight` is W ⊙ K when already computed (it is the same in both autoencoder passes of
        fine-tuning).
        """
        w = self.effective_weight() if weight is None else weight
        y = x @ w + self.bias
        return torch.sigmoid(y) if self.activation else y

    def penalty(self, reg: float, reg_kernel: float) -> Tensor:
        """λ₂/2 ‖W‖² + λ_s/2 ‖K‖² (TF's l2_regularizer(λ) is λ · ½ Σ x²)."""
        return reg / 2 * self.weight.pow(2).sum() + reg_kernel / 2 * self.kernel().pow(2).sum()


class GLocalKModule(nn.Module):
    """The local-kernel autoencoder and the global kernel bank C.

    Args:
        n_users: the autoencoder's input and output size (one unit per training user).
        n_items: rows of the rating matrix (one pooled value, one row of C per item).
        hidden_size: units per hidden layer.
        n_layers: hidden (sigmoid) layers before the identity output layer.
        kernel_dim: dimension of the local kernel vectors.
        global_kernel_size: side k of the global convolution kernel.
        dot_scale: factor of the pooled-vector · C product.
    """

    def __init__(self, n_users: int, n_items: int, hidden_size: int, n_layers: int,
                 kernel_dim: int, global_kernel_size: int, dot_scale: float) -> None:
        super().__init__()
        sizes = [n_users] + [hidden_size] * n_layers
        self.layers = nn.ModuleList(
            [LocalKernelLayer(a, b, kernel_dim) for a, b in zip(sizes[:-1], sizes[1:],
                                                                   strict=True)]
            + [LocalKernelLayer(hidden_size, n_users, kernel_dim, activation=False)])
        self.conv_kernel = nn.Parameter(torch.empty(n_items, global_kernel_size**2))
        self.global_kernel_size = global_kernel_size
        self.dot_scale = dot_scale
        self.reset_parameters()

    def kernel_layers(self) -> list[LocalKernelLayer]:
        """The `LocalKernelLayer`s of `layers`, typed (an nn.ModuleList yields nn.Modules)."""
        return cast(list[LocalKernelLayer], list(self.layers))

    def reset_parameters(self) -> None:
        """Every layer as `LocalKernelLayer`; C ~ N(0, 0.01) truncated at 2σ."""
        for layer in self.kernel_layers():
            layer.reset_parameters()
        nn.init.trunc_normal_(self.conv_kernel, mean=0.0, std=0.1, a=-0.2, b=0.2)

    def layer_parameters(self) -> list[nn.Parameter]:
        """The autoencoder's parameters (what pre-training optimizes)."""
        return [p for layer in self.layers for p in layer.parameters()]

    def effective_weights(self) -> list[Tensor]:
        """W ⊙ K of every layer, computed once for the passes of one evaluation."""
        return [layer.effective_weight() for layer in self.kernel_layers()]

    def encode(self, ratings: Tensor, weights: list[Tensor] | None = None) -> Tensor:
        """Last hidden code [rows, hidden_size] of item rows [rows, n_users]."""
        weights = self.effective_weights() if weights is None else weights
        h = ratings
        for layer, w in zip(self.layers[:-1], weights[:-1], strict=True):
            h = layer(h, w)
        return h

    def local(self, ratings: Tensor, weights: list[Tensor] | None = None) -> Tensor:
        """AE(R): reconstructions [rows, n_users] of item rows [rows, n_users]."""
        weights = self.effective_weights() if weights is None else weights
        return self.layers[-1](self.encode(ratings, weights), weights[-1])

    def global_kernel(self, reconstruction: Tensor) -> Tensor:
        """G [k, k] = dot_scale · reshape(mean over users of R̂ [n_items] · C, [k, k])."""
        pooled = reconstruction.mean(dim=1)
        k = self.global_kernel_size
        return (pooled @ self.conv_kernel * self.dot_scale).reshape(k, k)

    def global_input(self, ratings: Tensor, weights: list[Tensor] | None = None) -> Tensor:
        """ReLU(R ∗ G) with G pooled from AE(R): the fine-tuned autoencoder's input."""
        return global_conv(ratings, self.global_kernel(self.local(ratings, weights)))

    def forward(self, ratings: Tensor, finetuned: bool = True) -> Tensor:
        """R̂ [n_items, n_users]: AE(ReLU(R ∗ G)) when `finetuned`, else AE(R)."""
        weights = self.effective_weights()
        x = self.global_input(ratings, weights) if finetuned else ratings
        return self.local(x, weights)

    def penalty(self, reg: float, reg_kernel: float) -> Tensor:
        """Σ_layers λ₂/2 ‖W‖² + λ_s/2 ‖K‖² (C and the biases are not penalized)."""
        return sum((layer.penalty(reg, reg_kernel) for layer in self.kernel_layers()),
                   torch.zeros((), device=self.conv_kernel.device))


def _flat(params: list[nn.Parameter], grads: bool = False) -> np.ndarray:
    parts = [(p.grad if grads else p).detach().reshape(-1) for p in params]  # type: ignore[union-attr]
    return torch.cat(parts).double().cpu().numpy()


def _assign(params: list[nn.Parameter], x: np.ndarray) -> None:
    flat = torch.from_numpy(x).to(device=params[0].device, dtype=params[0].dtype)
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(flat[offset:offset + n].view_as(p))
            offset += n


def lbfgs(params: list[nn.Parameter], objective: Callable[[], Tensor], iterations: int
          ) -> float:
    """Run scipy's L-BFGS-B on `objective` over `params` for at most `iterations` iterations.

    One call is one of the reference's `ScipyOptimizerInterface.minimize` calls: a fresh
    L-BFGS history (10 pairs), float64 optimizer state, float32 parameters and gradients. The
    parameters end at the returned point; returns the objective there.
    """
    def closure() -> Tensor:
        for p in params:
            p.grad = None
        loss = objective()
        loss.backward()
        return loss

    return _minimize(params, closure, iterations)


def _minimize(params: list[nn.Parameter], closure: Callable[[], Tensor], iterations: int
              ) -> float:
    """`lbfgs` given a closure that clears the gradients, computes the loss and backpropagates."""
    from scipy.optimize import minimize

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        _assign(params, x)
        for p in params:
            p.grad = None
        with torch.enable_grad():
            loss = closure()
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        return float(loss.detach()), _flat(params, grads=True)

    result = minimize(fun, _flat(params), jac=True, method="L-BFGS-B",
                      options={"maxiter": iterations, "maxcor": LBFGS_HISTORY})
    _assign(params, result.x)
    for p in params:
        p.grad = None
    return float(result.fun)


class LBFGS(torch.optim.Optimizer):
    """scipy's L-BFGS-B as a torch optimizer: each `step(closure)` is one `lbfgs` call.

    A step restarts L-BFGS (fresh history) and runs at most `iterations` iterations, as the
    reference's per-epoch `ScipyOptimizerInterface.minimize`; it keeps no state between steps,
    so a checkpoint holds none. `step` returns the objective where it ends, as a tensor.

    Args:
        params: the parameters to optimize.
        iterations: L-BFGS iterations per step (≥ 1).
    """

    def __init__(self, params: Any, iterations: int) -> None:
        super().__init__(params, {"iterations": iterations})

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """Minimize the closure's loss from the current parameters; returns the final loss."""
        if closure is None:
            raise ValueError("LBFGS.step needs a closure that computes the loss")
        params = [p for group in self.param_groups for p in group["params"]]
        loss = _minimize(params, closure, int(self.param_groups[0]["iterations"]))
        return torch.tensor(loss, dtype=torch.float64)


class GLocalK(ItemRatings, TorchRecommender):
    """GLocal-K (Han et al., CIKM 2021): a local-kernel item autoencoder with a global kernel.

    It is pre-trained, then fine-tuned on the rating matrix convolved with a global kernel pooled
    from its output: R̂ = AE(ReLU(R ∗ G)), G = dot_scale · reshape(mean_u(AE(R)) · C, [k, k]).

    The defaults are the reference code's ML-100K settings. See the module docstring for the
    equations, the training schedule and every difference from the reference.

    Args:
        hidden_size: units per hidden layer (default 500, ≥ 1; the paper's n_hid).
        n_layers: hidden sigmoid layers (default 2, ≥ 1).
        kernel_dim: dimension of the local kernel vectors u, v (default 5, ≥ 1; n_dim).
        reg: λ₂ of the L2 penalty λ₂/2 ‖W‖² per layer, on the summed-error scale (default 20.0,
            ≥ 0; lambda_2).
        reg_kernel: λ_s of the penalty λ_s/2 ‖K‖² on each local kernel (default 0.006, ≥ 0;
            lambda_s).
        pretrain_epochs: L-BFGS restarts of pre-training (default 30, ≥ 0; epoch_p).
        pretrain_iterations: L-BFGS iterations per pre-training epoch (default 5, ≥ 1; iter_p).
        epochs: L-BFGS restarts of fine-tuning with the global kernel (default 60, ≥ 0; 0 keeps
            the local-kernel autoencoder alone; epoch_f).
        iterations: L-BFGS iterations per fine-tuning epoch (default 5, ≥ 1; iter_f).
        global_kernel_size: side k of the global convolution kernel (default 3, ≥ 1; gk_size).
        dot_scale: scale of the pooled-vector · C product (default 1.0, > 0).

    `patience` (with `valid`, stops the fine-tuning stage; default None: run every epoch, keep
    the best) and `device` (default "cpu") are shared trainer parameters (`TrainerParams`).
    """

    name: ClassVar[str] = "glocalk"
    predicts_ratings: ClassVar[bool] = True
    search_space: ClassVar[SearchSpace] = {
        "hidden_size": Int(100, 1000, log=True),
        "kernel_dim": Int(2, 10),
        "reg": Float(1.0, 200.0, log=True),
        "reg_kernel": Float(1e-4, 0.1, log=True),
        "pretrain_epochs": Int(5, 60),
        "epochs": Int(10, 120),
        "dot_scale": Float(0.25, 4.0, log=True),
    }

    def __init__(self, *, hidden_size: int = 500, n_layers: int = 2, kernel_dim: int = 5,
                 reg: float = 20.0, reg_kernel: float = 0.006, pretrain_epochs: int = 30,
                 pretrain_iterations: int = 5, epochs: int = 60, iterations: int = 5,
                 global_kernel_size: int = 3, dot_scale: float = 1.0,
                 patience: int | None = None, device: str = "cpu") -> None:
        for name, value in (("hidden_size", hidden_size), ("n_layers", n_layers),
                            ("kernel_dim", kernel_dim), ("global_kernel_size", global_kernel_size),
                            ("pretrain_iterations", pretrain_iterations),
                            ("iterations", iterations)):
            check_param(name, value, is_int(value, 1), "an integer ≥ 1")
        for name, value in (("pretrain_epochs", pretrain_epochs), ("epochs", epochs)):
            check_param(name, value, is_int(value, 0), "an integer ≥ 0")
        check_param("epochs", epochs, pretrain_epochs != 0 or epochs != 0,
                    "≥ 1 when pretrain_epochs is 0 (nothing would be trained)")
        for name, number in (("reg", reg), ("reg_kernel", reg_kernel)):
            check_param(name, number, is_number(number) and number >= 0, "a number ≥ 0")
        check_param("dot_scale", dot_scale, is_number(dot_scale) and dot_scale > 0,
                    "a number > 0")
        check_trainer_params({"patience": patience, "device": device})
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.kernel_dim = kernel_dim
        self.reg = reg
        self.reg_kernel = reg_kernel
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_iterations = pretrain_iterations
        self.epochs = epochs
        self.iterations = iterations
        self.global_kernel_size = global_kernel_size
        self.dot_scale = dot_scale
        self.patience = patience
        self.device = device

    # --- TorchRecommender hooks ----------------------------------------------------------------
    def _prepare(self, train: Dataset) -> None:
        super()._prepare(train)
        # Reconstruction of an earlier fit's weights: (key, R̂).
        self._recon_cache: tuple[tuple[Any, ...], Tensor] | None = None
        self._prepare_item_ratings(train)
        self.finetuned_ = False

    def build_module(self) -> GLocalKModule:
        """A fresh `GLocalKModule` for the fitted sizes and the kernel hyper-parameters."""
        return GLocalKModule(self.n_users_, self.n_items_, self.hidden_size, self.n_layers,
                             self.kernel_dim, self.global_kernel_size, float(self.dot_scale))

    def dense_ratings(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The training matrix R [n_items, n_users] (0 where unobserved) and its bool mask."""
        m = self.item_ratings_
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        values = np.zeros(m.shape, dtype=np.float32)
        mask = np.zeros(m.shape, dtype=bool)
        values[rows, m.indices] = m.data
        mask[rows, m.indices] = True
        return torch.from_numpy(values).to(device), torch.from_numpy(mask).to(device)

    def training_loss(self, module: GLocalKModule, ratings: Tensor, mask: Tensor,
                      finetuned: bool) -> Tensor:
        """The reference's loss: ½ Σ_observed (r − r̂)² + Σ_layers λ₂/2 ‖W‖² + λ_s/2 ‖K‖²."""
        pred = module(ratings, finetuned=finetuned)
        return masked_sse(pred, ratings, mask) + module.penalty(self.reg, self.reg_kernel)

    # --- training stages (run by the shared Trainer) ------------------------------------------
    def training_data(self, train: Dataset) -> dict[str, Tensor]:
        """The whole rating matrix as one batch: R [n_items, n_users] and its observed mask."""
        ratings, mask = self.dense_ratings(torch.device("cpu"))
        # The device copy that `_record` reads after every epoch (the Trainer moves the batch).
        self._train_dense = (ratings.to(self.device_), mask.to(self.device_))
        return {"ratings": ratings, "mask": mask}

    def batches(self, data: dict[str, Tensor], generator: torch.Generator
                ) -> Iterator[dict[str, Tensor]]:
        """One full batch per epoch (L-BFGS needs a deterministic objective)."""
        yield data

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """`training_loss` of the whole matrix for the current stage (`finetuned_`)."""
        assert isinstance(module, GLocalKModule)
        return self.training_loss(module, batch["ratings"], batch["mask"], self.finetuned_)

    def training_stages(self) -> list[Stage]:
        """Pre-training on AE(R) (the layers), then fine-tuning on AE(ReLU(R ∗ G)) (all).

        Each epoch is one L-BFGS restart (`LBFGS`); the best validation epoch is kept over both
        stages, and `patience` stops the last stage that runs.
        """
        def stage(name: str, epochs: int, iterations: int, patience: int | None) -> Stage:
            finetune = name == "finetune"

            def start() -> None:
                self.finetuned_ = finetune

            def parameters(module: nn.Module) -> list[nn.Parameter]:
                assert isinstance(module, GLocalKModule)
                return list(module.parameters()) if finetune else module.layer_parameters()

            return Stage(epochs=epochs, name=name, parameters=parameters,
                         optimizer=lambda params: LBFGS(params, iterations), full_batch=True,
                         patience=patience, on_start=start,
                         record=lambda loss: self._record(loss),
                         hint="lower reg or check the ratings")

        return [stage("pretrain", self.pretrain_epochs, self.pretrain_iterations,
                      self.patience if self.epochs == 0 else None),
                stage("finetune", self.epochs, self.iterations, self.patience)]

    def _record(self, loss: float) -> dict[str, Any]:
        """History fields of an epoch.

        The objective per training rating and the (clipped) training RMSE of the current stage's
        reconstruction.
        """
        ratings, mask = self._train_dense
        with torch.no_grad():
            pred = self.module_(ratings, finetuned=self.finetuned_)[mask].double().cpu().numpy()
        target = ratings[mask].double().cpu().numpy()
        err = clip_to_scale(pred, self.rating_scale_) - target
        return {"train_loss": loss / max(self.n_ratings_, 1),
                "train_rmse": float(np.sqrt(np.mean(err**2))) if len(err) else 0.0,
                "metric": None}

    # --- scoring -------------------------------------------------------------------------------
    def reconstruction(self, module: GLocalKModule) -> Tensor:
        """R̂ [n_items, n_users] of the training matrix, on the module's device.

        Computed once per set of weights: scoring reuses it until the weights change (an
        L-BFGS step or a weight load bumps the tensors' version counters) or the stage does;
        never cached while gradients are recorded.
        """
        params = tuple(p._version for p in module.parameters())
        key = (id(module), id(self.item_ratings_), bool(self.finetuned_), params,
               module.conv_kernel.device)
        cacheable = not torch.is_grad_enabled()
        cached = getattr(self, "_recon_cache", None)
        if cacheable and cached is not None and cached[0] == key:
            return cached[1]
        with torch.no_grad():
            ratings, _ = self.dense_ratings(module.conv_kernel.device)
            recon = module(ratings, finetuned=bool(self.finetuned_))
        if cacheable:
            self._recon_cache = (key, recon)
        return recon

    def score_block(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor | None
                    ) -> Tensor:
        """Scores [users, items]: the users' columns of the reconstruction R̂."""
        assert isinstance(module, GLocalKModule)
        out = self.reconstruction(module)
        if item_codes is not None:
            out = out[item_codes]
        return out[:, user_codes].T

    def predict_pairs(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor) -> Tensor:
        """Reconstructed ratings of known (user, item) pairs; `_predict` handles unknown codes."""
        assert isinstance(module, GLocalKModule)
        return self.reconstruction(module)[item_codes, user_codes]

    def item_vectors(self) -> np.ndarray:
        """The last hidden code [n_items, hidden_size] of each item's (convolved) ratings."""
        with self._eval() as module:
            assert isinstance(module, GLocalKModule)
            ratings, _ = self.dense_ratings(self.device_)
            weights = module.effective_weights()
            x = module.global_input(ratings, weights) if self.finetuned_ else ratings
            return module.encode(x, weights).float().cpu().numpy()
