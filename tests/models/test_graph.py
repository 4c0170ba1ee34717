"""Graph recommenders: normalized adjacency, propagation, NGCF layers, attention, training."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import scipy.sparse as sp  # noqa: E402

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.models.graph import (  # noqa: E402
    NGCF,
    AttnGraphRec,
    LightGCN,
    PopularityNegativeSampler,
    normalized_adjacency,
    sparse_adjacency,
)

QUICK = {"embedding_size": 8, "n_layers": 2, "epochs": 2, "batch_size": 64, "device": "cpu"}


def frame(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    return pd.DataFrame([(u, i, r, t) for t, (u, i, r) in enumerate(rows)],
                        columns=["user_id", "item_id", "rating", "timestamp"])


@pytest.fixture
def two_by_three() -> Dataset:
    """R = [[1, 1, 0], [0, 1, 1]]: user degrees (2, 2), item degrees (1, 2, 1)."""
    return Dataset(frame([(1, 10, 4.0), (1, 20, 5.0), (2, 20, 3.0), (2, 30, 4.0)]),
                   name="2x3", rating_scale=(1.0, 5.0))


def test_normalized_adjacency_by_hand(two_by_three: Dataset) -> None:
    # A validation interaction (user 1, item 30) must not enter the graph.
    valid = Dataset(frame([(1, 30, 5.0)]), name="valid")
    model = LightGCN(**QUICK).fit(two_by_three, valid, rng=0, progress=False)
    got = model.module_.adj.to_dense().numpy()
    s = 1 / np.sqrt(2)
    r = np.array([[s, 0.5, 0.0], [0.0, 0.5, s]])
    expected = np.zeros((5, 5))
    expected[:2, 2:] = r
    expected[2:, :2] = r.T
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_array_equal(got, got.T)
    assert got[0, 4] == 0  # the validation edge is absent
    ref = normalized_adjacency(sp.csr_matrix([[1, 1, 0], [0, 1, 1]])).toarray()
    np.testing.assert_allclose(ref, expected)


def test_isolated_node_has_zero_row() -> None:
    seen = sp.csr_matrix(np.array([[1, 0], [0, 0]]))
    a = sparse_adjacency(seen).to_dense().numpy()
    assert np.isfinite(a).all() and a[1].sum() == 0 and a[3].sum() == 0
    assert a[0, 2] == pytest.approx(1.0)


def test_lightgcn_propagation_equals_dense(tiny: Dataset) -> None:
    model = LightGCN(embedding_size=4, n_layers=3, epochs=1, device="cpu")
    model.fit(tiny, rng=1, progress=False)
    module = model.module_.eval()
    e0 = module.ego().detach().numpy().astype(np.float64)
    r = tiny.matrix("binary").toarray().astype(np.float64)
    nu, ni = r.shape
    a = np.zeros((nu + ni, nu + ni))
    a[:nu, nu:], a[nu:, :nu] = r, r.T
    d = a.sum(1)
    dinv = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
    a_hat = dinv[:, None] * a * dinv[None, :]
    layers, e = [e0], e0
    for _ in range(3):
        e = a_hat @ e
        layers.append(e)
    final = np.mean(layers, axis=0)
    with torch.no_grad():
        users, items = module.final()
    np.testing.assert_allclose(users.numpy(), final[:nu], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(items.numpy(), final[nu:], rtol=1e-5, atol=1e-6)
    # Scores are dot products of the final embeddings.
    np.testing.assert_allclose(model.score(tiny.user_vocab.index), final[:nu] @ final[nu:].T,
                               rtol=1e-4, atol=1e-6)


def test_scoring_cache_follows_weights(tiny: Dataset) -> None:
    model = LightGCN(**QUICK).fit(tiny, rng=0, progress=False)
    before = model.score(tiny.user_vocab.index)
    np.testing.assert_array_equal(before, model.score(tiny.user_vocab.index))
    with torch.no_grad():
        model.module_.user_emb.weight.mul_(2.0)
        model.module_.item_emb.weight.mul_(2.0)
    np.testing.assert_allclose(model.score(tiny.user_vocab.index), 4 * before, rtol=1e-5)


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4])
def test_ngcf_layer_shapes_and_concat(tiny: Dataset, n_layers: int) -> None:
    model = NGCF(embedding_size=8, n_layers=n_layers, epochs=1, device="cpu")
    model.fit(tiny, rng=0, progress=False)
    module = model.module_.eval()
    n = tiny.n_users + tiny.n_items
    with torch.no_grad():
        out = module.layer(0, module.adj, module.ego())
        users, items = module.final()
    assert out.shape == (n, 8)
    assert len(module.w1) == len(module.w2) == n_layers
    assert users.shape == (tiny.n_users, 8 * (n_layers + 1))
    assert items.shape == (tiny.n_items, 8 * (n_layers + 1))
    assert model.item_vectors().shape == (tiny.n_items, 8 * (n_layers + 1))


def test_ngcf_rejects_five_layers() -> None:
    with pytest.raises(ValueError, match="n_layers"):
        NGCF(n_layers=5)


def test_node_dropout_only_in_train_mode(tiny: Dataset) -> None:
    model = NGCF(embedding_size=8, n_layers=2, node_dropout=0.5, epochs=1, device="cpu")
    model.fit(tiny, rng=0, progress=False)
    module = model.module_
    full = module.adj
    module.train()
    torch.manual_seed(0)
    dropped = [module.graph() for _ in range(5)]
    assert any(g._nnz() < full._nnz() for g in dropped)
    for g in dropped:  # kept edges are rescaled by 1/(1 − p)
        dense, ref = g.to_dense(), full.to_dense()
        kept = dense != 0
        torch.testing.assert_close(dense[kept], ref[kept] * 2)
    module.eval()
    assert module.graph() is full
    a = model.score(tiny.user_vocab.index)
    np.testing.assert_array_equal(a, model.score(tiny.user_vocab.index))


def test_attention_weights_sum_to_one(tiny: Dataset) -> None:
    model = AttnGraphRec(**QUICK, attention_size=4, hidden_size=8)
    model.fit(tiny, rng=0, progress=False)
    users = tiny.ratings["user_id"].to_numpy()
    items = tiny.ratings["item_id"].to_numpy()
    w = model.attention(users, items)
    assert w.shape == (len(users), 2, QUICK["n_layers"] + 1)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    assert (w >= 0).all()
    # The weights are per pair: the same user gets different weights for different items.
    w1 = model.attention(np.array([1, 1]), np.array([10, 50]))
    assert not np.allclose(w1[0], w1[1])
    pred = model.predict(users, items)
    assert pred.shape == (len(users),) and ((pred >= 1) & (pred <= 5)).all()


def test_attngraphrec_chunked_scoring_matches_pairs(tiny: Dataset) -> None:
    model = AttnGraphRec(**QUICK, attention_size=4, hidden_size=8, loss="bpr")
    model.fit(tiny, rng=0, progress=False)
    full = model.score(tiny.user_vocab.index)
    model.pair_chunk = 3  # instance override: many tiny chunks
    np.testing.assert_allclose(model.score(tiny.user_vocab.index), full, rtol=1e-5, atol=1e-6)
    u = np.repeat(tiny.user_vocab.index, tiny.n_items)
    i = np.tile(tiny.item_vocab.index, tiny.n_users)
    np.testing.assert_allclose(model.predict(u, i), np.clip(full.ravel(), 1, 5), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: LightGCN(embedding_size=8, n_layers=2, epochs=15, batch_size=16,
                     learning_rate=0.01, device="cpu"),
    lambda: NGCF(embedding_size=8, n_layers=2, epochs=15, batch_size=16, learning_rate=0.01,
                 negatives="popularity", device="cpu"),
    lambda: AttnGraphRec(embedding_size=8, n_layers=2, epochs=15, batch_size=16,
                         learning_rate=0.01, loss="bpr", device="cpu"),
], ids=["lightgcn", "ngcf-popularity", "attngraphrec"])
def test_bpr_loss_falls(make, checkerboard) -> None:
    train, _ = checkerboard
    model = make().fit(train, rng=0, progress=False)
    losses = [h["train_loss"] for h in model.history_]
    assert losses[-1] < 0.8 * losses[0]


def test_ngcf_mse_predicts_ratings(tiny: Dataset) -> None:
    model = NGCF(embedding_size=8, n_layers=2, loss="mse", epochs=30, batch_size=16,
                 learning_rate=0.01, device="cpu")
    model.fit(tiny, rng=0, progress=False)
    assert model.objective == "rating"
    u, i = tiny.ratings["user_id"].to_numpy(), tiny.ratings["item_id"].to_numpy()
    pred = model.predict(u, i)
    rmse = np.sqrt(np.mean((pred - tiny.ratings["rating"].to_numpy()) ** 2))
    assert rmse < np.std(tiny.ratings["rating"].to_numpy())
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]


def test_popularity_sampler_unseen_and_skewed() -> None:
    rng = np.random.default_rng(0)
    seen = (sp.random(50, 30, density=0.3, random_state=1, format="csr") > 0).astype(float)
    seen = sp.vstack([sp.csr_matrix((1, 30)), seen[1:]]).tocsr()  # user 0 has seen nothing
    sampler = PopularityNegativeSampler(seen)
    users = rng.integers(0, 50, 2000)
    neg = sampler(users, 3, torch.Generator().manual_seed(0)).numpy()
    assert not seen.toarray()[users[:, None], neg].any()
    # For a user without history, P(j) = count_j^0.75 / Σ count^0.75.
    draws = sampler(np.zeros(40000, dtype=np.int64), 1, torch.Generator().manual_seed(1))
    freq = np.bincount(draws.numpy().ravel(), minlength=30) / 40000
    counts = np.asarray(seen.sum(0)).ravel()
    expected = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(freq, expected, atol=0.01)


def test_save_load_rebuilds_graph(tiny: Dataset, tmp_path) -> None:
    model = NGCF(**QUICK).fit(tiny, rng=0, progress=False)
    model.save(tmp_path / "m")
    loaded = NGCF.load(tmp_path / "m")
    torch.testing.assert_close(loaded.module_.adj.to_dense(), model.module_.adj.to_dense())
    np.testing.assert_array_equal(loaded.score(tiny.user_vocab.index),
                                  model.score(tiny.user_vocab.index))


def test_propagation_fast_at_ml1m_size() -> None:
    n_users, n_items, nnz = 6040, 3706, 1_000_000
    rng = np.random.default_rng(0)
    seen = sp.csr_matrix((np.ones(nnz), (rng.integers(0, n_users, nnz),
                                         rng.integers(0, n_items, nnz))),
                         shape=(n_users, n_items))
    t0 = time.perf_counter()
    adj = sparse_adjacency(seen)
    build = time.perf_counter() - t0
    e = torch.randn(n_users + n_items, 64)
    t0 = time.perf_counter()
    for _ in range(3):
        e = torch.sparse.mm(adj, e)
    per_layer = (time.perf_counter() - t0) / 3
    assert build < 5.0 and per_layer < 0.5, (build, per_layer)
