"""I-AutoRec's own maths: masked loss, shapes, sparse = dense scoring, fallbacks, fold-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.models.autorec import AutoRec, AutoRecModule, dense_rows, masked_mse  # noqa: E402

QUICK = {"hidden_size": 16, "epochs": 30, "batch_size": 8, "learning_rate": 0.01, "reg": 1.0,
         "device": "cpu"}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def low_rank(low_rank_factory) -> Dataset:
    """120 users x 50 items of rank-2 ratings."""
    return low_rank_factory(120, 50)


@pytest.fixture(scope="module")
def fitted(low_rank: Dataset) -> AutoRec:
    return AutoRec(**QUICK).fit(low_rank, rng=0, progress=False)


def rmse(model: AutoRec, data: Dataset) -> float:
    r = data.ratings
    pred = model.predict(r["user_id"].to_numpy(), r["item_id"].to_numpy())
    return float(np.sqrt(np.mean((pred - r["rating"].to_numpy()) ** 2)))


def test_masked_mse_ignores_unobserved_entries() -> None:
    pred = torch.tensor([[1.0, 2.0, 9.0], [4.0, -7.0, 3.0]])
    target = torch.tensor([[2.0, 0.0, 5.0], [4.0, 0.0, 1.0]])
    mask = torch.tensor([[True, False, True], [True, False, True]])
    # Observed errors: (1-2)², (9-5)², (4-4)², (3-1)² = 1, 16, 0, 4 over 4 entries.
    assert float(masked_mse(pred, target, mask)) == pytest.approx(21 / 4)
    # Changing predictions at unobserved entries changes nothing.
    other = pred.clone()
    other[:, 1] = 100.0
    assert float(masked_mse(other, target, mask)) == pytest.approx(21 / 4)
    assert float(masked_mse(pred, target, torch.zeros_like(mask))) == 0.0


def test_dense_rows_follow_the_sparsity_structure() -> None:
    m = sp.csr_matrix((np.array([4.0, 0.0, 2.0], dtype=np.float32),
                       (np.array([0, 2, 2]), np.array([1, 0, 3]))), shape=(3, 4))
    values, mask = dense_rows(m, np.array([2, 0]))
    np.testing.assert_array_equal(values.numpy(), [[0, 0, 0, 2], [0, 4, 0, 0]])
    # The stored rating 0 at (2, 0) counts as observed.
    np.testing.assert_array_equal(mask.numpy(), [[True, False, False, True],
                                                 [False, True, False, False]])


def test_batch_loss_is_masked_mse_plus_scaled_penalty(fitted: AutoRec) -> None:
    module = fitted.module_
    items = np.array([0, 3, 7])
    ratings, mask = dense_rows(fitted.item_ratings_, items)
    batch = {"item": torch.from_numpy(items), "rating": ratings, "mask": mask}
    with torch.no_grad():
        module.eval()
        loss = float(fitted.batch_loss(module, batch))
        v, mu = module.encoder.weight.numpy(), module.encoder.bias.numpy()
        w, b = module.decoder.weight.numpy(), module.decoder.bias.numpy()
    x, m = ratings.numpy().astype(np.float64), mask.numpy()
    out = (1 / (1 + np.exp(-(x @ v.T + mu)))) @ w.T + b
    by_hand = ((out - x)[m] ** 2).mean()
    by_hand += QUICK["reg"] / (2 * fitted.n_ratings_) * ((v**2).sum() + (w**2).sum())
    assert loss == pytest.approx(by_hand, rel=1e-5)


def test_module_shapes() -> None:
    torch.manual_seed(0)
    module = AutoRecModule(n_users=7, hidden_size=3, global_mean=3.5)
    rows = torch.rand(5, 7)
    assert module.encode(rows).shape == (5, 3)
    assert module(rows).shape == (5, 7)
    assert module.decode(module.encode(rows), torch.tensor([6, 0])).shape == (5, 2)
    # Zero input: the code is σ(μ) = 0.5 and the output starts at W·0.5 + b with b = μ_global.
    np.testing.assert_allclose(module.decoder.bias.detach().numpy(), 3.5)


def test_scores_are_the_reconstruction(fitted: AutoRec, low_rank: Dataset) -> None:
    users = low_rank.user_vocab.index[:5]
    scores = fitted.score(users)
    assert scores.shape == (5, fitted.n_items) and scores.dtype == np.float32
    dense, _ = dense_rows(fitted.item_ratings_, np.arange(fitted.n_items))
    with torch.no_grad():
        fitted.module_.eval()
        recon = fitted.module_(dense).numpy()  # [items, users], the dense path
    np.testing.assert_allclose(scores, recon[:, :5].T, rtol=1e-4, atol=1e-4)
    u, i = np.meshgrid(users, low_rank.item_vocab.index, indexing="ij")
    pred = fitted.predict(u.ravel(), i.ravel()).reshape(u.shape)
    np.testing.assert_allclose(pred, np.clip(recon[:, :5].T, 1, 5), rtol=1e-4, atol=1e-4)
    assert fitted.item_vectors().shape == (fitted.n_items, QUICK["hidden_size"])


def test_training_reduces_rmse(low_rank: Dataset, fitted: AutoRec) -> None:
    short = AutoRec(**{**QUICK, "epochs": 1}).fit(low_rank, rng=0, progress=False)
    losses = [h["train_loss"] for h in fitted.history_]
    assert losses[-1] < 0.5 * losses[0]
    assert rmse(fitted, low_rank) < 0.8 * rmse(short, low_rank)
    assert rmse(fitted, low_rank) < 0.6 * low_rank.ratings["rating"].std()


def test_unknown_users_and_items_fall_back_to_means(fitted: AutoRec, low_rank: Dataset) -> None:
    r = low_rank.ratings
    user, item = low_rank.user_vocab.index[2], low_rank.item_vocab.index[4]
    pred = fitted.predict(np.array([999, user, 999]), np.array([item, 999, 998]))
    expected = [r.loc[r["item_id"] == item, "rating"].mean(),
                r.loc[r["user_id"] == user, "rating"].mean(), r["rating"].mean()]
    np.testing.assert_allclose(pred, expected, rtol=1e-5)


def test_early_stopping_on_validation(low_rank: Dataset) -> None:
    gen = np.random.default_rng(1)
    is_valid = gen.random(low_rank.n_ratings) < 0.1
    train = Dataset(low_rank.ratings[~is_valid], name="t", rating_scale=(1.0, 5.0))
    valid = Dataset(low_rank.ratings[is_valid], name="v", rating_scale=(1.0, 5.0))
    model = AutoRec(**{**QUICK, "epochs": 8, "patience": 2}).fit(train, valid, rng=0,
                                                                 progress=False)
    metrics = [h["valid_metric"] for h in model.history_]
    assert all(h["metric"] == "rmse" for h in model.history_)
    assert rmse(model, valid) == pytest.approx(min(metrics), rel=1e-5)
    assert model.best_epoch_ == int(np.argmin(metrics)) + 1


def test_fold_in_matches_the_fitted_user(fitted: AutoRec, low_rank: Dataset) -> None:
    counts = low_rank.ratings["user_id"].value_counts()
    for user in counts.index[:4]:
        rows = low_rank.ratings[low_rank.ratings["user_id"] == user]
        items = fitted.item_vocab_.codes(rows["item_id"].to_numpy())
        folded = fitted._score_history(np.append(items, -1), np.append(rows["rating"], 3.0))
        assert folded.shape == (fitted.n_items,) and folded.dtype == np.float32
        assert np.corrcoef(folded, fitted.score([user])[0])[0, 1] > 0.9
    # No known item: the average training user's scores (the decoder is linear in its row).
    average = fitted.score(low_rank.user_vocab.index).mean(axis=0)
    empty = fitted._score_history(np.array([-1]), np.array([4.0]))
    np.testing.assert_allclose(empty, average, rtol=1e-4, atol=1e-4)
    # One rating: the bias absorbs it, so the ranking stays the average user's (not a constant).
    one = fitted._score_history(np.array([3]), np.array([5.0]))
    assert one.std() > 0.1
    np.testing.assert_allclose(one - one.mean(), average - average.mean(), rtol=1e-3, atol=1e-3)


def test_save_load_round_trip(fitted: AutoRec, low_rank: Dataset, tmp_path: Path) -> None:
    fitted.save(tmp_path / "autorec")
    loaded = AutoRec.load(tmp_path / "autorec")
    assert isinstance(loaded, AutoRec) and loaded.params() == fitted.params()
    users = low_rank.user_vocab.index
    np.testing.assert_array_equal(loaded.score(users), fitted.score(users))
    u, i = low_rank.ratings["user_id"].to_numpy(), low_rank.ratings["item_id"].to_numpy()
    np.testing.assert_array_equal(loaded.predict(u, i[::-1].copy()),
                                  fitted.predict(u, i[::-1].copy()))
    history = (np.array([0, 5, 9]), np.array([5.0, 1.0, 4.0]))
    np.testing.assert_array_equal(loaded._score_history(*history),
                                  fitted._score_history(*history))


@pytest.mark.parametrize("param, value", [("hidden_size", 0), ("reg", -1.0), ("dropout", 1.0),
                                          ("batch_size", 2.5), ("patience", 0)])
def test_invalid_params_name_the_field(param: str, value: object) -> None:
    with pytest.raises(ValueError, match=param):
        AutoRec(**{param: value})


def test_hidden_codes_are_reused_until_the_encoder_changes(low_rank: Dataset) -> None:
    model = AutoRec(hidden_size=8, epochs=2, batch_size=16, device="cpu").fit(
        low_rank, rng=0, progress=False)
    users = np.arange(5)
    first = model._score(users)
    with model._eval() as module:
        h1 = model.hidden_codes(module)
        assert model.hidden_codes(module) is h1  # cached: no second encode
        module.encoder.weight.mul_(0.5)  # an in-place change, as an optimizer step makes
        h2 = model.hidden_codes(module)
    assert h2 is not h1 and not torch.allclose(h1, h2)
    assert not np.allclose(model._score(users), first)
    # Refitting starts from fresh codes: the same seed gives the first scores again.
    model.fit(low_rank, rng=0, progress=False)
    np.testing.assert_allclose(model._score(users), first, rtol=1e-6)
