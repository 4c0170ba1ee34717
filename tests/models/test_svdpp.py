"""SVD++'s own maths: the prediction equation, the implicit sum, training, persistence, fold-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.models.svdpp import SVDpp, SVDppModule  # noqa: E402

QUICK = {"embedding_size": 4, "epochs": 20, "batch_size": 256, "learning_rate": 0.03,
         "reg": 0.01, "reg_implicit": 0.01, "weight_decay": 0.0, "device": "cpu"}


@pytest.fixture(scope="module")
def low_rank(low_rank_factory) -> Dataset:
    """100 users x 40 items of rank-2 ratings."""
    return low_rank_factory(100, 40)


@pytest.fixture(scope="module")
def fitted(low_rank: Dataset) -> SVDpp:
    return SVDpp(**QUICK).fit(low_rank, rng=0, progress=False)


def weights(module: SVDppModule) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().astype(np.float64)
            for k, v in module.state_dict().items()}


def by_hand(w: dict[str, np.ndarray], history: sp.csr_matrix, u: np.ndarray, i: np.ndarray
            ) -> np.ndarray:
    """μ + b_u + b_i + q_i · (p_u + |N(u)|^-½ Σ_{j ∈ N(u)} y_j), one pair at a time."""
    out = []
    for uu, ii in zip(u, i, strict=True):
        items = history[uu].indices
        s = w["implicit_factors.weight"][items].sum(0) / np.sqrt(len(items))
        z = w["user_factors.weight"][uu] + s
        out.append(w["offset"] + w["user_bias.weight"][uu, 0] + w["item_bias.weight"][ii, 0]
                   + w["item_factors.weight"][ii] @ z)
    return np.array(out)


def test_forward_is_the_svdpp_equation() -> None:
    history = sp.csr_matrix(np.array([[1, 0, 1, 1], [0, 1, 0, 0], [1, 1, 1, 0]], np.float32))
    torch.manual_seed(0)
    module = SVDppModule(3, 4, embedding_size=3, global_mean=3.5, history=history)
    with torch.no_grad():
        for param in module.parameters():
            param.normal_()
    w = weights(module)
    u, i = np.array([0, 2, 1, 0, 2]), np.array([1, 3, 0, 0, 2])
    with torch.no_grad():
        pairs = module(torch.from_numpy(u), torch.from_numpy(i)).numpy()
        block = module.block(torch.tensor([2, 0]), None).numpy()
    np.testing.assert_allclose(pairs, by_hand(w, history, u, i), rtol=1e-5, atol=1e-5)
    uu, ii = np.meshgrid([2, 0], np.arange(4), indexing="ij")
    np.testing.assert_allclose(block, by_hand(w, history, uu.ravel(), ii.ravel()).reshape(2, 4),
                               rtol=1e-5, atol=1e-5)
    # The training penalty: the mean over ratings of each user's mean squared norm of y's.
    _, _, y_sq = module.user_terms(torch.tensor([0, 1, 0, 0]), penalty=True)
    y = w["implicit_factors.weight"]
    per_user = [(y[[0, 2, 3]] ** 2).sum(1).mean(), (y[[1]] ** 2).sum(1).mean()]
    assert y_sq is not None
    expected = np.mean(np.array(per_user)[[0, 1, 0, 0]])
    np.testing.assert_allclose(float(y_sq.detach()), expected, rtol=1e-5)


def test_implicit_sum_of_an_unknown_user_is_zero() -> None:
    history = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], np.float32))
    module = SVDppModule(2, 3, embedding_size=4, global_mean=3.0, history=history)
    with torch.no_grad():
        implicit = module.implicit(torch.tensor([-1, 1, -1])).numpy()
        z, b_u, _ = module.user_terms(torch.tensor([-1]))
    assert implicit.shape == (3, 4)
    assert (implicit[[0, 2]] == 0).all() and (implicit[1] != 0).any()
    assert (z.numpy() == 0).all() and float(b_u) == 0.0


def test_predictions_match_the_hand_formula_and_fall_back(fitted: SVDpp, low_rank: Dataset
                                                          ) -> None:
    w = weights(fitted.module_)
    users = low_rank.user_vocab.index[[0, 3, 7, 7]]
    items = low_rank.item_vocab.index[[1, 5, 2, 9]]
    u, i = fitted.user_vocab_.codes(users), fitted.item_vocab_.codes(items)
    expected = np.clip(by_hand(w, fitted.seen_, u, i), 1, 5)
    np.testing.assert_allclose(fitted.predict(users, items), expected, rtol=1e-5)
    # Unknown user: μ + b_i (no p, no implicit sum); unknown item: μ + b_u; both unknown: μ.
    pred = fitted.predict(np.array([999, users[0], 999]), np.array([items[0], 999, 998]))
    mu, b_u, b_i = w["offset"], w["user_bias.weight"][:, 0], w["item_bias.weight"][:, 0]
    np.testing.assert_allclose(pred, np.clip([mu + b_i[i[0]], mu + b_u[u[0]], mu], 1, 5),
                               rtol=1e-5)


def test_training_reduces_the_training_rmse(low_rank: Dataset) -> None:
    r = low_rank.ratings
    users, items, target = r["user_id"].to_numpy(), r["item_id"].to_numpy(), r["rating"]

    def rmse(model: SVDpp) -> float:
        return float(np.sqrt(np.mean((model.predict(users, items) - target.to_numpy()) ** 2)))

    one = SVDpp(**{**QUICK, "epochs": 1}).fit(low_rank, rng=0, progress=False)
    many = SVDpp(**QUICK).fit(low_rank, rng=0, progress=False)
    assert rmse(many) < 0.6 * target.std() < rmse(one)
    assert many.history_[-1]["train_loss"] < many.history_[0]["train_loss"]


def test_save_load_round_trip(fitted: SVDpp, low_rank: Dataset, tmp_path: Path) -> None:
    fitted.save(tmp_path / "svdpp")
    loaded = SVDpp.load(tmp_path / "svdpp")
    assert isinstance(loaded, SVDpp) and loaded.params() == fitted.params()
    # N(u) is rebuilt from the saved seen matrix, not stored twice among the weights.
    assert "indptr" not in loaded.module_.state_dict()
    np.testing.assert_array_equal(loaded.module_.indices.numpy(),
                                  fitted.module_.indices.numpy())
    users = low_rank.user_vocab.index
    np.testing.assert_array_equal(loaded.score(users), fitted.score(users))
    r = low_rank.ratings
    np.testing.assert_array_equal(
        loaded.predict(r["user_id"].to_numpy(), r["item_id"].to_numpy()),
        fitted.predict(r["user_id"].to_numpy(), r["item_id"].to_numpy()))


def test_fold_in_uses_the_implicit_sum(fitted: SVDpp) -> None:
    w = weights(fitted.module_)
    codes = np.array([0, 3, 5, -1])
    # A huge ridge λ pins p and b at 0: only μ + b_i + q_i · s is left.
    model = SVDpp(**{**QUICK, "fold_in_reg": 1e12})
    model.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    scores = model._score_history(codes, np.array([5.0, 1.0, 4.0, 3.0]))
    s = w["implicit_factors.weight"][[0, 3, 5]].sum(0) / np.sqrt(3)
    expected = w["offset"] + w["item_bias.weight"][:, 0] + w["item_factors.weight"] @ s
    assert scores.shape == (fitted.n_items,) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)


def test_fold_in_matches_the_fitted_user(fitted: SVDpp, low_rank: Dataset) -> None:
    counts = low_rank.ratings["user_id"].value_counts()
    correlations = []
    for user in counts.index[:5]:
        rows = low_rank.ratings[low_rank.ratings["user_id"] == user]
        items = fitted.item_vocab_.codes(rows["item_id"].to_numpy())
        folded = fitted._score_history(items, rows["rating"].to_numpy())
        correlations.append(np.corrcoef(folded, fitted.score([user])[0])[0, 1])
    assert min(correlations) > 0.9


def test_bpr_ranks_and_still_predicts(low_rank: Dataset) -> None:
    model = SVDpp(**{**QUICK, "loss": "bpr", "epochs": 3}).fit(low_rank, rng=0, progress=False)
    assert model.objective == "ranking"
    pred = model.predict(low_rank.user_vocab.index[:3], low_rank.item_vocab.index[:3])
    assert np.isfinite(pred).all() and ((pred >= 1) & (pred <= 5)).all()


def test_reg_implicit_is_validated() -> None:
    with pytest.raises(ValueError, match="reg_implicit"):
        SVDpp(reg_implicit=-0.1)
