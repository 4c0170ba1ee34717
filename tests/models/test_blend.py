"""Blend's own maths: the ridge, known weights recovered, refit on all data, save/load, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import pytest

from movierec import models
from movierec.data.dataset import Dataset
from movierec.errors import ArtifactError
from movierec.models import get
from movierec.models.base import Recommender
from movierec.models.blend import Blend, normalize_members, ridge_weights
from movierec.models.space import check_space
from movierec.random import RNGLike

KNN = {"n_neighbors": 10, "similarity": "pearson_baseline", "shrinkage": 10.0,
       "feedback": "explicit"}


def user_part(user_ids: np.ndarray) -> np.ndarray:
    return (user_ids % 7) / 7.0


def item_part(item_ids: np.ndarray) -> np.ndarray:
    return (item_ids % 5) / 5.0


class _Oracle(Recommender):
    """A member whose prediction is a fixed function of the original ids (fit learns nothing)."""

    predicts_ratings: ClassVar[bool] = True

    def __init__(self) -> None:
        pass

    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: RNGLike = None,
            progress: bool = True) -> Self:
        self._setup(train)
        return self

    def _part(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        assert (user_codes >= 0).all() and (item_codes >= 0).all()
        return self._part(self.user_vocab_.ids(user_codes),
                          self.item_vocab_.ids(item_codes)).astype(np.float32)


class UserPart(_Oracle):
    name: ClassVar[str] = "user_part"

    def _part(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        return user_part(user_ids)


class ItemPart(_Oracle):
    name: ClassVar[str] = "item_part"

    def _part(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        return item_part(item_ids)


@pytest.fixture
def oracles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(models.REGISTRY, "user_part", (f"{__name__}:UserPart", None))
    monkeypatch.setitem(models.REGISTRY, "item_part", (f"{__name__}:ItemPart", None))


@pytest.fixture(scope="module")
def dense() -> Dataset:
    """30 users x 20 items, every pair rated: r = 1 + 1.5·user_part + 3·item_part (in [1, 5])."""
    u, i = (a.ravel() + 1 for a in np.meshgrid(np.arange(30), np.arange(20), indexing="ij"))
    r = 1 + 1.5 * user_part(u) + 3 * item_part(i)
    frame = pd.DataFrame({"user_id": u, "item_id": i, "rating": r, "timestamp": 0})
    return Dataset(frame, name="dense", rating_scale=(1.0, 5.0))


@pytest.fixture(scope="module")
def noisy() -> Dataset:
    """80 users x 50 items, rank-2 ratings plus noise, 30% observed (some items rated once)."""
    gen = np.random.default_rng(3)
    p, q = gen.normal(size=(80, 2)), gen.normal(size=(50, 2))
    u, i = np.nonzero(gen.random((80, 50)) < 0.3)
    r = np.clip(np.round(3 + (p[u] * q[i]).sum(1) + gen.normal(0, 0.5, len(u))), 1, 5)
    frame = pd.DataFrame({"user_id": u + 1, "item_id": i + 1, "rating": r, "timestamp": 0})
    return Dataset(frame, name="noisy", rating_scale=(1.0, 5.0))


# --- the ridge ---------------------------------------------------------------------------------
def test_ridge_recovers_known_weights() -> None:
    gen = np.random.default_rng(0)
    x = gen.normal(size=(200, 4)) * [1.0, 10.0, 0.1, 3.0]
    w = np.array([0.5, -0.2, 4.0, 1.5])
    w_hat, b_hat = ridge_weights(x, x @ w + 0.7, alpha=1e-8, prior=np.zeros(4))
    np.testing.assert_allclose(w_hat, w, atol=1e-6)
    assert b_hat == pytest.approx(0.7, abs=1e-6)


def test_ridge_shrinks_towards_prior() -> None:
    gen = np.random.default_rng(1)
    x = gen.normal(size=(50, 3))
    y = x @ np.array([2.0, 0.0, -1.0])
    prior = np.array([1 / 3, 1 / 3, 1 / 3])
    w_strong, _ = ridge_weights(x, y, alpha=1e9, prior=prior)
    np.testing.assert_allclose(w_strong, prior, atol=1e-5)
    w_empty, b_empty = ridge_weights(x[:0], y[:0], alpha=1.0, prior=prior)
    np.testing.assert_array_equal(w_empty, prior)
    assert b_empty == 0.0
    # A constant column is absorbed by the intercept and keeps its prior weight.
    x_const = np.column_stack([x[:, 0], np.full(50, 4.0)])
    w_const, b_const = ridge_weights(x_const, 2 * x[:, 0] + 1, alpha=1e-8, prior=np.array([0, 0.5]))
    np.testing.assert_allclose(w_const, [2.0, 0.5], atol=1e-6)
    assert b_const == pytest.approx(1.0 - 0.5 * 4.0, abs=1e-6)


# --- fitting -----------------------------------------------------------------------------------
@pytest.mark.usefixtures("oracles")
def test_blend_learns_the_known_linear_pieces(dense: Dataset) -> None:
    model = Blend(members=("user_part", "item_part"), alpha=1e-6, meta_features=False)
    model.fit(dense, rng=0, progress=False)
    assert model.n_holdout_ > 0
    weights = model.weights_
    assert weights == pytest.approx({"user_part": 1.5, "item_part": 3.0, "intercept": 1.0},
                                    abs=1e-4)
    users, items = dense.ratings["user_id"].to_numpy(), dense.ratings["item_id"].to_numpy()
    np.testing.assert_allclose(model.predict(users, items), dense.ratings["rating"], atol=1e-4)
    assert model.holdout_rmse_["blend"] < 1e-4 < model.holdout_rmse_["user_part"]


@pytest.mark.usefixtures("oracles")
def test_meta_features_follow_the_documented_formula(dense: Dataset) -> None:
    model = Blend(members=("user_part", "item_part"), alpha=1.0).fit(dense, rng=0, progress=False)
    w = model.weights_
    assert set(w) == {"user_part", "item_part", "user_part*log_user_count",
                      "item_part*log_user_count", "user_part*log_item_count",
                      "item_part*log_item_count", "log_user_count", "log_item_count",
                      "intercept"}
    users, items = np.array([1, 5, 30]), np.array([20, 3, 1])
    lu, li = np.log1p(20.0), np.log1p(30.0)  # every user rated 20 items, every item 30 users
    expected = w["intercept"] + w["log_user_count"] * lu + w["log_item_count"] * li
    for m, part in (("user_part", user_part(users)), ("item_part", item_part(items))):
        expected = expected + part * (w[m] + w[f"{m}*log_user_count"] * lu
                                      + w[f"{m}*log_item_count"] * li)
    np.testing.assert_allclose(model.predict(users, items), np.clip(expected, 1, 5), rtol=1e-5)
    # The ranking score is the same blend, unclipped, for every item.
    full = model.score(users)
    np.testing.assert_allclose(full[[0, 1, 2], model.item_vocab_.codes(items)], expected,
                               rtol=1e-5)


def test_members_are_refit_on_all_training_data(noisy: Dataset) -> None:
    model = Blend(members=(("bias", {}), ("itemknn", KNN)), holdout=0.3)
    model.fit(noisy, rng=0, progress=False)
    assert model.n_holdout_ > 0.2 * noisy.n_ratings
    for member in model.members_:
        assert member.n_users == noisy.n_users and member.n_items == noisy.n_items
        assert member.seen_.nnz == noisy.n_ratings
    assert set(model.holdout_rmse_) == {"bias", "itemknn", "blend"}


def test_empty_carve_out_gives_the_plain_average(tiny: Dataset) -> None:
    # Users with 2-3 ratings: 10% rounds to no held-out rating at all.
    model = Blend(members=("bias", ("itemknn", KNN)), holdout=0.1).fit(tiny, rng=0,
                                                                       progress=False)
    assert model.n_holdout_ == 0
    assert model.weights_["bias"] == model.weights_["itemknn"] == 0.5
    u, i = tiny.ratings["user_id"].to_numpy(), tiny.ratings["item_id"].to_numpy()
    average = (model.members_[0].predict(u, i) + model.members_[1].predict(u, i)) / 2
    np.testing.assert_allclose(model.predict(u, i), average, rtol=1e-6)


def test_same_seed_same_weights(noisy: Dataset) -> None:
    a = Blend(members=("bias", ("userknn", KNN))).fit(noisy, rng=5, progress=False)
    b = Blend(members=("bias", ("userknn", KNN))).fit(noisy, rng=5, progress=False)
    c = Blend(members=("bias", ("userknn", KNN))).fit(noisy, rng=6, progress=False)
    assert a.weights_ == b.weights_
    assert a.weights_ != c.weights_  # another seed carves out other ratings


# --- persistence -------------------------------------------------------------------------------
def test_save_load_same_predictions(noisy: Dataset, tmp_path: Path) -> None:
    members: tuple[Any, ...] = (("bias", {}), ("itemknn", KNN))
    if _has_torch():  # a torch member: its module weights travel as prefixed tensors
        members += (("mf", {"embedding_size": 4, "epochs": 3, "device": "cpu"}),)
    model = Blend(members=members, holdout=0.2).fit(noisy, rng=1, progress=False)
    model.save(tmp_path / "blend")
    assert sorted(p.name for p in (tmp_path / "blend").iterdir()) == ["model.json",
                                                                      "state.safetensors"]
    meta = json.loads((tmp_path / "blend" / "model.json").read_text())
    assert [m[0] for m in meta["params"]["members"]] == [m[0] for m in members]
    loaded = models.load(tmp_path / "blend")
    assert isinstance(loaded, Blend) and loaded.params() == model.params()
    assert loaded.weights_ == model.weights_
    assert [type(m) for m in loaded.members_] == [type(m) for m in model.members_]
    u = np.repeat(noisy.user_vocab.index, 3)
    i = np.resize(noisy.item_vocab.index[::-1], len(u))
    np.testing.assert_array_equal(loaded.predict(u, i), model.predict(u, i))
    pd.testing.assert_frame_equal(loaded.recommend(noisy.user_vocab.index[:5], k=5),
                                  model.recommend(noisy.user_vocab.index[:5], k=5))


def test_load_refuses_a_member_without_its_state(noisy: Dataset, tmp_path: Path) -> None:
    model = Blend(members=("bias", ("itemknn", KNN))).fit(noisy, rng=0, progress=False)
    model.save(tmp_path / "blend")
    meta_path = tmp_path / "blend" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["state"] = {k: v for k, v in meta["state"].items() if not k.startswith("members.1.")}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=r"member 1 \(itemknn\)"):
        models.load(tmp_path / "blend")


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


# --- parameters --------------------------------------------------------------------------------
def test_members_normalized_so_json_round_trips() -> None:
    model = Blend(members=[["bias", {"reg_user": 5}], "userknn"])
    assert model.members == (("bias", {"reg_user": 5}), ("userknn", {}))
    again = get("blend", **json.loads(json.dumps(model.params())))
    assert again.params() == model.params()
    if _has_torch():  # lists inside member parameters come back as tuples (JSON has none)
        assert normalize_members([["mlp", {"layers": [16, 8]}]]) == (("mlp", {"layers": (16, 8)}),)


@pytest.mark.parametrize(("members", "match"), [
    ((("nope", {}),), r"members\[0\] must be a registered model.*got 'nope'"),
    (("bias", "pop"), r"members\[1\] must be a model that predicts ratings.*got 'pop'"),
    (("ease",), r"members\[0\] must be a model that predicts ratings"),
    (("blend",), r"members\[0\] must be a model other than blend"),
    ((("bias", {"bogus": 1}),), r"members\[0\] \(bias\).*unknown: \['bogus'\]"),
    ((("bias", {"reg_user": -1}),), r"members\[0\] \(bias\): reg_user must be"),
    ((), r"members must be a non-empty sequence"),
    ("bias", r"members must be a non-empty sequence"),
    (((1, {}),), r"members\[0\] must be a model name or a \(model name, \{params\}\) pair"),
])
def test_bad_members_raise_naming_them(members: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Blend(members=members)


@pytest.mark.parametrize(("param", "value"), [("holdout", 0.0), ("holdout", 1.0),
                                              ("alpha", 0.0), ("meta_features", 1)])
def test_bad_params_raise_naming_them(param: str, value: object) -> None:
    with pytest.raises(ValueError, match=param):
        Blend(**{param: value})


def test_search_space_names_parameters() -> None:
    check_space("blend", Blend.search_space, Blend.param_names())
    assert "alpha" in Blend.search_space


# --- the registered defaults: strong with torch, light without ----------------------------------
def test_default_blend_is_the_benchmark_stack_when_torch_is_installed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from movierec.models import blend as B

    monkeypatch.setattr(B, "_torch_installed", lambda: True)
    model = get("blend")
    assert [name for name, _ in model.members] == ["bias", "itemknn", "userknn", "mf",
                                                   "featurenet", "svdpp", "autorec"]
    knn = {"n_neighbors": 40, "similarity": "pearson_baseline", "shrinkage": 100.0,
           "feedback": "explicit"}
    assert model.members[1] == ("itemknn", knn) and model.members[2] == ("userknn", knn)
    assert all(params == {} for _, params in model.members[3:])  # the torch models' defaults
    assert (model.holdout, model.alpha, model.meta_features) == (0.1, 10.0, True)
    # params() records the members used, so a saved default blend reloads the same stack.
    assert get("blend", **model.params()).params() == model.params()


def test_blend_light_is_the_torch_free_stack() -> None:
    model = get("blend-light")
    assert type(model).name == "blend-light"
    assert [name for name, _ in model.members] == ["bias", "itemknn", "userknn"]
    assert get("blend", members=model.members).params() == model.params()
    with pytest.raises(ValueError, match=r"members\[0\] must be a model other than blend"):
        Blend(members=("blend-light",))


def test_default_blend_without_torch_is_the_light_stack_and_says_so(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from movierec.models import blend as B

    monkeypatch.setattr(B, "_torch_installed", lambda: False)
    monkeypatch.setattr(B, "_WARNED_NO_TORCH", False)
    with caplog.at_level("WARNING", logger="movierec.models.blend"):
        model = get("blend")
        get("blend")  # said once per process
    assert model.members == get("blend-light").members == B.LIGHT_MEMBERS
    notes = [r.getMessage() for r in caplog.records if "torch is not installed" in r.getMessage()]
    assert len(notes) == 1 and "blend-light" in notes[0] and "movierec[torch]" in notes[0]


def test_quick_overrides_reach_the_members() -> None:
    # An experiment's --quick (epochs = 1, ...) must shorten a blend's members too, or the
    # seven-member default trains every neural member in full.
    pytest.importorskip("torch")
    from movierec.models import get, get_class

    params = get_class("blend").with_overrides({}, {"epochs": 1, "embedding_size": 16})
    members = {name: p for name, p in params["members"]}
    assert members["mf"]["epochs"] == 1 and members["mf"]["embedding_size"] == 16
    assert "epochs" not in members["itemknn"] and "epochs" not in params
    assert get("blend", **params).members[3][1]["epochs"] == 1
