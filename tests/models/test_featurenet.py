"""FeatureNet's own maths: feature encoding by hand, the network's shapes, fallbacks, ML-100K."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

import torch  # noqa: E402

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.models.featurenet import (  # noqa: E402
    FeatureNet,
    FeatureNetModule,
    encode_items,
    encode_users,
    feature_names,
    item_feature_spec,
    user_feature_spec,
)

QUICK = {"embedding_size": 4, "hidden_size": 8, "epochs": 5, "batch_size": 8,
         "learning_rate": 0.01, "device": "cpu", "patience": None}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture
def side() -> Dataset:
    """Three users rate three items; user 4 and item 40 exist only in the side tables."""
    ratings = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 3], "item_id": [10, 20, 20, 30, 10, 30],
                            "rating": [5.0, 3.0, 4.0, 2.0, 1.0, 4.0]})
    users = pd.DataFrame({"user_id": [1, 2, 3, 4], "age": [20, 30, 40, 99],
                          "gender": ["M", "F", "M", "X"],
                          "occupation": ["writer", "artist", "writer", "pilot"],
                          "zip": ["1", "2", "3", "4"]})
    items = pd.DataFrame({"item_id": [10, 20, 30, 40], "title": ["a", "b", "c", "d"],
                          "year": [1990.0, np.nan, 2000.0, 1900.0],
                          "genres": [("Drama",), ("Comedy", "Drama"), (), ("Western",)]})
    return Dataset(ratings, items=items, users=users, name="side", rating_scale=(1.0, 5.0))


@pytest.fixture
def ratings_only(side: Dataset) -> Dataset:
    return Dataset(side.ratings, name="plain", rating_scale=(1.0, 5.0))


def test_user_encoding_by_hand(side: Dataset) -> None:
    spec = user_feature_spec(side.users, side.user_vocab.index)
    # Ages 20, 30, 40 of the training users: mean 30, population std sqrt(200/3).
    std = np.sqrt(200 / 3)
    assert spec == {"age": {"kind": "number", "mean": 30.0, "std": pytest.approx(std)},
                    "gender": ["F", "M"], "occupation": ["artist", "writer"]}
    assert feature_names(spec, "user") == ["age", "gender=F", "gender=M", "occupation=artist",
                                           "occupation=writer"]
    feats = encode_users(side.users, np.array([1, 2, 3, 4, 5]), spec)
    expected = np.array([
        [-10 / std, 0, 1, 0, 1],
        [0, 1, 0, 1, 0],
        [10 / std, 0, 1, 0, 1],
        [69 / std, 0, 0, 0, 0],  # gender X and occupation pilot are unseen: zeros
        [0, 0, 0, 0, 0],  # user 5 is missing from the table: mean age, no categories
    ], dtype=np.float32)
    np.testing.assert_allclose(feats, expected, rtol=1e-6, atol=1e-7)
    assert feats.dtype == np.float32


def test_ml1m_age_groups_are_one_hot() -> None:
    users = pd.DataFrame({"user_id": [1, 2, 3], "age": [18, 25, 18], "gender": ["F", "M", "M"],
                          "occupation": ["writer", "writer", "lawyer"]})
    spec = user_feature_spec(users, np.array([1, 2, 3]))
    assert spec["age"] == {"kind": "groups", "values": [18.0, 25.0]}
    feats = encode_users(users, np.array([2, 9]), spec)
    np.testing.assert_array_equal(feats[:, :2], [[0, 1], [0, 0]])
    assert feature_names(spec, "user")[:2] == ["age=18", "age=25"]
    assert user_feature_spec(users, np.array([1, 2, 3]), age_encoding="number")["age"]["kind"] \
        == "number"


def test_item_encoding_by_hand(side: Dataset) -> None:
    spec = item_feature_spec(side.items, side.item_vocab.index)
    # Only training items shape the encoding: Western (item 40 only) is not in the vocabulary.
    assert spec == {"genres": ["Comedy", "Drama"], "year": {"mean": 1995.0, "std": 5.0}}
    assert feature_names(spec, "item") == ["genre=Comedy", "genre=Drama", "year"]
    feats = encode_items(side.items, np.array([10, 20, 30, 40, 50]), spec)
    expected = np.array([[0, 1, -1], [1, 1, 0], [0, 0, 1], [0, 0, -19], [0, 0, 0]],
                        dtype=np.float32)  # NaN year and missing item 50 → 0 (the mean)
    np.testing.assert_array_equal(feats, expected)


def test_release_month_is_one_hot_when_present(side: Dataset) -> None:
    items = side.items.assign(month=[3, np.nan, 12, 1])
    spec = item_feature_spec(items, side.item_vocab.index)
    assert spec["month"] is True
    feats = encode_items(items, np.array([10, 20]), spec)
    np.testing.assert_array_equal(feats[:, -12:].sum(1), [1, 0])
    assert feats[0, -12 + 2] == 1


def test_model_features_follow_training_codes(side: Dataset) -> None:
    model = FeatureNet(**QUICK).fit(side, rng=0, progress=False)
    assert model.user_feats_.shape == (3, 5) and model.item_feats_.shape == (3, 3)
    codes = model.user_vocab_.codes(np.array([2]))
    np.testing.assert_array_equal(model.user_feats_[codes[0], 1:], [1, 0, 1, 0])
    users, items = model.feature_names()
    assert users[0] == "age" and items[-1] == "year"
    off = FeatureNet(**QUICK, user_features=False, item_features=False).fit(side, rng=0,
                                                                           progress=False)
    assert off.user_feats_.shape == (3, 0) and off.item_feats_.shape == (3, 0)


def test_forward_shape_and_block_agree(side: Dataset) -> None:
    model = FeatureNet(**QUICK).fit(side, rng=0, progress=False)
    module = model.module_
    assert isinstance(module, FeatureNetModule)
    module.eval()
    users = torch.tensor([0, 1, 2, -1])
    with torch.no_grad():
        pairs = module(users.repeat_interleave(3), torch.arange(3).repeat(4))
        # A tiny chunk budget forces several user and item chunks through the broadcast path.
        block = module.block(users, None, chunk_elements=16)
        some = module.block(users, torch.tensor([2, 0]))
    assert pairs.shape == (12,) and block.shape == (4, 3) and some.shape == (4, 2)
    torch.testing.assert_close(block.reshape(-1), pairs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(some, block[:, [2, 0]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_batch_norm_per_param(side: Dataset, batch_norm: bool) -> None:
    model = FeatureNet(**{**QUICK, "batch_norm": batch_norm}).fit(side, rng=0, progress=False)
    has_bn = any(isinstance(m, torch.nn.BatchNorm1d) for m in model.module_.modules())
    assert has_bn is batch_norm


def test_unknown_user_gets_zero_embedding_and_mean_features(side: Dataset) -> None:
    model = FeatureNet(**QUICK).fit(side, rng=0, progress=False)
    module = model.module_
    part = module.user_part(torch.tensor([-1]))[0].detach().numpy()
    np.testing.assert_array_equal(part[:4], 0)
    np.testing.assert_allclose(part[4:], model.user_feats_.mean(0), rtol=1e-6, atol=1e-7)
    pred = model.predict(np.array([99, 1, 99]), np.array([10, 99, 99]))
    assert np.isfinite(pred).all() and ((pred >= 1) & (pred <= 5)).all()


@pytest.mark.parametrize("drop", ["users", "items", "both"])
def test_works_without_side_tables(side: Dataset, drop: str) -> None:
    ds = Dataset(side.ratings, users=None if drop in ("users", "both") else side.users,
                 items=None if drop in ("items", "both") else side.items, name="partial")
    model = FeatureNet(**QUICK).fit(ds, rng=0, progress=False)
    assert (model.user_feats_.shape[1] == 0) is (drop != "items")
    assert (model.item_feats_.shape[1] == 0) is (drop != "users")
    assert model.score(ds.user_vocab.index).shape == (3, 3)
    assert np.isfinite(model.predict(np.array([1, 2]), np.array([30, 10]))).all()


def test_save_load_same_predictions(side: Dataset, tmp_path: Path) -> None:
    model = FeatureNet(**QUICK, scale_ratings=True).fit(side, rng=0, progress=False)
    model.save(tmp_path / "fn")
    loaded = FeatureNet.load(tmp_path / "fn")
    assert isinstance(loaded, FeatureNet)
    assert loaded.user_spec_ == model.user_spec_ and loaded.item_spec_ == model.item_spec_
    users, items = np.array([1, 2, 3, 99, 1]), np.array([10, 30, 20, 10, 99])
    np.testing.assert_array_equal(model.predict(users, items), loaded.predict(users, items))
    np.testing.assert_array_equal(model.score(side.user_vocab.index),
                                  loaded.score(side.user_vocab.index))


def test_scaled_output_stays_in_range(side: Dataset) -> None:
    model = FeatureNet(**{**QUICK, "learning_rate": 0.2}, scale_ratings=True).fit(
        side, rng=0, progress=False)
    uu, ii = np.meshgrid(np.arange(model.n_users), np.arange(model.n_items), indexing="ij")
    raw = super(FeatureNet, model)._predict(uu.ravel(), ii.ravel())
    assert raw.min() >= 1.0 and raw.max() <= 5.0


def test_loss_falls_and_fits_ratings() -> None:
    gen = np.random.default_rng(0)
    n_users, n_items = 60, 40
    u, i = np.nonzero(gen.random((n_users, n_items)) < 0.5)
    genre = i % 2  # items of genre 1 are liked by odd users, disliked by even ones
    r = np.clip(3 + np.where(genre == u % 2, 1.5, -1.5) + gen.normal(0, 0.3, len(u)), 1, 5)
    items = pd.DataFrame({"item_id": np.arange(n_items), "year": 1990.0,
                          "genres": [("A",) if j % 2 else ("B",) for j in range(n_items)]})
    ds = Dataset(pd.DataFrame({"user_id": u, "item_id": i, "rating": r}), items=items,
                 rating_scale=(1.0, 5.0))
    model = FeatureNet(**{**QUICK, "epochs": 15, "batch_size": 64}).fit(ds, rng=0,
                                                                          progress=False)
    losses = [h["train_loss"] for h in model.history_]
    assert losses[-1] < 0.5 * losses[0]
    pred = model.predict(ds.ratings["user_id"].to_numpy(), ds.ratings["item_id"].to_numpy())
    assert np.sqrt(np.mean((pred - ds.ratings["rating"].to_numpy()) ** 2)) < 0.6 * r.std()


def test_invalid_params_name_themselves() -> None:
    for param, value in [("hidden_size", 0), ("batch_norm", 1), ("age_encoding", "years"),
                         ("user_features", "yes"), ("dropout", 1.0)]:
        with pytest.raises(ValueError, match=param):
            FeatureNet(**{param: value})


@pytest.mark.slow
def test_ml100k_u1_rmse(data_dir: Path) -> None:
    from movierec.data import load
    from movierec.split import predefined_split

    split = predefined_split(load("ml-100k", data_dir=data_dir), "u1", data_dir=data_dir)
    model = FeatureNet(device="cpu", epochs=8).fit(split.train, rng=0, progress=False)
    test = split.test.ratings
    pred = model.predict(test["user_id"].to_numpy(), test["item_id"].to_numpy())
    rmse = float(np.sqrt(np.mean((pred - test["rating"].to_numpy()) ** 2)))
    assert rmse <= 0.95


# --- optional parts: wide branch, feature factors, implicit feedback ------------------------------
PLAIN = {"wide_size": 0, "implicit": "none", "item_implicit": "none"}  # the first release's MLP
WIDE = {**QUICK, **PLAIN, "wide_size": 3}
VARIANTS = {
    "plain": PLAIN,
    "wide": {**PLAIN, "wide_size": 3},
    "wide+features": {**PLAIN, "wide_size": 3, "feature_factors": True},
    "implicit wide": {**PLAIN, "wide_size": 3, "implicit": "wide"},
    "implicit mlp": {**PLAIN, "implicit": "mlp"},
    "implicit both": {"wide_size": 3, "implicit": "both", "feature_factors": True},
    "item implicit": {"wide_size": 3, "implicit": "none", "item_implicit": "both"},
    "defaults": {},
}


def test_wide_branch_alone_is_biased_mf(side: Dataset) -> None:
    model = FeatureNet(**WIDE).fit(side, rng=0, progress=False)
    module = model.module_
    assert isinstance(module, FeatureNetModule)
    with torch.no_grad():  # silence the MLP: its output layer is then exactly 0
        module.out.weight.zero_()
        module.out.bias.zero_()
    module.eval()
    u, i = torch.tensor([0, 1, 2, 2, -1]), torch.tensor([0, 1, 2, -1, 1])
    p, q = module.wide_user.weight.detach(), module.wide_item.weight.detach()
    b_u, b_i = module.user_bias.weight.detach()[:, 0], module.item_bias.weight.detach()[:, 0]
    mu = model.global_mean_
    expected = [mu + b_u[a] + b_i[b] + p[a] @ q[b] for a, b in zip(u[:3], i[:3], strict=True)]
    expected += [mu + b_u[2], mu + b_i[1]]  # unknown item / user: zero factors and bias
    with torch.no_grad():
        got = module(u, i)
    torch.testing.assert_close(got, torch.stack(expected).float(), rtol=1e-5, atol=1e-6)
    assert abs(float(module.offset) - mu) < 1e-6


def test_implicit_bag_is_the_users_normalized_item_sum(side: Dataset) -> None:
    model = FeatureNet(**{**WIDE, "implicit": "both"}).fit(side, rng=0, progress=False)
    module = model.module_
    y = module.bags["user"].factors.weight.detach().numpy()
    seen = model.seen_.tocsr()
    users = np.array([2, 0, 1, 0])
    with torch.no_grad():
        side_u = module.users(torch.from_numpy(users))
        wide = module.wide_user.weight.detach().numpy()[users]
    for row, code in enumerate(users):
        items = seen.indices[seen.indptr[code]:seen.indptr[code + 1]]
        s = y[items].sum(0) / np.sqrt(len(items))
        np.testing.assert_allclose(side_u.factors[row].numpy(), wide[row] + s, rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(side_u.mlp[row, -3:].numpy(), s, rtol=1e-5, atol=1e-6)
    # Users 1 and 3 (codes 0, 2) rated different items, so their bags differ; an unknown user
    # has an empty bag.
    assert not np.allclose(side_u.mlp[0, -3:].numpy(), side_u.mlp[1, -3:].numpy())
    with torch.no_grad():
        np.testing.assert_array_equal(module.users(torch.tensor([-1])).mlp[0, -3:].numpy(), 0)


def test_implicit_bag_follows_a_changed_history(side: Dataset) -> None:
    model = FeatureNet(**QUICK, implicit="mlp").fit(side, rng=0, progress=False)
    before = model.module_.user_part(torch.tensor([0])).detach()
    # User 1 now rates item 30 instead of 20: same items count, another bag.
    ratings = side.ratings.copy()
    ratings.loc[1, "item_id"] = 30
    other = FeatureNet(**QUICK, implicit="mlp").fit(Dataset(ratings, items=side.items,
                                                            users=side.users), rng=0,
                                                    progress=False)
    other.module_.load_state_dict(model.module_.state_dict())
    after = other.module_.user_part(torch.tensor([0])).detach()
    torch.testing.assert_close(after[:, :-4], before[:, :-4])  # p_u and f_u unchanged
    assert not torch.allclose(after[:, -4:], before[:, -4:])


def test_implicit_penalty_by_hand(side: Dataset) -> None:
    model = FeatureNet(**QUICK, implicit="mlp", item_implicit="mlp").fit(side, rng=0,
                                                                         progress=False)
    for name, seen in (("user", model.seen_.tocsr()), ("item", model.seen_.T.tocsr())):
        y = model.module_.bags[name].factors.weight.detach().numpy()
        rows = np.array([0, 0, 2])
        expected = np.mean([np.mean((y[seen.indices[seen.indptr[c]:seen.indptr[c + 1]]] ** 2)
                                    .sum(1)) for c in rows])
        got = float(model.module_.bags[name].penalty(torch.from_numpy(rows)).detach())
        assert got == pytest.approx(expected, rel=1e-5)


def test_item_bag_sums_the_items_raters(side: Dataset) -> None:
    model = FeatureNet(**{**WIDE, "item_implicit": "wide"}).fit(side, rng=0, progress=False)
    module = model.module_
    z = module.bags["item"].factors.weight.detach().numpy()
    raters = model.seen_.T.tocsr()
    with torch.no_grad():
        got = module.items(torch.tensor([1, -1])).factors.numpy()
    q = module.wide_item.weight.detach().numpy()[1]
    who = raters.indices[raters.indptr[1]:raters.indptr[2]]
    assert len(who) == 2
    np.testing.assert_allclose(got[0], q + z[who].sum(0) / np.sqrt(2), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[1], 0)  # unknown item: no factors, empty bag


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_block_matches_pairs_and_save_load(side: Dataset, variant: str,
                                                    tmp_path: Path) -> None:
    model = FeatureNet(**QUICK, **VARIANTS[variant]).fit(side, rng=0, progress=False)
    module = model.module_.eval()
    users = torch.tensor([0, 1, 2, -1])
    with torch.no_grad():
        pairs = module(users.repeat_interleave(3), torch.arange(3).repeat(4))
        block = module.block(users, None, chunk_elements=16)
    torch.testing.assert_close(block.reshape(-1), pairs, rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "fn")
    loaded = FeatureNet.load(tmp_path / "fn")
    assert loaded.params() == model.params()
    uu, ii = np.array([1, 2, 3, 99, 1]), np.array([10, 30, 20, 10, 99])
    np.testing.assert_array_equal(model.predict(uu, ii), loaded.predict(uu, ii))
    np.testing.assert_array_equal(model.score(side.user_vocab.index),
                                  loaded.score(side.user_vocab.index))


def test_bpr_with_every_part_trains(side: Dataset) -> None:
    model = FeatureNet(**{**QUICK, "epochs": 20}, loss="bpr", wide_size=3, implicit="both",
                       item_implicit="wide", feature_factors=True, dropout=0.0).fit(
        side, rng=0, progress=False)
    losses = [h["train_loss"] for h in model.history_]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert model.score(side.user_vocab.index).shape == (3, 3)


def test_wide_penalty_counts_the_wide_rows(side: Dataset) -> None:
    model = FeatureNet(**WIDE, reg=0.0, wide_reg=2.0).fit(side, rng=0, progress=False)
    module = model.module_
    u, i = torch.tensor([0, 2]), torch.tensor([1, 1])
    p, q = module.wide_user.weight[u], module.wide_item.weight[i]
    b = module.user_bias.weight[u, 0] ** 2 + module.item_bias.weight[i, 0] ** 2
    expected = 2.0 * (p.pow(2).sum(-1) + q.pow(2).sum(-1) + b).mean()
    torch.testing.assert_close(model._penalty(module, u, i), expected)


@pytest.mark.parametrize(("params", "name"), [
    ({"wide_size": -1}, "wide_size"), ({"implicit": "yes"}, "implicit"),
    ({**PLAIN, "feature_factors": True}, "feature_factors"),
    ({**PLAIN, "implicit": "wide"}, "implicit"),
    ({**PLAIN, "item_implicit": "both"}, "item_implicit"),
    ({"wide_reg": -0.1}, "wide_reg"), ({"reg_implicit": float("nan")}, "reg_implicit")])
def test_invalid_optional_parts_name_themselves(params: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        FeatureNet(**params)
