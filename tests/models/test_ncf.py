"""NCF's own maths (He et al. 2017): GMF, MLP and NeuMF scoring, pre-training, side input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.models import get_class  # noqa: E402
from movierec.models.ncf import GMF, MLP, NCFModule, NeuMF, item_feature_matrix  # noqa: E402

QUICK = {"embedding_size": 8, "epochs": 8, "batch_size": 128, "learning_rate": 0.01,
         "weight_decay": 0.0, "device": "cpu"}
GENRES = ("Action", "Comedy", "Drama")


@pytest.fixture(scope="module")
def low_rank() -> Dataset:
    """120 users x 50 items, ratings 1-5 from a rank-2 model plus noise, 40% observed, with an
    item table (genres) that leaves item 50 without metadata."""
    gen = np.random.default_rng(0)
    p, q = gen.normal(size=(120, 2)), gen.normal(size=(50, 2))
    u, i = np.nonzero(gen.random((120, 50)) < 0.4)
    r = np.clip(np.round(3 + (p[u] * q[i]).sum(1) + gen.normal(0, 0.3, len(u))), 1, 5)
    frame = pd.DataFrame({"user_id": u + 1, "item_id": i + 1, "rating": r,
                          "timestamp": np.arange(len(u))})
    items = pd.DataFrame({"item_id": np.arange(1, 50), "title": [f"m{j}" for j in range(1, 50)],
                          "year": np.full(49, 1995.0),
                          "genres": [(GENRES[j % 3],) + ((GENRES[(j + 1) % 3],) if j % 2 else ())
                                     for j in range(1, 50)]})
    return Dataset(frame, items=items, name="low-rank", rating_scale=(1.0, 5.0))


@pytest.fixture(scope="module")
def gmf_bce(low_rank: Dataset) -> GMF:
    return GMF(**QUICK, loss="bce").fit(low_rank, rng=0, progress=False)


def np_(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


# --- the network -------------------------------------------------------------------------------
@pytest.mark.parametrize(("gmf", "layers", "width"), [(True, None, 4), (False, (6, 3), 3),
                                                      (True, [6, 3], 7)])
def test_forward_and_block_shapes(gmf: bool, layers: tuple[int, ...] | None, width: int) -> None:
    torch.manual_seed(0)
    features = torch.rand(5, 2)
    module = NCFModule(3, 5, 4, layers, gmf=gmf, features=features).eval()
    assert module.h.in_features == width
    u, i = torch.tensor([0, 1, 2, -1]), torch.tensor([4, 0, -1, 3])
    assert module(u, i).shape == (4,)
    neg = torch.tensor([[0, 1], [2, 3], [4, 0], [1, 1]])
    assert module(u[:, None], neg).shape == (4, 2)
    block = module.block(torch.tensor([0, 2]), None)
    assert block.shape == (2, 5)
    pairs = module(torch.tensor([[0], [2]]), torch.arange(5).expand(2, 5))
    torch.testing.assert_close(block, pairs, rtol=1e-5, atol=1e-6)
    sub = module.block(torch.tensor([0, 2]), torch.tensor([3, -1]))
    torch.testing.assert_close(sub, module(torch.tensor([[0], [2]]), torch.tensor([[3, -1]] * 2)))


def test_gmf_score_is_h_dot_elementwise_product(gmf_bce: GMF, low_rank: Dataset) -> None:
    m = gmf_bce.module_
    assert isinstance(m, NCFModule) and m.gmf is not None and m.mlp is None
    p, q = np_(m.gmf.user.weight), np_(m.gmf.item.embedding.weight)
    h, b = np_(m.h.weight)[0], np_(m.h.bias)[0]
    assert float(m.offset) == 0.0  # bce: z is the logit
    users = low_rank.user_vocab.index[[0, 5]]
    by_hand = (p[[0, 5]][:, None, :] * q[None, :, :]) @ h + b
    np.testing.assert_allclose(gmf_bce.score(users), by_hand, rtol=1e-4, atol=1e-5)
    # predict maps the logit monotonically onto the rating scale: 1 + 4 σ(z).
    u, i = np.array([users[0]]), low_rank.item_vocab.index[[7]]
    np.testing.assert_allclose(gmf_bce.predict(u, i), 1 + 4 / (1 + np.exp(-by_hand[0, 7])),
                               rtol=1e-5)


def test_gmf_mse_prediction_by_hand(low_rank: Dataset) -> None:
    model = GMF(**QUICK).fit(low_rank, rng=0, progress=False)
    m = model.module_
    mu = low_rank.ratings["rating"].mean()
    assert float(m.offset) == pytest.approx(mu, rel=1e-6)
    p, q = np_(m.gmf.user.weight), np_(m.gmf.item.embedding.weight)
    h, b = np_(m.h.weight)[0], np_(m.h.bias)[0]
    u, i = np.array([2, 9, 40]), np.array([0, 3, 11])
    by_hand = np.clip(mu + (p[u] * q[i]) @ h + b, 1, 5)
    pred = model.predict(model.user_vocab_.ids(u), model.item_vocab_.ids(i))
    np.testing.assert_allclose(pred, by_hand, rtol=1e-5)


def test_mlp_first_layer_reads_both_embeddings(low_rank: Dataset) -> None:
    model = MLP(**{**QUICK, "epochs": 1}, layers=[12, 6]).fit(low_rank, rng=0, progress=False)
    assert model.layers == [12, 6]  # stored unchanged
    tower = model.module_.mlp.tower
    assert [layer.in_features for layer in tower] == [2 * 8, 12]
    assert [layer.out_features for layer in tower] == [12, 6]
    assert model.module_.h.in_features == 6
    assert MLP().layers == (128, 64, 32) and MLP().embedding_size == 64


def test_neumf_h_concatenates_both_branches(low_rank: Dataset) -> None:
    model = NeuMF(**{**QUICK, "epochs": 1}, layers=(12, 6)).fit(low_rank, rng=0, progress=False)
    m = model.module_
    assert m.h.in_features == 8 + 6
    # Separate embeddings for the two branches.
    assert m.gmf.user.weight.data_ptr() != m.mlp.user.weight.data_ptr()


# --- pre-training ------------------------------------------------------------------------------
def test_load_pretrained_copies_branches_and_weights_h(low_rank: Dataset) -> None:
    gmf = GMF(**{**QUICK, "epochs": 2}).fit(low_rank, rng=1, progress=False)
    mlp = MLP(**{**QUICK, "epochs": 2}, layers=(12, 6)).fit(low_rank, rng=2, progress=False)
    neumf = NeuMF(**QUICK, layers=(12, 6))
    neumf._setup(low_rank)
    neumf._prepare(low_rank)
    module = neumf.build_module()
    module.load_pretrained(gmf.module_, mlp.module_, alpha=0.5)
    for key, value in gmf.module_.gmf.state_dict().items():
        torch.testing.assert_close(module.gmf.state_dict()[key], value, rtol=0, atol=0)
    for key, value in mlp.module_.mlp.state_dict().items():
        torch.testing.assert_close(module.mlp.state_dict()[key], value, rtol=0, atol=0)
    expected_h = torch.cat([0.5 * gmf.module_.h.weight, 0.5 * mlp.module_.h.weight], dim=1)
    torch.testing.assert_close(module.h.weight, expected_h, rtol=0, atol=0)
    torch.testing.assert_close(module.h.bias, 0.5 * (gmf.module_.h.bias + mlp.module_.h.bias))
    # Hence the initial NeuMF logit is the average of the two branches' logits.
    u, i = torch.arange(10), torch.arange(10)
    with torch.no_grad():
        z = module.eval()(u, i)
        z_avg = 0.5 * (gmf.module_.eval()(u, i) + mlp.module_.eval()(u, i))
    torch.testing.assert_close(z, z_avg, rtol=1e-5, atol=1e-5)


def test_pretrain_fits_branches_then_starts_from_them(low_rank: Dataset) -> None:
    # A negligible fine-tuning step: NeuMF's weights stay where pre-training put them.
    model = NeuMF(**{**QUICK, "epochs": 3}, layers=(12, 6), pretrain=True,
                  finetune_learning_rate=1e-12).fit(low_rank, rng=3, progress=False)
    gmf, mlp = model._branches
    assert set(model.pretrain_history_) == {"gmf", "mlp"}
    assert len(model.pretrain_history_["gmf"]) == 3
    m = model.module_
    torch.testing.assert_close(m.gmf.user.weight, gmf.module_.gmf.user.weight, atol=1e-8, rtol=0)
    torch.testing.assert_close(m.mlp.item.embedding.weight, mlp.module_.mlp.item.embedding.weight,
                               atol=1e-8, rtol=0)
    torch.testing.assert_close(m.h.weight[0, :8], 0.5 * gmf.module_.h.weight[0], atol=1e-8,
                               rtol=0)
    torch.testing.assert_close(m.h.weight[0, 8:], 0.5 * mlp.module_.h.weight[0], atol=1e-8,
                               rtol=0)


def test_pretraining_runs_through_the_trainer_hooks(low_rank: Dataset, tmp_path: Path) -> None:
    from movierec.errors import MovieRecError

    model = NeuMF(**{**QUICK, "epochs": 2}, layers=(12, 6), pretrain=True)
    # resume=True without a checkpoint fails before the branches are fitted.
    with pytest.raises(MovieRecError, match="no checkpoint"):
        model.fit(low_rank, rng=3, progress=False, checkpoint_dir=tmp_path, resume=True)
    assert not hasattr(model, "pretrain_history_")
    # The fine-tuning stage steps at finetune_learning_rate (the Trainer's stage override).
    (stage,) = model.training_stages()
    assert stage.learning_rate == model.finetune_learning_rate and stage.epochs == 2
    assert NeuMF(pretrain=False).training_stages()[0].learning_rate is None


# --- objectives --------------------------------------------------------------------------------
def test_scale_ratings_predicts_on_the_original_scale(low_rank: Dataset) -> None:
    model = MLP(**QUICK, layers=(12, 6), scale_ratings=True).fit(low_rank, rng=0,
                                                                 progress=False)
    assert model.module_.scale == (1.0, 5.0)
    losses = [h["train_loss"] for h in model.history_]
    assert max(losses) < 0.25  # squared error on [0, 1]-scaled ratings
    r = low_rank.ratings
    pred = model.predict(r["user_id"].to_numpy(), r["item_id"].to_numpy())
    assert pred.min() >= 1.0 and pred.max() <= 5.0
    assert abs(pred.mean() - r["rating"].mean()) < 0.3  # ratings, not [0, 1] values
    rmse = np.sqrt(np.mean((pred - r["rating"].to_numpy()) ** 2))
    assert rmse < r["rating"].std()
    # Every pair, through the sigmoid, stays inside the scale without clipping.
    uu, ii = np.meshgrid(np.arange(model.n_users), np.arange(model.n_items), indexing="ij")
    raw = model._predict(uu.ravel(), ii.ravel())
    assert raw.min() >= 1.0 and raw.max() <= 5.0


@pytest.mark.parametrize("cls", [GMF, MLP, NeuMF])
def test_bce_loss_falls(cls: type, low_rank: Dataset) -> None:
    extra = {} if cls is GMF else {"layers": (12, 6)}
    model = cls(**QUICK, **extra, loss="bce").fit(low_rank, rng=0, progress=False)
    assert model.objective == "ranking"
    losses = [h["train_loss"] for h in model.history_]
    assert losses[-1] < 0.9 * losses[0]


def test_unknown_users_and_items_are_finite(gmf_bce: GMF, low_rank: Dataset) -> None:
    pred = gmf_bce.predict(np.array([999, 1, 999]), np.array([1, 999, 998]))
    assert np.isfinite(pred).all() and ((pred >= 1) & (pred <= 5)).all()


# --- item side input ---------------------------------------------------------------------------
def test_genre_features_use_the_genre_matrix(low_rank: Dataset, tmp_path: Path) -> None:
    model = NeuMF(**{**QUICK, "epochs": 2}, layers=(12, 6), item_features="genres").fit(
        low_rank, rng=0, progress=False)
    expected = low_rank.genre_matrix(model.item_vocab_.index).toarray()
    np.testing.assert_array_equal(model.feature_matrix_, expected)
    assert model.feature_names_ == [f"genre:{g}" for g in GENRES]
    assert not model.feature_matrix_[model.item_vocab_.codes([50])[0]].any()  # no metadata
    m = model.module_
    assert m.gmf.item.project.weight.shape == (8, 3)
    # q_i = E[i] + W f_i.
    q = m.gmf.item(None)
    by_hand = np_(m.gmf.item.embedding.weight) + expected @ np_(m.gmf.item.project.weight).T
    np.testing.assert_allclose(np_(q), by_hand, rtol=1e-5, atol=1e-6)
    # Unknown items: zeros, finite predictions; the saved model scores the same.
    assert np.isfinite(model.predict(np.array([1, 2]), np.array([999, 50]))).all()
    model.save(tmp_path / "m")
    loaded = get_class("neumf").load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.feature_matrix_, model.feature_matrix_)
    np.testing.assert_array_equal(loaded.score([1, 2]), model.score([1, 2]))


def test_genre_features_without_an_item_table(tiny: Dataset) -> None:
    assert tiny.items is None
    model = GMF(**QUICK, item_features="genres").fit(tiny, rng=0, progress=False)
    assert model.feature_matrix_ is None and model.feature_names_ == []
    pred = model.predict(np.array([1, 1]), np.array([10, 999]))
    assert np.isfinite(pred).all()


def test_tag_features_count_training_tags_only(low_rank: Dataset) -> None:
    r = low_rank.ratings
    rated = list(zip(r["user_id"], r["item_id"], strict=True))[:4]
    tags = pd.DataFrame({
        "user_id": [u for u, _ in rated] + [u for u, _ in rated[:2]] + [999],
        "item_id": [i for _, i in rated] + [i for _, i in rated[:2]] + [rated[0][1]],
        "tag": ["Funny", "funny ", "dark", "dark", "funny", "sad", "leaked"],
        "timestamp": np.zeros(7, dtype=np.int64),
    })
    ds = Dataset(r, items=low_rank.items, tags=tags, rating_scale=(1.0, 5.0))
    ids = ds.item_vocab.index
    matrix, names = item_feature_matrix(ds, ids, "genres+tags", n_tags=2)
    assert names == [f"genre:{g}" for g in GENRES] + ["tag:funny", "tag:dark"]
    assert matrix is not None and matrix.shape == (len(ids), 5)
    assert "tag:leaked" not in names and "tag:sad" not in names  # 999 never rated; top 2 only
    row = {iid: k for k, iid in enumerate(ids)}
    funny = np.zeros(len(ids))
    for (_, iid), t in zip(rated + rated[:2], ["f", "f", "d", "d", "f", "s"], strict=True):
        funny[row[iid]] += t == "f"
    np.testing.assert_allclose(matrix[:, 3], np.log1p(funny), rtol=1e-6)


# --- real data ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_ml100k_u1_neumf_rmse(data_dir: Path) -> None:
    from movierec.data import load
    from movierec.split import predefined_split

    split = predefined_split(load("ml-100k", data_dir=data_dir), "u1", data_dir=data_dir)
    model = NeuMF(device="cpu", epochs=6).fit(split.train, rng=0, progress=False)
    test = split.test.ratings
    pred = model.predict(test["user_id"].to_numpy(), test["item_id"].to_numpy())
    rmse = float(np.sqrt(np.mean((pred - test["rating"].to_numpy()) ** 2)))
    assert rmse <= 0.95, rmse
