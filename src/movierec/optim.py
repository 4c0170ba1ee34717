"""LazyAdam: Adam whose cost per step follows the batch, not the size of the embedding tables.

With dense gradients, every Adam step reads and writes every row of every embedding table (the
weights, both moments and the zero-filled gradient): at MovieLens-25M size (160k users + 60k
items, 64 factors) that is about 14M parameters x 5 arrays per step, ~0.6 s on one core, against
~26 ms for the 1024 rows a batch touches (`benchmarks/scale_scoring.py`, section d). Embedding
layers marked sparse (`nn.Embedding(sparse=True)`) give row-sparse gradients, and this optimizer
updates only those rows:

    m_r ← β₁ m_r + (1 − β₁) g_r,   v_r ← β₂ v_r + (1 − β₂) g_r²,
    θ_r ← θ_r − η · (m_r / (1 − β₁ᵗ)) / (√(v_r / (1 − β₂ᵗ)) + ε)

for the touched rows r only, with one global step count t (as `torch.optim.SparseAdam`, "lazy
Adam" in TensorFlow Addons). Untouched rows keep their weights and moments: unlike dense Adam,
their momentum does not carry them further, and L2 `weight_decay` (added to the gradient, as
`torch.optim.Adam`) applies to the touched rows only. Dense gradients get exactly Adam's update,
so one optimizer serves a module of sparse embeddings and dense layers. Unlike SparseAdam it
accepts dense gradients and weight decay. Its `state_dict` has Adam's keys (step, exp_avg,
exp_avg_sq), so checkpoints work unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["LazyAdam", "mark_sparse"]


class LazyAdam(torch.optim.Optimizer):
    """Adam on dense gradients, lazy (touched rows only) Adam on row-sparse ones.

    Args:
        params: parameters (or parameter groups) to optimize.
        lr: step size η (default 1e-3, > 0).
        betas: (β₁, β₂) moment decay rates (default (0.9, 0.999), each in [0, 1)).
        eps: ε added to the denominator (default 1e-8, ≥ 0).
        weight_decay: L2 penalty added to the gradient of the updated rows (default 0, ≥ 0).
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"eps and weight_decay must be ≥ 0, got {eps}, {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        """One update of every parameter that has a gradient."""
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = (group["lr"], group["betas"], group["eps"],
                                     group["weight_decay"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p,
                                                           memory_format=torch.preserve_format)
                state["step"] += 1
                t = float(state["step"])
                step_size = lr / (1 - b1**t)
                root_bc2 = (1 - b2**t) ** 0.5
                m, v = state["exp_avg"], state["exp_avg_sq"]
                grad = p.grad
                if grad.is_sparse:
                    # Embedding gradients are row-sparse (sparse_dim 1); other layouts become so.
                    grad = (grad if grad.sparse_dim() == 1 else grad.to_dense().to_sparse(1)
                            ).coalesce()
                    rows, values = grad.indices()[0], grad.values()
                    if wd:
                        values = values + wd * p[rows]
                    m_rows = m[rows].mul_(b1).add_(values, alpha=1 - b1)
                    v_rows = v[rows].mul_(b2).addcmul_(values, values, value=1 - b2)
                    m[rows], v[rows] = m_rows, v_rows
                    denom = v_rows.sqrt().div_(root_bc2).add_(eps)
                    p.index_add_(0, rows, m_rows.div_(denom).mul_(-step_size))
                else:
                    if wd:
                        grad = grad.add(p, alpha=wd)
                    m.mul_(b1).add_(grad, alpha=1 - b1)
                    v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                    denom = v.sqrt().div_(root_bc2).add_(eps)
                    p.addcdiv_(m, denom, value=-step_size)


def mark_sparse(module: torch.nn.Module, sparse: bool = True) -> list[torch.nn.Module]:
    """Set `sparse` on every `nn.Embedding`/`nn.EmbeddingBag` of `module`; return those changed.

    Their gradients become row-sparse (only the looked-up rows); `mark_sparse(m, False)` on the
    returned layers restores them (fold-in and scoring never need sparse gradients).
    """
    changed: list[torch.nn.Module] = []
    for layer in module.modules():
        if isinstance(layer, torch.nn.Embedding | torch.nn.EmbeddingBag) and \
                layer.sparse != sparse:
            layer.sparse = sparse
            changed.append(layer)
    return changed
