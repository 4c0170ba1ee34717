"""Approximate top-k (movierec.ann): exactness of "flat", seen items, recall, refusals."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest

from movierec.ann import ANNIndex, DotVectors, dot_vectors
from movierec.data.dataset import Dataset
from movierec.errors import (
    ArtifactError,
    MissingExtraError,
    MovieRecError,
    NotFittedError,
    UnknownIdError,
)
from movierec.models.base import Recommender
from movierec.random import RNGLike, as_generator

N_USERS, N_ITEMS = 40, 300


class DotModel(Recommender):
    """s(u, i) = 0.5 + b_u + b_i + p_u · q_i with random vectors: a dot-product model without
    torch, exposing its vectors through the DotProductModel protocol."""

    def __init__(self, *, dim: int = 8, lie: bool = False) -> None:
        self.dim = dim
        self.lie = lie

    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: RNGLike = None,
            progress: bool = True) -> DotModel:
        self._setup(train)
        gen = as_generator(rng)
        self.p_ = gen.normal(size=(self.n_users, self.dim)).astype(np.float32)
        self.q_ = gen.normal(size=(self.n_items, self.dim)).astype(np.float32)
        self.b_u_ = gen.normal(size=self.n_users).astype(np.float32)
        # Large item biases: a ranking that ignored them would differ.
        self.b_i_ = (3 * gen.normal(size=self.n_items)).astype(np.float32)
        return self

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        s = 0.5 + self.b_u_[user_codes, None] + self.b_i_[None, :] + self.p_[user_codes] @ self.q_.T
        return (s if item_codes is None else s[:, item_codes]).astype(np.float32)

    def dot_vectors(self) -> DotVectors:
        bias = np.zeros_like(self.b_i_) if self.lie else self.b_i_
        return DotVectors(users=self.p_, items=self.q_, user_offset=0.5 + self.b_u_,
                          item_bias=bias)


def _data(seed: int = 0) -> Dataset:
    """40 users x 300 items; user 1 rated all but 3 items, user 2 rated 150."""
    gen = np.random.default_rng(seed)
    rows = [(u, i) for u in range(3, N_USERS + 1)
            for i in gen.choice(np.arange(1, N_ITEMS + 1), size=12, replace=False)]
    rows += [(1, i) for i in range(1, N_ITEMS - 2)]
    rows += [(2, i) for i in range(1, N_ITEMS + 1, 2)]
    rows += [(3, i) for i in range(1, N_ITEMS + 1)]  # user 3: every item, none left
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"]).drop_duplicates()
    frame["rating"] = gen.integers(1, 6, size=len(frame)).astype(np.float32)
    frame["timestamp"] = np.arange(len(frame))
    return Dataset(frame, name="ann-test")


@pytest.fixture(scope="module")
def data() -> Dataset:
    return _data()


@pytest.fixture(scope="module")
def model(data: Dataset) -> DotModel:
    return DotModel().fit(data, rng=0)


def _pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame.user_id.tolist(), frame.item_id.tolist(), strict=True))


def _assert_same(ann: pd.DataFrame, exact: pd.DataFrame) -> None:
    assert list(ann.columns) == ["user_id", "item_id", "score", "rank"]
    np.testing.assert_array_equal(ann.user_id, exact.user_id)
    np.testing.assert_array_equal(ann.item_id, exact.item_id)
    np.testing.assert_array_equal(ann["rank"], exact["rank"])
    np.testing.assert_allclose(ann.score, exact.score, rtol=1e-5, atol=1e-5)


def test_missing_faiss_names_the_extra(monkeypatch: pytest.MonkeyPatch, model: DotModel) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    with pytest.raises(MissingExtraError, match=r"movierec\[ann\]"):
        ANNIndex.build(model, kind="flat")


def test_models_that_are_not_dot_products_are_refused(data: Dataset) -> None:
    from movierec.models import get

    for name in ("ease", "itemknn", "pop"):
        other = get(name).fit(data, progress=False)
        with pytest.raises(MovieRecError, match="dot product"):
            dot_vectors(other)


def test_vectors_that_do_not_reproduce_the_scores_are_refused(data: Dataset, faiss: Any
                                                             ) -> None:
    liar = DotModel(lie=True).fit(data, rng=0)
    with pytest.raises(MovieRecError, match="do not reproduce"):
        ANNIndex(kind="flat").fit(liar)


def test_use_before_fit_is_an_error(data: Dataset) -> None:
    with pytest.raises(NotFittedError):
        ANNIndex().recommend([1])
    with pytest.raises(NotFittedError):
        dot_vectors(DotModel())


def test_bad_parameters_name_themselves() -> None:
    with pytest.raises(ValueError, match="kind"):
        ANNIndex(kind="lsh")
    with pytest.raises(ValueError, match="ef_search"):
        ANNIndex(ef_search=0)


@pytest.fixture
def faiss() -> Any:
    """The faiss module; tests that take it are skipped where the `ann` extra is missing."""
    return pytest.importorskip("faiss")


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_flat_index_equals_exact_scoring_with_biases(model: DotModel, exclude_seen: bool,
                                                     faiss: Any) -> None:
    users = model.user_vocab_.ids(np.arange(model.n_users))
    index = ANNIndex.build(model, kind="flat")
    _assert_same(index.recommend(users, k=10, exclude_seen=exclude_seen),
                 model.recommend(users, k=10, exclude_seen=exclude_seen))


@pytest.mark.parametrize("params", [{"kind": "hnsw", "ef_search": 1, "m": 2},
                                    {"kind": "ivf", "nlist": 6, "nprobe": 1},
                                    {"kind": "hnsw", "max_fetch": 64}])
def test_seen_items_are_never_returned(model: DotModel, data: Dataset, params: dict[str, Any],
                                       faiss: Any) -> None:
    users = model.user_vocab_.ids(np.arange(model.n_users))
    got = ANNIndex.build(model, rng=0, **params).recommend(users, k=10)
    assert not _pairs(got) & _pairs(data.ratings)
    counts = got.groupby("user_id").size()
    assert counts[1] == 3  # only three unseen items are left to user 1
    assert 3 not in counts.index  # user 3 has seen everything
    assert (counts.drop(1) == 10).all()
    assert (got.groupby("user_id")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()


def test_hnsw_recall_is_high_on_a_small_catalog(model: DotModel, faiss: Any) -> None:
    users = model.user_vocab_.ids(np.arange(model.n_users))
    exact = model.recommend(users, k=10)
    got = ANNIndex.build(model, kind="hnsw").recommend(users, k=10)
    recall = len(_pairs(got) & _pairs(exact)) / len(exact)
    assert recall >= 0.95
    # Every score returned is the model's own score of that item.
    check = got.iloc[:20]
    for u, i, s in zip(check.user_id, check.item_id, check.score, strict=True):
        assert model.score([u], [i])[0, 0] == pytest.approx(s, rel=1e-5, abs=1e-5)


def test_ivf_probing_every_cell_is_exact(model: DotModel, faiss: Any) -> None:
    users = model.user_vocab_.ids(np.arange(model.n_users))
    index = ANNIndex.build(model, kind="ivf", nlist=5, nprobe=5, rng=3)
    _assert_same(index.recommend(users, k=7), model.recommend(users, k=7))


def test_builds_are_reproducible(model: DotModel, faiss: Any) -> None:
    for params in ({"kind": "hnsw"}, {"kind": "ivf", "nlist": 6}):
        a = ANNIndex.build(model, rng=1, **params).index_
        b = ANNIndex.build(model, rng=1, **params).index_
        assert np.array_equal(faiss.serialize_index(a), faiss.serialize_index(b))


def test_unknown_users_and_bad_k(model: DotModel, faiss: Any) -> None:
    index = ANNIndex.build(model, kind="flat")
    with pytest.raises(UnknownIdError):
        index.recommend([10_000])
    with pytest.raises(ValueError, match="k must be"):
        index.recommend([5], k=0)


def test_save_and_load_round_trip(model: DotModel, data: Dataset, tmp_path: Any, faiss: Any
                                  ) -> None:
    users = model.user_vocab_.ids(np.arange(model.n_users))
    index = ANNIndex.build(model, kind="hnsw", ef_search=8)
    index.save(tmp_path / "ann")
    loaded = ANNIndex.load(tmp_path / "ann", model)
    assert loaded.params() == index.params()
    _assert_same(loaded.recommend(users), index.recommend(users))
    other = DotModel().fit(data, rng=1)
    with pytest.raises(ArtifactError, match="other item vectors"):
        ANNIndex.load(tmp_path / "ann", other)


@pytest.mark.parametrize("name,params", [
    ("mf", {"sigmoid": False}),
    ("mf", {"sigmoid": True}),
    ("svdpp", {}),
    ("lightgcn", {"n_layers": 2}),
    ("ngcf", {"n_layers": 1, "loss": "mse"}),
])
def test_torch_models_are_indexed_exactly(data: Dataset, name: str, params: dict[str, Any],
                                          faiss: Any) -> None:
    pytest.importorskip("torch")
    from movierec.models import get

    fitted = get(name, epochs=2, embedding_size=8, device="cpu", **params).fit(
        data, rng=0, progress=False)
    users = fitted.user_vocab_.ids(np.arange(fitted.n_users))
    vectors = dot_vectors(fitted)
    assert (vectors.item_bias is not None) == (name != "lightgcn")
    _assert_same(ANNIndex.build(fitted, kind="flat").recommend(users, k=5),
                 fitted.recommend(users, k=5))


def test_numba_models_index_exactly(tiny) -> None:
    """svd and ials declare their dot products; a flat index gives their exact top-k."""
    pytest.importorskip("faiss")
    pytest.importorskip("numba")
    from movierec.models import get

    for name, params in (("svd", {"embedding_size": 4, "epochs": 5}),
                         ("ials", {"embedding_size": 4, "epochs": 3})):
        model = get(name, **params).fit(tiny, rng=0, progress=False)
        users = tiny.user_vocab.index
        want = model.recommend(users, k=2)
        got = ANNIndex.build(model, kind="flat").recommend(users, k=2)
        pd.testing.assert_frame_equal(got[["user_id", "item_id", "rank"]],
                                      want[["user_id", "item_id", "rank"]])
