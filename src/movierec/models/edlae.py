"""EDLAE: emphasized denoising linear autoencoder, full-rank closed form.

Steck, "Autoencoders that don't overfit towards the Identity", NeurIPS 2020 (eqs. 8-9; the
author's `learn_EDLAE_fullrank` in github.com/hasteck/EDLAE_NeurIPS2020).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from movierec.data.dataset import Dataset
from movierec.models.base import check_param, is_number
from movierec.models.ease import EASE, _gram, _spd_inverse, check_memory, weights_from_inverse
from movierec.models.space import Float, SearchSpace
from movierec.random import RNGLike

__all__ = ["EDLAE"]


class EDLAE(EASE):
    """Full-rank emphasized denoising linear autoencoder (Steck 2020, eqs. 8-9).

    Dropout with probability p on the input of a linear autoencoder acts, in expectation, as the
    L2 penalty Λ = p/(1 − p) · diag(XᵀX) + λI: items with more users are shrunk more. Full
    emphasis on the dropped-out entries removes the incentive to copy an input to its own
    output, which in the full-rank model is the constraint diag(B) = 0. With X the binary
    users x items matrix and P = (XᵀX + Λ)⁻¹:

        B = I − P · diag(1 / diag(P)),   score(u, ·) = X_u · B.

    With p = 0 this is EASE with the same λ. Memory and fold-in as EASE (12 x n_items² bytes at
    the peak, refused before allocating above `max_memory_mb`; a new user is scored as x · B).

    Args:
        dropout: dropout probability p of the denoising (default 0.33, in [0, 1)).
        lambda_: L2 constant λ added to the diagonal besides the dropout penalty (default 300.0,
            ≥ 0; > 0 when dropout is 0). On the command line the key is `lambda`. The defaults
            are the author's full-rank setting for ML-20M (p = 0.33, λ = 300).
        max_memory_mb: largest peak memory (12 × n_items² bytes), in MB, that `fit` may use
            (default 4000, > 0: up to 18,257 items).
    """

    name: ClassVar[str] = "edlae"
    search_space: ClassVar[SearchSpace] = {
        "dropout": Float(0.0, 0.9),
        "lambda_": Float(1.0, 1e4, log=True),
    }
    supports_fold_in: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True
    # A new model: none of EASE's old parameter names.
    renamed_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, *, dropout: float = 0.33, lambda_: float = 300.0,
                 max_memory_mb: float = 4000.0) -> None:
        check_param("dropout", dropout, is_number(dropout) and 0 <= dropout < 1,
                    "a number in [0, 1)")
        check_param("lambda_", lambda_, is_number(lambda_) and lambda_ >= 0, "a number ≥ 0")
        check_param("lambda_", lambda_, dropout > 0 or lambda_ > 0,
                    "a number > 0 when dropout is 0 (XᵀX alone may be singular)")
        check_param("max_memory_mb", max_memory_mb,
                    is_number(max_memory_mb) and max_memory_mb > 0, "a number > 0")
        self.dropout = dropout
        self.lambda_ = lambda_
        self.max_memory_mb = max_memory_mb

    def fit(
        self,
        train: Dataset,
        valid: Dataset | None = None,
        *,
        rng: RNGLike = None,
        progress: bool = True,
    ) -> Self:
        """Solve for the item weights B in closed form; returns self."""
        n = train.n_items
        check_memory("EDLAE", n, self.max_memory_mb, "rp3beta or slim, whose weights are sparse")
        self._setup(train)
        p = _gram(self.seen_, float(self.lambda_))
        # diag(XᵀX) of a binary X: each item's number of users.
        counts = np.bincount(self.seen_.indices, minlength=n).astype(np.float64)
        p[np.diag_indices(n)] += self.dropout / (1.0 - self.dropout) * counts
        self.item_weights_ = weights_from_inverse(_spd_inverse(p))
        return self
