"""SVD's compiled loop as `fit` runs it: uint32 codes, float32 state, a uniform shuffle.

The textbook step itself is checked in test_svd_als.py (with int32 codes); here the same pass
with the unsigned codes `fit` hands over must agree with it, and the shuffle must draw every
order equally often.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("numba")

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.models.svd import SVD, sgd_epoch, shuffle  # noqa: E402


def _state(seed: int, n_users: int = 5, n_items: int = 7, k: int = 19) -> list[np.ndarray]:
    """Random float32 factors and biases; k = 19 exercises the vector body and its remainder."""
    gen = np.random.default_rng(seed)
    return [gen.normal(0, 0.1, (n_users, k)).astype(np.float32),
            gen.normal(0, 0.1, (n_items, k)).astype(np.float32),
            gen.normal(0, 0.1, n_users).astype(np.float32),
            gen.normal(0, 0.1, n_items).astype(np.float32)]


def _textbook_pass(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, mu: float,
                   state: list[np.ndarray], lr: float, reg: float,
                   reg_bias: float) -> float:
    """The update of the module docstring, one rating at a time in float64."""
    p, q, bu, bi = (a.astype(np.float64) for a in state)
    total = 0.0
    for u, i, r in zip(users, items, ratings, strict=True):
        err = r - (mu + bu[u] + bi[i] + p[u] @ q[i])
        total += err * err
        bu[u] += lr * (err - reg_bias * bu[u])
        bi[i] += lr * (err - reg_bias * bi[i])
        p[u], q[i] = p[u] + lr * (err * q[i] - reg * p[u]), q[i] + lr * (err * p[u] - reg * q[i])
    for dst, src in zip(state, (p, q, bu, bi), strict=True):
        dst[...] = src
    return total / len(users)


@pytest.mark.parametrize("code_dtype", [np.uint32, np.int32])
def test_sgd_pass_matches_the_textbook_update(code_dtype: type) -> None:
    gen = np.random.default_rng(0)
    users = gen.integers(0, 5, 40).astype(code_dtype)  # repeats: later steps see earlier updates
    items = gen.integers(0, 7, 40).astype(code_dtype)
    ratings = gen.integers(1, 6, 40).astype(np.float32)
    lr, reg, reg_bias, mu = 0.05, 0.1, 0.02, 3.2
    got, want = _state(1), _state(1)
    mse = sgd_epoch(users, items, ratings, np.float32(mu), *got, np.float32(lr), np.float32(reg),
                    np.float32(reg_bias))
    want_mse = _textbook_pass(users, items, ratings, mu, want, lr, reg, reg_bias)
    assert mse == pytest.approx(want_mse, rel=1e-4)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_shuffle_draws_every_order_equally_often() -> None:
    # 4 rows have 24 orders; 24,000 seeded shuffles give each about 1,000. A shuffle that can
    # never leave a row in place (Sattolo's cycle, an off-by-one) or that favours some orders
    # fails the chi-square bound (df = 23; 60 is far beyond its 0.9999 quantile).
    counts = dict.fromkeys(itertools.permutations(range(4)), 0)
    for seed in range(24_000):
        users = np.arange(4, dtype=np.uint32)
        shuffle(users, users.copy(), users.astype(np.float32), np.uint64(seed))
        counts[tuple(users.tolist())] += 1
    observed = np.array(list(counts.values()))
    chi2 = float(((observed - 1_000) ** 2 / 1_000).sum())
    assert observed.min() > 0 and chi2 < 60, counts


def test_fit_keeps_float32_state_and_is_seeded(low_rank: Dataset) -> None:
    a = SVD(embedding_size=6, epochs=4).fit(low_rank, rng=5, progress=False)
    b = SVD(embedding_size=6, epochs=4).fit(low_rank, rng=5, progress=False)
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        value = getattr(a, name)
        assert value.dtype == np.float32 and value.flags.c_contiguous, name
        np.testing.assert_array_equal(value, getattr(b, name))
    assert a.user_factors_.shape == (a.n_users, 6) and a.item_factors_.shape == (a.n_items, 6)
    # initial factors are N(0, init_std²): after 4 short passes their spread is still that size
    assert 0.05 < float(a.item_factors_.std()) < 0.2
    assert [row["epoch"] for row in a.history_] == [1, 2, 3, 4]
    # the training error falls from pass to pass on this learnable rank-2 data
    losses = [row["train_loss"] for row in a.history_]
    assert losses[-1] < losses[0]
