"""The maths of the baselines: global mean, ALS biases, popularity counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from contract import read_u1, rmse_mae

from movierec.data.dataset import Dataset
from movierec.models.baseline import Bias, GlobalMean, Popularity, fit_biases

MU_TINY = 41 / 11  # tiny: 11 ratings summing to 41


def als_loops(u, i, r, n_users, n_items, reg_user, reg_item, epochs):
    """Surprise's BaselineOnly ALS written as its plain loops (the specification)."""
    mu = float(np.mean(r))
    b_u, b_i = np.zeros(n_users), np.zeros(n_items)
    for _ in range(epochs):
        for item in range(n_items):
            rows = np.flatnonzero(i == item)
            b_i[item] = sum(r[k] - mu - b_u[u[k]] for k in rows) / (reg_item + len(rows))
        for user in range(n_users):
            rows = np.flatnonzero(u == user)
            b_u[user] = sum(r[k] - mu - b_i[i[k]] for k in rows) / (reg_user + len(rows))
    return mu, b_u, b_i


def test_global_mean_predicts_training_mean(tiny: Dataset) -> None:
    model = GlobalMean().fit(tiny)
    pred = model.predict(np.array([1, 999]), np.array([20, 999]))
    np.testing.assert_allclose(pred, [MU_TINY, MU_TINY], rtol=1e-6)
    assert np.all(model.score([1, 2]) == np.float32(MU_TINY))


def test_bias_one_als_step_by_hand(tiny: Dataset) -> None:
    model = Bias(reg_user=2.0, reg_item=1.0, epochs=1).fit(tiny)
    # Item 10 (code 0) is rated 5, 4, 5 and all b_u start at 0: b_i = (14 - 3μ) / (1 + 3).
    b_10 = (14 - 3 * MU_TINY) / 4
    assert model.item_bias_[0] == pytest.approx(b_10)
    # User 4 (code 3) rated item 10 (5) and item 50 (3); item 50 is rated 4 and 3.
    b_50 = (7 - 2 * MU_TINY) / 3
    b_4 = ((5 - MU_TINY - b_10) + (3 - MU_TINY - b_50)) / (2 + 2)
    assert model.user_bias_[3] == pytest.approx(b_4)
    assert model.predict(np.array([4]), np.array([10]))[0] == pytest.approx(
        MU_TINY + b_4 + b_10, rel=1e-6
    )


def test_fit_biases_matches_loop_specification(rng: np.random.Generator) -> None:
    n_users, n_items, n = 30, 20, 200
    u = rng.integers(0, n_users, n)
    i = rng.integers(0, n_items, n)
    r = rng.integers(1, 6, n).astype(float)
    got = fit_biases(u, i, r, n_users, n_items, reg_user=3.0, reg_item=2.0, epochs=4)
    want = als_loops(u, i, r, n_users, n_items, 3.0, 2.0, 4)
    assert got[0] == pytest.approx(want[0])
    np.testing.assert_allclose(got[1], want[1], atol=1e-12)
    np.testing.assert_allclose(got[2], want[2], atol=1e-12)


def test_bias_fallbacks_and_clipping(tiny: Dataset) -> None:
    model = Bias(reg_user=0.0, reg_item=0.0, epochs=5).fit(tiny)
    mu, b_u, b_i = model.global_mean_, model.user_bias_, model.item_bias_
    pred = model.predict(np.array([999, 1, 999]), np.array([10, 999, 999]))
    np.testing.assert_allclose(pred, [mu + b_i[0], mu + b_u[0], mu], rtol=1e-6)
    everything = model.predict(
        np.repeat(tiny.user_vocab.index, 5), np.tile(tiny.item_vocab.index, 4)
    )
    assert everything.min() >= 1.0 and everything.max() <= 5.0
    # The ranking score is the unclipped prediction.
    np.testing.assert_allclose(model.score([1]), (mu + b_u[0] + b_i)[None, :], rtol=1e-6)


def test_popularity_counts_and_ties(tiny: Dataset) -> None:
    model = Popularity().fit(tiny)
    np.testing.assert_array_equal(model.item_counts_, [3, 2, 2, 2, 2])
    rec = model.recommend(3, k=5)  # user 3 rated 20, 40, 50
    assert rec["item_id"].tolist() == [10, 30]
    assert rec["score"].tolist() == [3.0, 2.0]


@pytest.mark.slow
def test_ml100k_u1_rating_accuracy(data_dir: Path) -> None:
    train, test = read_u1(data_dir)
    rmse, mae = rmse_mae(Bias().fit(train), test)
    assert rmse == pytest.approx(0.9599, abs=0.005)  # Surprise BaselineOnly
    assert mae == pytest.approx(0.7616, abs=0.005)
    rmse, mae = rmse_mae(GlobalMean().fit(train), test)
    assert rmse == pytest.approx(1.1537, abs=0.001)
    assert mae == pytest.approx(0.9680, abs=0.001)
