"""Non-personalized and bias baselines: global mean, user/item biases, popularity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np

from movierec.data.dataset import Dataset
from movierec.models.base import Recommender, check_param, is_int, is_number
from movierec.models.space import Float, SearchSpace
from movierec.random import RNGLike

__all__ = ["Bias", "GlobalMean", "Popularity", "fit_biases", "item_popularity"]


def fit_biases(
    user_codes: np.ndarray,
    item_codes: np.ndarray,
    ratings: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    reg_user: float = 15.0,
    reg_item: float = 10.0,
    epochs: int = 10,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Regularized baselines b_u, b_i by alternating least squares (Koren 2010, section 2.1).

    Each epoch solves the items, then the users, in closed form, exactly as Surprise's
    `BaselineOnly` with `method="als"`::

        b_i = Σ_{u ∈ U_i} (r_ui − μ − b_u) / (reg_item + |U_i|)
        b_u = Σ_{i ∈ I_u} (r_ui − μ − b_i) / (reg_user + |I_u|)

    Args:
        user_codes: user code of every rating (int).
        item_codes: item code of every rating (int).
        ratings: the rating values.
        n_users: number of user codes.
        n_items: number of item codes.
        reg_user: λ of the user biases (default 15).
        reg_item: λ of the item biases (default 10).
        epochs: ALS sweeps (default 10).

    Returns:
        (μ, b_u float64 [n_users], b_i float64 [n_items]).
    """
    r = np.asarray(ratings, dtype=np.float64)
    mu = float(r.mean())
    n_u = np.bincount(user_codes, minlength=n_users)
    n_i = np.bincount(item_codes, minlength=n_items)
    b_u = np.zeros(n_users)
    b_i = np.zeros(n_items)
    for _ in range(epochs):
        b_i = np.bincount(item_codes, weights=r - mu - b_u[user_codes], minlength=n_items) / (
            reg_item + n_i
        )
        b_u = np.bincount(user_codes, weights=r - mu - b_i[item_codes], minlength=n_users) / (
            reg_user + n_u
        )
    return mu, b_u, b_i


def baseline_predict(
    mu: float, b_u: np.ndarray, b_i: np.ndarray, user_codes: np.ndarray, item_codes: np.ndarray
) -> np.ndarray:
    """b_ui = μ + b_u + b_i for code pairs; a code of -1 (unknown) contributes no bias."""
    u = np.asarray(user_codes)
    i = np.asarray(item_codes)
    out = np.full(len(u), mu, dtype=np.float64)
    ku, ki = u >= 0, i >= 0
    out[ku] += b_u[u[ku]]
    out[ki] += b_i[i[ki]]
    return out


def item_popularity(model: Recommender) -> np.ndarray:
    """Training interactions per item, float32 [n_items] (column sums of `seen_`).

    Computed once per model object and cached outside its learned state (the attribute does
    not end in `_`, so it is never saved); callers must not modify the returned array.
    """
    cached = model.__dict__.get("_item_popularity")
    if cached is None:
        model._check_fitted()
        cached = np.asarray(model.seen_.sum(axis=0), dtype=np.float32).ravel()
        model.__dict__["_item_popularity"] = cached
    return cached


