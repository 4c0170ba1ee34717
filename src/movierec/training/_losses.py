"""Training objectives: squared error, BPR and BCE on logits; the scaled logit of a rating."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["LOSSES", "bce_loss", "bpr_loss", "mse_loss", "scaled_logit"]


def mse_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error mean((pred − target)²)."""
    return torch.mean((pred - target) ** 2)


def bpr_loss(positive: Tensor, negative: Tensor) -> Tensor:
    """Bayesian personalized ranking (Rendle et al. 2009): mean of −log σ(s_pos − s_neg).

    Args:
        positive: scores of the observed items, shape [b] or [b, 1].
        negative: scores of sampled items, shape [b] or [b, n] (broadcast against `positive`).
    """
    if positive.dim() == 1 and negative.dim() == 2:
        positive = positive[:, None]
    return -torch.nn.functional.logsigmoid(positive - negative).mean()


def bce_loss(positive: Tensor, negative: Tensor) -> Tensor:
    """Binary cross-entropy on logits: observed items labelled 1, sampled negatives 0.

    The mean is taken over all positive and negative terms together (as in NCF, He et al. 2017):
    (Σ softplus(−s_pos) + Σ softplus(s_neg)) / (|pos| + |neg|).
    """
    softplus = torch.nn.functional.softplus
    total = softplus(-positive).sum() + softplus(negative).sum()
    return total / (positive.numel() + negative.numel())


LOSSES = ("mse", "bpr", "bce")


def scaled_logit(rating: float | np.ndarray, scale: tuple[float, float]) -> float | np.ndarray:
    """The pre-sigmoid value logit((r − lo) / (hi − lo)) of a rating, clipped away from 0 and 1.

    For models whose output is lo + (hi − lo)·σ(z), so that an untrained model predicts μ.
    """
    lo, hi = scale
    frac = np.clip((np.asarray(rating, dtype=np.float64) - lo) / (hi - lo), 1e-3, 1 - 1e-3)
    out = np.log(frac / (1 - frac))
    return float(out) if out.ndim == 0 else out
