"""The numba models' own maths: SVD's SGD step and shuffle, implicit ALS's CG solver, fold-in."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("numba")

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.errors import MissingExtraError  # noqa: E402
from movierec.models import get_class, load  # noqa: E402
from movierec.models.als import ImplicitALS, cg_half_sweep  # noqa: E402
from movierec.models.svd import SVD, sgd_epoch, shuffle  # noqa: E402


def halves(ds: Dataset, seed: int = 1) -> tuple[Dataset, Dataset]:
    """A random 80/20 split of the rows whose test users and items all occur in train."""
    gen = np.random.default_rng(seed)
    frame = ds.ratings
    test = gen.random(len(frame)) < 0.2
    train = frame[~test]
    held = frame[test & frame.user_id.isin(train.user_id) & frame.item_id.isin(train.item_id)]
    return (Dataset(train, name="train", rating_scale=(1.0, 5.0)),
            Dataset(held, name="test", rating_scale=(1.0, 5.0)))


# --- SVD ------------------------------------------------------------------------------------------
def test_sgd_step_is_the_textbook_update() -> None:
    p = np.array([[0.1, -0.2]], dtype=np.float32)
    q = np.array([[0.3, 0.4]], dtype=np.float32)
    bu, bi = np.array([0.2], np.float32), np.array([-0.1], np.float32)
    lr, reg, reg_b, mu, r = 0.05, 0.1, 0.02, 3.5, 4.0
    err = r - (mu + 0.2 - 0.1 + (0.1 * 0.3 - 0.2 * 0.4))
    want_p = p[0] + lr * (err * q[0] - reg * p[0])
    want_q = q[0] + lr * (err * p[0] - reg * q[0])
    mse = sgd_epoch(np.zeros(1, np.int32), np.zeros(1, np.int32), np.array([r], np.float32),
                    np.float32(mu), p, q, bu, bi, np.float32(lr), np.float32(reg),
                    np.float32(reg_b))
    assert mse == pytest.approx(err**2, rel=1e-5)
    np.testing.assert_allclose(p[0], want_p, rtol=1e-5)
    np.testing.assert_allclose(q[0], want_q, rtol=1e-5)
    assert bu[0] == pytest.approx(0.2 + lr * (err - reg_b * 0.2), rel=1e-5)
    assert bi[0] == pytest.approx(-0.1 + lr * (err + reg_b * 0.1), rel=1e-5)


def test_shuffle_permutes_rows_together_and_is_seeded() -> None:
    n = 1000
    users = np.arange(n, dtype=np.int32)
    items = users * 2
    ratings = users.astype(np.float32) / 10
    shuffle(users, items, ratings, np.uint64(7))
    assert sorted(users.tolist()) == list(range(n)) and not np.array_equal(users, np.arange(n))
    np.testing.assert_array_equal(items, users * 2)
    np.testing.assert_allclose(ratings, users / 10, rtol=1e-6)
    again = np.arange(n, dtype=np.int32)
    shuffle(again, again.copy(), again.astype(np.float32), np.uint64(7))
    np.testing.assert_array_equal(again, users)
    other = np.arange(n, dtype=np.int32)
    shuffle(other, other.copy(), other.astype(np.float32), np.uint64(8))
    assert not np.array_equal(other, users)


def test_svd_learns_low_rank_ratings(low_rank: Dataset) -> None:
    train, test = halves(low_rank)
    model = SVD(embedding_size=4, epochs=60, learning_rate=0.02, reg=0.02).fit(
        train, rng=0, progress=False)
    pred = model.predict(test.ratings["user_id"].to_numpy(), test.ratings["item_id"].to_numpy())
    rmse = float(np.sqrt(np.mean((pred - test.ratings["rating"].to_numpy()) ** 2)))
    bias = get_class("bias")().fit(train, progress=False)
    base = bias.predict(test.ratings["user_id"].to_numpy(), test.ratings["item_id"].to_numpy())
    base_rmse = float(np.sqrt(np.mean((base - test.ratings["rating"].to_numpy()) ** 2)))
    assert rmse < 0.85 * base_rmse
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]


def test_svd_does_not_reorder_the_training_data(low_rank: Dataset) -> None:
    before = low_rank.ratings.copy()
    SVD(embedding_size=2, epochs=2).fit(low_rank, rng=0, progress=False)
    pd.testing.assert_frame_equal(low_rank.ratings, before)


def test_svd_early_stopping_keeps_the_best_epoch(low_rank: Dataset) -> None:
    train, valid = halves(low_rank, seed=3)
    # A large step overfits fast, so validation RMSE turns up well before 200 epochs.
    model = SVD(embedding_size=16, epochs=200, learning_rate=0.05, reg=0.0, patience=2).fit(
        train, valid, rng=0, progress=False)
    hist = [h["valid_metric"] for h in model.history_]
    assert len(hist) < 200 and {h["metric"] for h in model.history_} == {"rmse"}
    assert model.best_epoch_ == int(np.argmin(hist)) + 1
    assert len(hist) - model.best_epoch_ == 2
    pred = model.predict(valid.ratings["user_id"].to_numpy(), valid.ratings["item_id"].to_numpy())
    rmse = float(np.sqrt(np.mean((pred - valid.ratings["rating"].to_numpy()) ** 2)))
    assert rmse == pytest.approx(min(hist), rel=1e-4)


def test_svd_same_seed_same_model_and_fold_in(low_rank: Dataset, tmp_path: Path) -> None:
    a = SVD(embedding_size=4, epochs=5).fit(low_rank, rng=3, progress=False)
    b = SVD(embedding_size=4, epochs=5).fit(low_rank, rng=3, progress=False)
    c = SVD(embedding_size=4, epochs=5).fit(low_rank, rng=4, progress=False)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    assert not np.array_equal(a.user_factors_, c.user_factors_)
    users = low_rank.user_vocab.index
    back = load(a.save(tmp_path / "svd"))
    np.testing.assert_array_equal(back.score(users), a.score(users))
    # Fold-in: the ridge solution for a training user's own ratings ranks like the fitted user
    # (on a converged model).
    a = SVD(embedding_size=4, epochs=60, learning_rate=0.02, reg=0.05).fit(
        low_rank, rng=3, progress=False)
    back = load(a.save(tmp_path / "svd-converged"))
    rows = low_rank.ratings[low_rank.ratings.user_id == users[0]]
    codes = a.item_vocab_.codes(rows["item_id"].to_numpy())
    new = a._score_history(codes, rows["rating"].to_numpy())
    old = a.score(users[:1])[0]
    assert np.corrcoef(new, old)[0, 1] > 0.9
    np.testing.assert_array_equal(new, back._score_history(codes, rows["rating"].to_numpy()))


def test_svd_rejects_bad_parameters() -> None:
    for bad in ({"embedding_size": 0}, {"learning_rate": 0}, {"reg": -1}, {"patience": 0},
                {"fold_in_reg": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SVD(**bad)


# --- implicit ALS ---------------------------------------------------------------------------------
def exact_rows(c1: np.ndarray, y: np.ndarray, reg: float) -> np.ndarray:
    """Exact solutions of each row's normal equations; c1 is a dense rows × items array of c − 1
    (0 where the row has no interaction)."""
    out = []
    for row in c1:
        idx = np.flatnonzero(row)
        yi = y[idx].astype(np.float64)
        a = y.T @ y + (yi * row[idx, None]).T @ yi + reg * np.eye(y.shape[1])
        out.append(np.linalg.solve(a, yi.T @ (1.0 + row[idx])))
    return np.array(out)


def test_cg_converges_to_the_exact_normal_equations() -> None:
    gen = np.random.default_rng(0)
    dense = (gen.random((12, 20)) < 0.3) * gen.uniform(0.5, 3.0, (12, 20))
    dense[:, 0] = 1.0  # every row has an interaction
    import scipy.sparse as sp

    m = sp.csr_matrix(dense.astype(np.float32))
    y = gen.normal(size=(20, 4)).astype(np.float32)
    x = np.zeros((12, 4), dtype=np.float32)
    cg_half_sweep(m.indptr, m.indices, m.data, x, y, (y.T @ y).astype(np.float32),
                  np.float32(0.5), 50)
    np.testing.assert_allclose(x, exact_rows(dense, y.astype(np.float64), 0.5), rtol=1e-3,
                               atol=1e-4)


def test_ials_ranks_and_folds_in_exactly(low_rank: Dataset, tmp_path: Path) -> None:
    model = ImplicitALS(embedding_size=8, epochs=10, reg=0.1, alpha=5.0).fit(
        low_rank, rng=0, progress=False)
    users = low_rank.user_vocab.index
    rows = low_rank.ratings[low_rank.ratings.user_id == users[1]]
    codes = model.item_vocab_.codes(rows["item_id"].to_numpy())
    c1 = np.zeros((1, model.n_items))
    c1[0, codes] = 5.0
    want = exact_rows(c1, model.item_factors_.astype(np.float64), 0.1)[0]
    got = model._score_history(codes, rows["rating"].to_numpy())
    np.testing.assert_allclose(got, model.item_factors_ @ want, rtol=1e-4, atol=1e-5)
    # The user's own items score higher than the rest, on average, after fitting.
    own = model.score(users[1:2])[0]
    mask = np.zeros(model.n_items, bool)
    mask[codes] = True
    assert own[mask].mean() > own[~mask].mean()
    back = load(model.save(tmp_path / "ials"))
    np.testing.assert_array_equal(back.score(users), model.score(users))
    assert not model.rates


def test_ials_rating_feedback_weighs_by_rating(low_rank: Dataset) -> None:
    binary = ImplicitALS(embedding_size=4, epochs=3).fit(low_rank, rng=0, progress=False)
    rated = ImplicitALS(embedding_size=4, epochs=3, feedback="rating").fit(
        low_rank, rng=0, progress=False)
    assert not np.allclose(binary.user_factors_, rated.user_factors_)
    with pytest.raises(ValueError, match="feedback"):
        ImplicitALS(feedback="clicks")


def test_missing_numba_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in ("movierec.models.svd", "movierec.models.als"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` raise ImportError
    for name in ("svd", "ials"):
        with pytest.raises(MissingExtraError, match=r"movierec\[numba\]"):
            get_class(name)
