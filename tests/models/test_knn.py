"""The maths of ItemKNN and UserKNN: similarities, pruning, scoring and rating prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from contract import precision_at_10, read_u1, rmse_mae

from movierec.data.dataset import Dataset
from movierec.models.knn import ItemKNN, UserKNN, similarity_matrix


def brute_similarity(values: np.ndarray, k: int, shrinkage: float = 0.0) -> np.ndarray:
    """Dense reference: column cosine, shrunk, self 0, top-k positive per target column."""
    norms = np.linalg.norm(values, axis=0)
    norms[norms == 0] = 1.0
    sims = (values.T @ values) / np.outer(norms, norms)
    common = (values != 0).T.astype(float) @ (values != 0).astype(float)
    if shrinkage:
        sims *= common / (common + shrinkage)
    np.fill_diagonal(sims, 0.0)
    out = np.zeros_like(sims)
    for t in range(sims.shape[1]):
        top = np.argsort(-sims[:, t])[:k]
        top = top[sims[top, t] > 0]
        out[t, top] = sims[top, t]  # row t: the neighbours of target t
    return out


@pytest.mark.parametrize(("k", "shrinkage"), [(3, 0.0), (5, 2.5), (100, 0.0)])
def test_similarity_matches_dense_brute_force(
    rng: np.random.Generator, k: int, shrinkage: float
) -> None:
    dense = rng.normal(size=(40, 25)) * (rng.random((40, 25)) < 0.3)
    got = similarity_matrix(sp.csr_matrix(dense), k=k, shrinkage=shrinkage)
    want = brute_similarity(dense, k, shrinkage)
    assert got.shape == (25, 25)
    assert np.diff(got.indptr).max() <= k
    np.testing.assert_allclose(got.toarray(), want, rtol=1e-5, atol=1e-6)


def test_similarity_in_blocks_equals_one_block(rng: np.random.Generator, monkeypatch) -> None:
    dense = (rng.random((30, 50)) < 0.2).astype(float)
    whole = similarity_matrix(sp.csr_matrix(dense), k=4)
    monkeypatch.setattr("movierec.models.knn._BLOCK_BYTES", 16 * 50 * 3)  # 3 columns a block
    blocks = similarity_matrix(sp.csr_matrix(dense), k=4)
    np.testing.assert_array_equal(whole.toarray(), blocks.toarray())


def test_itemknn_implicit_scores_are_neighbourhood_sums(tiny: Dataset) -> None:
    model = ItemKNN(n_neighbors=4).fit(tiny)
    x = tiny.matrix("binary").toarray()
    s = brute_similarity(x, k=4)  # s[j, i] = similarity of neighbour i to target j
    np.testing.assert_allclose(model.score(tiny.user_vocab.index), x @ s.T, rtol=1e-6)
    # No pruning at k=4 (ties make a smaller k order-dependent; see the random-data test).
    # Cosine by hand: items 10 and 30 share users 1 and 2; 3 and 2 users in all.
    assert model.neighbors_[2, 0] == pytest.approx(2 / np.sqrt(6))


def test_userknn_implicit_scores_are_neighbourhood_sums(tiny: Dataset) -> None:
    model = UserKNN(n_neighbors=3).fit(tiny)
    x = tiny.matrix("binary").toarray()
    w = brute_similarity(x.T, k=3)  # w[u, v] = similarity of neighbour v to user u
    np.testing.assert_allclose(model.score(tiny.user_vocab.index), w @ x, rtol=1e-6)
    # Users 1 {10, 20, 30} and 2 {10, 30, 40}: cosine 2 / 3.
    assert model.neighbors_[0, 1] == pytest.approx(2 / 3)


def test_centred_similarities_by_hand(tiny: Dataset) -> None:
    codes = {item: c for c, item in enumerate(tiny.item_vocab.index)}
    # pearson (item means): item 40 rated 2, 5 (u2, u3), item 50 rated 4, 3 (u3, u4), both
    # mean 3.5: (1.5 * 0.5) / (sqrt(4.5) * sqrt(0.5)) = 0.5.
    pearson = ItemKNN(n_neighbors=4, similarity="pearson",
                      feedback="explicit").fit(tiny).neighbors_
    assert pearson[codes[50], codes[40]] == pytest.approx(0.5)
    assert pearson[codes[40], codes[50]] == pytest.approx(0.5)
    # Shrinkage: they share one user, so 0.5 * 1 / (1 + 1).
    shrunk = ItemKNN(n_neighbors=4, similarity="pearson", feedback="explicit",
                     shrinkage=1.0).fit(tiny)
    assert shrunk.neighbors_[codes[50], codes[40]] == pytest.approx(0.25)
    # adjusted cosine (user means 4, 11/3, 10/3, 4): item 10 -> (1, 1/3, ., 1), item 30 ->
    # (0, 4/3, ., .): (4/9) / (sqrt(19/9) * 4/3) = 1 / sqrt(19).
    adjusted = ItemKNN(n_neighbors=4, similarity="adjusted_cosine",
                       feedback="explicit").fit(tiny)
    assert adjusted.neighbors_[codes[30], codes[10]] == pytest.approx(1 / np.sqrt(19))
    # Negative similarities are never neighbours: pearson(10, 30) = -sqrt(3)/2.
    assert pearson[codes[30], codes[10]] == 0


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
@pytest.mark.parametrize("similarity", ["cosine", "pearson", "adjusted_cosine", "pearson_baseline"])
def test_prediction_is_baseline_plus_weighted_residuals(
    cls, similarity: str, rng: np.random.Generator
) -> None:
    n_users, n_items = 12, 9
    mask = rng.random((n_users, n_items)) < 0.5
    u, i = np.nonzero(mask)
    frame = pd.DataFrame(
        {"user_id": u + 1, "item_id": i + 1, "rating": rng.integers(1, 6, len(u)).astype(float)}
    )
    train = Dataset(frame, rating_scale=(1.0, 5.0))
    model = cls(n_neighbors=3, similarity=similarity, feedback="explicit",
                shrinkage=1.0).fit(train)
    n_u, n_i = train.n_users, train.n_items
    uu, ii = np.repeat(np.arange(n_u), n_i), np.tile(np.arange(n_i), n_u)
    base = model.global_mean_ + model.user_bias_[:, None] + model.item_bias_[None, :]
    rated = model.seen_.toarray() > 0
    res = np.where(rated, train.matrix("rating").toarray() - base, 0.0)
    w = model.neighbors_.toarray()
    if cls is ItemKNN:  # target item, context user
        num, den = res @ w.T, rated.astype(float) @ w.T
    else:  # target user, context item
        num, den = w @ res, w @ rated.astype(float)
    adj = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    want = np.clip(base + adj, 1.0, 5.0)[uu, ii]
    got = model.predict(train.user_vocab.ids(uu), train.item_vocab.ids(ii))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_implicit_feedback_only_takes_cosine() -> None:
    with pytest.raises(ValueError, match="similarity"):
        ItemKNN(similarity="pearson")
    with pytest.raises(ValueError, match="shrinkage"):
        UserKNN(shrinkage=-1.0)


@pytest.mark.slow
def test_ml100k_u1(data_dir: Path) -> None:
    train, test = read_u1(data_dir)
    # Defaults are the reference itemknn (binary cosine, 100 neighbours): precision@10 0.4510.
    implicit = ItemKNN().fit(train)
    assert precision_at_10(implicit, test) == pytest.approx(0.4510, abs=0.001)
    explicit = ItemKNN(feedback="explicit", similarity="pearson_baseline", shrinkage=100.0)
    rmse, mae = rmse_mae(explicit.fit(train), test)
    assert rmse < 0.95 and mae < 0.75
    rmse, _ = rmse_mae(
        UserKNN(feedback="explicit", similarity="pearson_baseline", shrinkage=100.0,
                n_neighbors=300).fit(train),
        test,
    )
    assert rmse < 0.95