class GlobalMean(Recommender):
    """Predicts the mean training rating for every pair: r̂_ui = μ.

    Every item gets the same score, so its ranking is only the deterministic tie order (lowest
    item code first); it is the floor for RMSE/MAE, not a ranking model.

    Fold-in: a new user gets the popularity ranking (`item_popularity`), since μ alone does not
    order items.
    """

    name: ClassVar[str] = "mean"
    predicts_ratings: ClassVar[bool] = True
    supports_fold_in: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True

    def __init__(self) -> None:
        pass

    def fit(
        self,
        train: Dataset,
        valid: Dataset | None = None,
        *,
        rng: RNGLike = None,
        progress: bool = True,
    ) -> Self:
        """Record the mean training rating μ; returns self."""
        self._setup(train)
        self.global_mean_ = float(train.ratings["rating"].to_numpy(np.float64).mean())
        return self

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        n = self.n_items if item_codes is None else len(item_codes)
        return np.full((len(user_codes), n), self.global_mean_, dtype=np.float32)

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.full(len(user_codes), self.global_mean_, dtype=np.float32)

    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user: the training popularity of every item."""
        return item_popularity(self).copy()


class Bias(Recommender):
    """User and item biases: r̂_ui = μ + b_u + b_i (Koren, "Factor in the neighbors", TKDD 2010).

    Biases are learned by regularized ALS (`fit_biases`), matching Surprise's `BaselineOnly`
    defaults, and predictions are clipped to the training rating scale. The ranking score is the
    unclipped prediction; unknown users or items contribute a bias of 0.

    Fold-in: a new user's bias is the same closed-form step as in training with the item biases
    fixed, b = Σ_j (r_j − μ − b_j) / (reg_user + n) (`_score_history`).

    Args:
        reg_user: regularization λ of the user biases (default 15.0, ≥ 0).
        reg_item: regularization λ of the item biases (default 10.0, ≥ 0).
        epochs: ALS sweeps over items then users (default 10, ≥ 1).
    """

    name: ClassVar[str] = "bias"
    search_space: ClassVar[SearchSpace] = {
        "reg_user": Float(0.1, 100.0, log=True),
        "reg_item": Float(0.1, 100.0, log=True),
    }
    predicts_ratings: ClassVar[bool] = True
    supports_fold_in: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True

    def __init__(self, *, reg_user: float = 15.0, reg_item: float = 10.0, epochs: int = 10) -> None:
        check_param("reg_user", reg_user, is_number(reg_user) and reg_user >= 0, "a number ≥ 0")
        check_param("reg_item", reg_item, is_number(reg_item) and reg_item >= 0, "a number ≥ 0")
        check_param("epochs", epochs, is_int(epochs) and epochs >= 1, "an integer ≥ 1")
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.epochs = epochs

    def fit(
        self,
        train: Dataset,
        valid: Dataset | None = None,
        *,
        rng: RNGLike = None,
        progress: bool = True,
    ) -> Self:
        """Learn μ, b_u and b_i by ALS; returns self."""
        u, i = self._setup(train)
        mu, b_u, b_i = fit_biases(
            u,
            i,
            train.ratings["rating"].to_numpy(),
            self.n_users,
            self.n_items,
            reg_user=self.reg_user,
            reg_item=self.reg_item,
            epochs=self.epochs,
        )
        self.global_mean_ = mu
        self.user_bias_ = b_u
        self.item_bias_ = b_i
        return self

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        b_i = self.item_bias_ if item_codes is None else self.item_bias_[item_codes]
        out = self.global_mean_ + self.user_bias_[user_codes][:, None] + b_i[None, :]
        return out.astype(np.float32)

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        self._check_fitted()
        pred = baseline_predict(
            self.global_mean_, self.user_bias_, self.item_bias_, user_codes, item_codes
        )
        return clip_to_scale(pred, self.rating_scale_).astype(np.float32)

    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user given (item code, rating) pairs.

        μ + b + b_i with b = Σ_j (r_j − μ − b_j) / (reg_user + n) over the known items j (codes
        of −1 are ignored); the same unclipped score as `_score` gives a training user.
        """
        self._check_fitted()
        codes = np.asarray(item_codes, dtype=np.int64)
        keep = codes >= 0
        r = np.asarray(ratings, dtype=np.float64)[keep]
        codes = codes[keep]
        b_user = float(np.sum(r - self.global_mean_ - self.item_bias_[codes])
                       / (self.reg_user + len(codes))) if len(codes) else 0.0
        return (self.global_mean_ + b_user + self.item_bias_).astype(np.float32)


class Popularity(Recommender):
    """Most popular items: score(u, j) = |U_j|, the number of training interactions of item j.

    The same list for everybody (minus the user's own items); ties go to the lower item code.
    A new user (fold-in) gets the same list.
    """

    name: ClassVar[str] = "pop"
    supports_fold_in: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True

    def __init__(self) -> None:
        pass

    def fit(
        self,
        train: Dataset,
        valid: Dataset | None = None,
        *,
        rng: RNGLike = None,
        progress: bool = True,
    ) -> Self:
        """Count each item's training interactions; returns self."""
        self._setup(train)
        self.item_counts_ = np.asarray(self.seen_.sum(axis=0), dtype=np.float32).ravel()
        return self

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        counts = self.item_counts_ if item_codes is None else self.item_counts_[item_codes]
        return np.broadcast_to(counts, (len(user_codes), len(counts))).astype(np.float32)

    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user: the item counts, whatever the history."""
        self._check_fitted()
        return np.array(self.item_counts_, dtype=np.float32)


def clip_to_scale(pred: np.ndarray, scale: Sequence[float]) -> np.ndarray:
    """Clip predictions to the rating scale (lowest, highest); (0, 0) means no known scale."""
    lo, hi = scale
    return np.clip(pred, lo, hi) if hi > lo else pred

