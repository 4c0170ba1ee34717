"""The maths of SLIM: nonnegative sparse weights, zero diagonal, optimality, pruning, fold-in."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.errors import MissingExtraError
from movierec.fold_in import fold_in
from movierec.models import get_class
from movierec.models.slim import SLIM, slim_weights


def binary(rng: np.random.Generator, n_users: int = 40, n_items: int = 10) -> np.ndarray:
    x = (rng.random((n_users, n_items)) < 0.4).astype(float)
    x[np.arange(n_items), np.arange(n_items)] = 1.0
    return x


def blocks(rng: np.random.Generator) -> np.ndarray:
    """Three groups of 15 users x 4 items: each item is co-rated with under half the catalog,
    so `slim_weights` solves the restricted regressions."""
    x = np.zeros((45, 12))
    for b in range(3):
        x[15 * b:15 * (b + 1), 4 * b:4 * (b + 1)] = rng.random((15, 4)) < 0.6
    x[15 * (np.arange(12) // 4) + np.arange(12) % 4, np.arange(12)] = 1.0  # no empty item
    return x


def test_weights_nonnegative_with_zero_diagonal(low_rank: Dataset) -> None:
    model = SLIM(alpha=1e-3, l1_ratio=0.1, n_neighbors=8).fit(low_rank, progress=False)
    w = model.item_weights_
    assert sp.issparse(w) and w.dtype == np.float32
    assert (w.data > 0).all()
    assert (w.diagonal() == 0).all()
    assert (np.diff(sp.csc_matrix(w).indptr) <= 8).all()  # n_neighbors per target column
    x = low_rank.matrix("binary")
    np.testing.assert_allclose(model.score(low_rank.user_vocab.index[:5]),
                               (x[:5] @ w).toarray(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("alpha", "l1_ratio"), [(0.01, 0.5), (0.002, 1.0)])
@pytest.mark.parametrize("make", [binary, blocks])
def test_each_column_satisfies_the_elastic_net_optimality_conditions(
        rng: np.random.Generator, alpha: float, l1_ratio: float, make) -> None:
    x = make(rng)
    n = x.shape[0]
    w = slim_weights(sp.csr_matrix(x), alpha=alpha, l1_ratio=l1_ratio, n_neighbors=100,
                     max_iter=10_000, tol=1e-12).toarray().astype(float)
    for j in range(x.shape[1]):
        x_j = x.copy()
        x_j[:, j] = 0.0
        # Gradient of the smooth part: (1/n) X_{-j}ᵀ (y − X_{-j} w) − α(1 − ρ) w.
        g = x_j.T @ (x[:, j] - x_j @ w[:, j]) / n - alpha * (1 - l1_ratio) * w[:, j]
        active = w[:, j] > 0
        np.testing.assert_allclose(g[active], alpha * l1_ratio, rtol=1e-3, atol=1e-6)
        assert (g[~active] <= alpha * l1_ratio + 1e-6).all()


def test_restricted_regressions_equal_the_full_ones(rng: np.random.Generator) -> None:
    from sklearn.linear_model import ElasticNet

    x = blocks(rng)
    got = slim_weights(sp.csr_matrix(x), alpha=0.003, l1_ratio=0.2, n_neighbors=100,
                       max_iter=1000, tol=1e-10).toarray()
    for j in range(x.shape[1]):
        x_j = x.copy()
        x_j[:, j] = 0.0
        full = ElasticNet(alpha=0.003, l1_ratio=0.2, positive=True, fit_intercept=False,
                          max_iter=1000, tol=1e-10).fit(x_j, x[:, j]).coef_
        np.testing.assert_allclose(got[:, j], full, rtol=1e-4, atol=1e-7)


def test_pruning_keeps_the_largest_weights(rng: np.random.Generator) -> None:
    x = sp.csr_matrix(binary(rng, 60, 12))
    full = slim_weights(x, alpha=1e-4, l1_ratio=0.01, n_neighbors=100, max_iter=500,
                        tol=1e-8).toarray()
    pruned = slim_weights(x, alpha=1e-4, l1_ratio=0.01, n_neighbors=3, max_iter=500,
                          tol=1e-8).toarray()
    for j in range(12):
        keep = np.argsort(-full[:, j], kind="stable")[:3]
        keep = keep[full[keep, j] > 0]
        expected = np.zeros(12)
        expected[keep] = full[keep, j]
        np.testing.assert_allclose(pruned[:, j], expected, rtol=1e-6)


def test_fold_in_equals_a_training_user(low_rank: Dataset) -> None:
    model = SLIM(alpha=1e-3, n_neighbors=20).fit(low_rank, progress=False)
    user = int(low_rank.user_vocab.index[5])
    history = low_rank.ratings[low_rank.ratings["user_id"] == user]
    new = fold_in(model, history["item_id"].to_numpy(), history["rating"].to_numpy())
    assert new.method == "model"
    np.testing.assert_allclose(new.scores, model.score([user])[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(model._item_similarity(np.array([2])),
                                  model.item_weights_[[2]].toarray())


def test_rating_values_do_not_matter(rng: np.random.Generator) -> None:
    u, i = np.nonzero(rng.random((20, 8)) < 0.5)
    frame = pd.DataFrame({"user_id": u, "item_id": i, "rating": rng.integers(1, 6, len(u))})
    a = SLIM(alpha=1e-3).fit(Dataset(frame), progress=False).item_weights_
    b = SLIM(alpha=1e-3).fit(Dataset(frame.assign(rating=1)), progress=False).item_weights_
    assert (a != b).nnz == 0


def test_non_convergence_is_logged_once(low_rank: Dataset, caplog) -> None:
    SLIM(alpha=1e-4, max_iter=1, tol=1e-12).fit(low_rank, progress=False)
    warnings = [r for r in caplog.records if "max_iter=1" in r.getMessage()]
    assert len(warnings) == 1


def test_missing_scikit_learn_is_a_missing_extra(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "movierec.models.slim", raising=False)
    for name in ("sklearn", "sklearn.exceptions", "sklearn.linear_model"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingExtraError, match=r"movierec\[slim\]"):
        get_class("slim")


@pytest.mark.parametrize(("param", "value"), [("alpha", 0.0), ("l1_ratio", 0.0),
                                               ("l1_ratio", 1.5), ("n_neighbors", 0),
                                               ("max_iter", 0), ("tol", -1.0)])
def test_bad_params_give_one_line_naming_them(param: str, value: object) -> None:
    with pytest.raises(ValueError, match=param) as info:
        SLIM(**{param: value})
    assert "\n" not in str(info.value)
