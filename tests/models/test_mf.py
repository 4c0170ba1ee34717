"""MF's own maths: the prediction formula, sigmoid range, fallbacks, fold-in, ML-100K accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.models.mf import MF  # noqa: E402

QUICK = {"embedding_size": 4, "epochs": 30, "batch_size": 64, "learning_rate": 0.02,
         "reg": 0.01, "device": "cpu"}


@pytest.fixture(scope="module")
def fitted(low_rank: Dataset) -> MF:
    return MF(**QUICK).fit(low_rank, rng=0, progress=False)


def parts(model: MF) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    m = model.module_
    t = lambda x: x.detach().cpu().numpy().astype(np.float64)  # noqa: E731
    return (float(m.offset), t(m.user_bias.weight).ravel(), t(m.item_bias.weight).ravel(),
            t(m.user_factors.weight), t(m.item_factors.weight))


def test_prediction_is_mu_plus_biases_plus_dot(fitted: MF, low_rank: Dataset) -> None:
    mu, b_u, b_i, p, q = parts(fitted)
    assert mu == pytest.approx(low_rank.ratings["rating"].mean(), rel=1e-6)
    users = low_rank.user_vocab.index[[0, 3, 7, 7]]
    items = low_rank.item_vocab.index[[1, 5, 2, 9]]
    u, i = fitted.user_vocab_.codes(users), fitted.item_vocab_.codes(items)
    by_hand = mu + b_u[u] + b_i[i] + (p[u] * q[i]).sum(1)
    np.testing.assert_allclose(fitted.predict(users, items), np.clip(by_hand, 1, 5), rtol=1e-5)
    block = fitted.score(users[:2])
    np.testing.assert_allclose(block, mu + b_u[u[:2], None] + b_i[None, :] + p[u[:2]] @ q.T,
                               rtol=1e-5, atol=1e-5)


def test_training_fits_the_ratings(fitted: MF, low_rank: Dataset) -> None:
    r = low_rank.ratings
    pred = fitted.predict(r["user_id"].to_numpy(), r["item_id"].to_numpy())
    rmse = np.sqrt(np.mean((pred - r["rating"].to_numpy()) ** 2))
    assert rmse < 0.6 * r["rating"].std()


def test_sigmoid_keeps_predictions_in_range(low_rank: Dataset) -> None:
    model = MF(**{**QUICK, "sigmoid": True, "learning_rate": 0.2, "reg": 0.0}).fit(
        low_rank, rng=0, progress=False)
    assert model.module_.scale == (1.0, 5.0)
    scores = model.score(low_rank.user_vocab.index)
    assert (scores >= 1.0).all() and (scores <= 5.0).all()
    # Unclipped predictions of every pair stay inside (1, 5) through the sigmoid itself.
    uu, ii = np.meshgrid(np.arange(model.n_users), np.arange(model.n_items), indexing="ij")
    raw = model._predict(uu.ravel(), ii.ravel())
    assert raw.min() >= 1.0 and raw.max() <= 5.0


def test_unknown_users_and_items_fall_back(fitted: MF, low_rank: Dataset) -> None:
    mu, b_u, b_i, _, _ = parts(fitted)
    user, item = low_rank.user_vocab.index[2], low_rank.item_vocab.index[4]
    u, i = fitted.user_vocab_.codes([user])[0], fitted.item_vocab_.codes([item])[0]
    pred = fitted.predict(np.array([999, user, 999]), np.array([item, 999, 998]))
    np.testing.assert_allclose(pred, np.clip([mu + b_i[i], mu + b_u[u], mu], 1, 5), rtol=1e-5)


def test_fold_in_matches_the_fitted_user(fitted: MF, low_rank: Dataset) -> None:
    counts = low_rank.ratings["user_id"].value_counts()
    correlations = []
    for user in counts.index[:5]:
        rows = low_rank.ratings[low_rank.ratings["user_id"] == user]
        items = fitted.item_vocab_.codes(rows["item_id"].to_numpy())
        folded = fitted._score_history(np.append(items, -1), np.append(rows["rating"], 3.0))
        assert folded.shape == (fitted.n_items,) and folded.dtype == np.float32
        own = fitted.score([user])[0]
        correlations.append(np.corrcoef(folded, own)[0, 1])
    assert min(correlations) > 0.9


def test_bpr_ranks_and_still_predicts(low_rank: Dataset) -> None:
    model = MF(**{**QUICK, "loss": "bpr", "epochs": 5}).fit(low_rank, rng=0, progress=False)
    assert model.objective == "ranking"
    pred = model.predict(low_rank.user_vocab.index[:3], low_rank.item_vocab.index[:3])
    assert np.isfinite(pred).all() and ((pred >= 1) & (pred <= 5)).all()


@pytest.mark.slow
def test_ml100k_u1_rmse(data_dir: Path) -> None:
    from movierec.data import load
    from movierec.split import predefined_split

    split = predefined_split(load("ml-100k", data_dir=data_dir), "u1", data_dir=data_dir)
    model = MF(device="cpu").fit(split.train, rng=0, progress=False)
    test = split.test.ratings
    pred = model.predict(test["user_id"].to_numpy(), test["item_id"].to_numpy())
    rmse = float(np.sqrt(np.mean((pred - test["rating"].to_numpy()) ** 2)))
    assert rmse <= 0.93, rmse
