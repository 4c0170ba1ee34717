"""The maths of RP3beta: the walk weights by hand, the pruning, fold-in, bad parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.fold_in import fold_in
from movierec.models import load
from movierec.models.rp3beta import RP3beta, rp3beta_weights

S2, S3 = np.sqrt(2.0), np.sqrt(3.0)


def three_by_three() -> Dataset:
    """u0 rated items 0, 1; u1 rated 0, 1, 2; u2 rated 0: |I_u| = 2, 3, 1 and pop = 3, 2, 1."""
    rows = [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0)]
    return Dataset(pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(rating=4.0))


def rp3beta_direct(x: np.ndarray, alpha: float, beta: float, k: int, normalize: bool
                   ) -> np.ndarray:
    """Dacrema et al.'s order of operations, dense: normalize, power, product, discount, top-k."""
    # The power applies to stored (nonzero) entries only, as scipy's sparse `power` does.
    p_ui = np.where(x > 0, (x / x.sum(axis=1, keepdims=True)) ** alpha, 0.0)
    p_iu = np.where(x.T > 0, (x.T / x.T.sum(axis=1, keepdims=True)) ** alpha, 0.0)
    w = (p_iu @ p_ui) * x.sum(axis=0)[None, :] ** -beta
    np.fill_diagonal(w, 0.0)
    out = np.zeros_like(w)
    for i, row in enumerate(w):
        top = np.argsort(-row, kind="stable")[:k]
        top = top[row[top] > 0]
        out[i, top] = row[top]
    if normalize:
        sums = out.sum(axis=1, keepdims=True)
        out = np.divide(out, sums, out=np.zeros_like(out), where=sums > 0)
    return out


def test_weights_on_three_items_by_hand() -> None:
    model = RP3beta(alpha=1.0, beta=0.5, n_neighbors=10, normalize=False).fit(
        three_by_three(), progress=False)
    # (P_iu P_ui)[i, j] = (1/pop_i) Σ_u x_ui x_uj / |I_u|, then column j / sqrt(pop_j).
    expected = np.array([
        [0.0, 5 / 18 / S2, 1 / 9],
        [5 / 12 / S3, 0.0, 1 / 6],
        [1 / 3 / S3, 1 / 3 / S2, 0.0],
    ])
    np.testing.assert_allclose(model.item_weights_.toarray(), expected, rtol=1e-6)
    # score(u, ·) = X_u · W: user 2 rated item 0 only.
    np.testing.assert_allclose(model.score([2])[0], expected[0], rtol=1e-6)


def test_pruning_and_normalizing_by_hand() -> None:
    w = RP3beta(alpha=1.0, beta=0.5, n_neighbors=1, normalize=True).fit(
        three_by_three(), progress=False).item_weights_.toarray()
    # Row 0: 5/(18√2) = 0.196 > 1/9; row 1: 5/(12√3) = 0.241 > 1/6; row 2: 1/(3√2) > 1/(3√3).
    # One neighbour per row, normalized to 1.
    np.testing.assert_allclose(w, [[0, 1, 0], [1, 0, 0], [0, 1, 0]])


def test_ties_keep_the_lower_item() -> None:
    # beta = 0: row 2 holds 1/3 for items 0 and 1; one neighbour: item 0.
    w = RP3beta(beta=0.0, n_neighbors=1, normalize=False).fit(
        three_by_three(), progress=False).item_weights_.toarray()
    np.testing.assert_allclose(w[2], [1 / 3, 0.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize(("alpha", "beta", "k", "normalize"),
                         [(0.7, 0.3, 3, True), (1.3, 0.9, 2, False), (0.0, 0.0, 50, True)])
def test_matches_the_reference_order_of_operations(rng: np.random.Generator, alpha: float,
                                                   beta: float, k: int,
                                                   normalize: bool, monkeypatch) -> None:
    # Blocks of 2 rows, so the blocked product and top-k are exercised.
    monkeypatch.setattr("movierec.models.rp3beta._BLOCK_BYTES", 2 * 8 * 12)
    x = (rng.random((25, 12)) < 0.35).astype(float)
    x[np.arange(12), np.arange(12)] = 1.0  # every user and item has a rating
    got = rp3beta_weights(sp.csr_matrix(x), alpha=alpha, beta=beta, n_neighbors=k,
                          normalize=normalize)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.toarray(), rp3beta_direct(x, alpha, beta, k, normalize),
                               rtol=1e-5, atol=1e-7)
    assert (np.diff(got.indptr) <= k).all() and (got.diagonal() == 0).all()


def test_fold_in_equals_a_training_user(low_rank: Dataset) -> None:
    model = RP3beta(n_neighbors=20).fit(low_rank, progress=False)
    user = int(low_rank.user_vocab.index[3])
    history = low_rank.ratings[low_rank.ratings["user_id"] == user]
    new = fold_in(model, history["item_id"].to_numpy(), history["rating"].to_numpy())
    assert new.method == "model"
    np.testing.assert_allclose(new.scores, model.score([user])[0], rtol=1e-5, atol=1e-7)


def test_item_similarity_is_the_weights(low_rank: Dataset) -> None:
    model = RP3beta(n_neighbors=5).fit(low_rank, progress=False)
    codes = np.array([0, 7])
    np.testing.assert_array_equal(model._item_similarity(codes),
                                  model.item_weights_[codes].toarray())
    similar = model.similar_items(int(low_rank.item_vocab.index[0]), k=3, min_support=0,
                                  shrinkage=0)
    assert len(similar) == 3


def test_sparse_weights_round_trip(low_rank: Dataset, tmp_path: Path) -> None:
    model = RP3beta(n_neighbors=7).fit(low_rank, progress=False)
    loaded = load(model.save(tmp_path / "m"))
    assert isinstance(loaded, RP3beta) and sp.issparse(loaded.item_weights_)
    assert (loaded.item_weights_ != model.item_weights_).nnz == 0


@pytest.mark.parametrize(("param", "value"), [("alpha", -0.1), ("beta", float("nan")),
                                               ("n_neighbors", 0), ("n_neighbors", 2.5),
                                               ("normalize", "yes")])
def test_bad_params_give_one_line_naming_them(param: str, value: object) -> None:
    with pytest.raises(ValueError, match=param) as info:
        RP3beta(**{param: value})
    assert "\n" not in str(info.value)
