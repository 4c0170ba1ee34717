"""Neighbour-sampled mini-batch training of the graph recommenders: the sampler and the models."""

from __future__ import annotations

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
    NeighborSampler,
    normalized_adjacency,
)

QUICK = {"embedding_size": 8, "n_layers": 2, "epochs": 2, "batch_size": 16, "device": "cpu"}


def random_seen(n_users: int = 40, n_items: int = 30, density: float = 0.3,
                seed: int = 1) -> sp.csr_matrix:
    m = sp.random(n_users, n_items, density=density, random_state=seed, format="csr")
    m = (m > 0).astype(np.float64).tolil()
    for u in range(n_users):  # every user and item has at least one edge
        m[u, u % n_items] = 1.0
    for i in range(n_items):
        m[i % n_users, i] = 1.0
    return m.tocsr()


def as_dataset(seen: sp.csr_matrix) -> Dataset:
    coo = seen.tocoo()
    ratings = 1.0 + (coo.row * 7 + coo.col * 3) % 5
    frame = pd.DataFrame({"user_id": coo.row + 100, "item_id": coo.col + 1000,
                          "rating": ratings.astype(float), "timestamp": np.arange(coo.nnz)})
    return Dataset(frame, name="random-graph", rating_scale=(1.0, 5.0))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- the sampler -------------------------------------------------------------------------------
def test_sampler_real_edges_fanout_and_seeds() -> None:
    seen = random_seen()
    n_users = seen.shape[0]
    a_hat = normalized_adjacency(seen).toarray()
    degree = (a_hat > 0).sum(1)
    k, hops = 3, 2
    sampler = NeighborSampler(seen, num_neighbors=k, n_layers=hops)
    seeds = torch.tensor([0, 7, 39, n_users + 2, n_users + 29])
    g = sampler.sample(seeds, gen(0))
    nodes, dst, src = g.nodes.numpy(), g.dst.numpy(), g.src.numpy()
    assert len(np.unique(nodes)) == len(nodes)
    np.testing.assert_array_equal(nodes[:len(seeds)], seeds.numpy())
    # Only real edges of the training graph, weighted Â · d / min(d, k).
    gd, gs = nodes[dst], nodes[src]
    assert (a_hat[gd, gs] > 0).all()
    expected = a_hat[gd, gs] * degree[gd] / np.minimum(degree[gd], k)
    np.testing.assert_allclose(g.weight.numpy(), expected, rtol=1e-6)
    # Each receiving node was expanded once and kept min(degree, k) distinct neighbours.
    pairs = set(zip(gd.tolist(), gs.tolist(), strict=True))
    assert len(pairs) == len(gd)
    receivers, counts = np.unique(gd, return_counts=True)
    np.testing.assert_array_equal(counts, np.minimum(degree[receivers], k))
    assert set(seeds.tolist()) <= set(receivers.tolist())
    # Every non-seed node was reached through a sampled edge; the last hop is not expanded.
    assert set(nodes[len(seeds):].tolist()) <= set(gs.tolist())
    assert len(receivers) < len(nodes)


def test_sampler_deterministic_under_seed() -> None:
    sampler = NeighborSampler(random_seen(), num_neighbors=2, n_layers=3)
    seeds = torch.tensor([1, 2, 3, 45])
    a, b, c = (sampler.sample(seeds, gen(s)) for s in (5, 5, 6))
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y)
    assert not (len(a.nodes) == len(c.nodes) and torch.equal(a.nodes, c.nodes)
                and torch.equal(a.src, c.src))


def test_sampler_batch_indices_point_at_the_seeds() -> None:
    seen = random_seen()
    sampler = NeighborSampler(seen, num_neighbors=4, n_layers=2)
    users = torch.tensor([3, 3, 10])
    items = torch.tensor([[0, 5], [7, 5], [29, 1]])
    out = sampler(users, items, gen(0))
    nodes = out["sub_nodes"]
    torch.testing.assert_close(nodes[out["sub_user"]], users)
    torch.testing.assert_close(nodes[out["sub_item"]], items + seen.shape[0])
    assert out["sub_item"].shape == items.shape


def copies(seen: sp.csr_matrix, n: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """n disjoint copies of the graph (so one call samples n independent draws), with the node
    ids of user u / item i in copy c at [c, u] and [c, i]."""
    nu, ni = seen.shape
    big = sp.block_diag([seen] * n, format="csr")
    users = np.arange(n)[:, None] * nu + np.arange(nu)[None, :]
    items = n * nu + np.arange(n)[:, None] * ni + np.arange(ni)[None, :]
    return big, users, items


def test_sampler_zero_hops_and_uniform_inclusion() -> None:
    seen = random_seen()
    g = NeighborSampler(seen, num_neighbors=3, n_layers=0).sample(torch.tensor([4, 50]), gen(0))
    assert g.nodes.tolist() == [4, 50] and len(g.dst) == 0
    # A node of degree d keeps each neighbour with probability k / d.
    node = int(np.argmax(np.diff(seen.indptr)))
    d = int(np.diff(seen.indptr)[node])
    n_draws = 800
    big, users, items = copies(seen, n_draws)
    g = NeighborSampler(big, num_neighbors=3, n_layers=1).sample(
        torch.from_numpy(users[:, node]), gen(0))
    kept = np.zeros(big.shape[0] + big.shape[1], dtype=bool)
    kept[g.nodes[g.src].numpy()] = True
    hits = kept[items].sum(0)  # per item of the original graph
    neighbours = seen[node].indices
    np.testing.assert_allclose(hits[neighbours] / n_draws, 3 / d, atol=0.06)
    assert hits.sum() == 3 * n_draws


def test_one_sampled_layer_is_unbiased() -> None:
    seen = random_seen()
    a_hat = torch.from_numpy(normalized_adjacency(seen).toarray()).float()
    nu = seen.shape[0]
    n_draws = 1000
    big, users, items = copies(seen, n_draws)
    local = [0, 5, 41 - nu, 60 - nu]  # two users, two items of the original graph
    seeds = torch.from_numpy(np.concatenate([users[:, local[:2]], items[:, local[2:]]], 1))
    x = torch.randn(a_hat.shape[0], 3, generator=gen(1))
    # x on the copies: node ids of copy c map back to original node ids.
    original = np.empty(big.shape[0] + big.shape[1], dtype=np.int64)
    original[users] = np.arange(nu)[None, :]
    original[items] = nu + np.arange(seen.shape[1])[None, :]
    g = NeighborSampler(big, num_neighbors=2, n_layers=1).sample(seeds.reshape(-1), gen(2))
    x_sub = x[torch.from_numpy(original)[g.nodes]]
    y = torch.zeros(len(g.nodes), 3).index_add_(0, g.dst, g.weight[:, None] * x_sub[g.src])
    draws = y[:seeds.numel()].reshape(n_draws, 4, 3)
    err = (draws.mean(0) - a_hat[[0, 5, 41, 60]] @ x).abs()
    assert (err < 4 * draws.std(0) / n_draws**0.5 + 1e-6).all(), err  # within 4 standard errors
    # The fanout bites: a single draw is not the full product.
    assert not torch.allclose(y[:4], a_hat[[0, 5, 41, 60]] @ x, atol=1e-3)


# --- sampled propagation equals the full graph with a large fanout ----------------------------
@pytest.mark.parametrize("make", [
    lambda: LightGCN(embedding_size=6, n_layers=3, epochs=1, device="cpu"),
    lambda: NGCF(embedding_size=6, n_layers=2, node_dropout=0.0, message_dropout=0.0, epochs=1,
                 device="cpu"),
    lambda: AttnGraphRec(embedding_size=6, n_layers=2, attention_size=4, hidden_size=8,
                         epochs=1, device="cpu"),
], ids=["lightgcn", "ngcf", "attngraphrec"])
def test_full_fanout_sampling_equals_full_propagation(make) -> None:
    seen = random_seen()
    model = make().fit(as_dataset(seen), rng=0, progress=False)
    module = model.module_.eval()
    max_degree = int(max(np.diff(seen.indptr).max(), np.diff(seen.tocsc().indptr).max()))
    users = torch.tensor([0, 3, 17, 39])
    items = torch.tensor([[2, 11], [29, 0], [5, 5], [14, 21]])
    with torch.no_grad():
        full_users, full_items = module.final()
        for fanout, exact in ((max_degree, True), (2, False)):
            sampler = NeighborSampler(model.seen_, num_neighbors=fanout, n_layers=model.n_layers)
            sub = sampler(users, items, gen(0))
            rep = module.sampled(sub["sub_nodes"], sub["sub_dst"], sub["sub_src"],
                                 sub["sub_weight"])
            got_u, got_i = rep[sub["sub_user"]], rep[sub["sub_item"]]
            if exact:  # all edges of the seeds' K-hop neighbourhood, with Â's values
                torch.testing.assert_close(got_u, full_users[users], rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(got_i, full_items[items], rtol=1e-5, atol=1e-6)
            else:  # a real sample: the estimate differs
                assert not torch.allclose(got_u, full_users[users], atol=1e-4)


# --- the models train on sampled subgraphs -----------------------------------------------------
MODELS = {
    "lightgcn": lambda **kw: LightGCN(**QUICK, **kw),
    "ngcf": lambda **kw: NGCF(**QUICK, **kw),
    "ngcf-mse": lambda **kw: NGCF(**QUICK, loss="mse", **kw),
    "attngraphrec": lambda **kw: AttnGraphRec(**QUICK, attention_size=4, hidden_size=8, **kw),
    "attngraphrec-bpr": lambda **kw: AttnGraphRec(**QUICK, attention_size=4, hidden_size=8,
                                                  loss="bpr", negatives="popularity", **kw),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_neighbor_sampling_fit_score_save_load(name: str, tiny: Dataset, tmp_path) -> None:
    model = MODELS[name](sampling="neighbor", num_neighbors=2)
    assert model.fit(tiny, rng=0, progress=False) is model
    assert model.params()["sampling"] == "neighbor" and model.params()["num_neighbors"] == 2
    scores = model.score(tiny.user_vocab.index)
    assert scores.shape == (tiny.n_users, tiny.n_items) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    assert all(np.isfinite(h["train_loss"]) for h in model.history_)
    again = MODELS[name](sampling="neighbor", num_neighbors=2).fit(tiny, rng=0, progress=False)
    np.testing.assert_array_equal(again.score(tiny.user_vocab.index), scores)
    model.save(tmp_path / "m")
    loaded = type(model).load(tmp_path / "m")
    assert loaded.sampling == "neighbor"
    np.testing.assert_array_equal(loaded.score(tiny.user_vocab.index), scores)


def test_sampling_changes_the_training_path(tiny: Dataset) -> None:
    full = LightGCN(**QUICK).fit(tiny, rng=0, progress=False)
    sampled = LightGCN(**QUICK, sampling="neighbor", num_neighbors=1).fit(tiny, rng=0,
                                                                         progress=False)
    assert not np.allclose(full.score(tiny.user_vocab.index),
                           sampled.score(tiny.user_vocab.index))


@pytest.mark.parametrize("make", [
    lambda: LightGCN(embedding_size=8, n_layers=2, epochs=15, batch_size=16, learning_rate=0.01,
                     sampling="neighbor", num_neighbors=2, negatives="popularity", device="cpu"),
    lambda: NGCF(embedding_size=8, n_layers=2, epochs=15, batch_size=16, learning_rate=0.01,
                 sampling="neighbor", num_neighbors=2, device="cpu"),
    lambda: AttnGraphRec(embedding_size=8, n_layers=2, epochs=15, batch_size=16,
                         learning_rate=0.01, loss="bpr", sampling="neighbor", num_neighbors=2,
                         device="cpu"),
], ids=["lightgcn-popularity", "ngcf", "attngraphrec"])
def test_sampled_bpr_loss_falls(make, checkerboard) -> None:
    train, _ = checkerboard
    model = make().fit(train, rng=0, progress=False)
    losses = [h["train_loss"] for h in model.history_]
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("cls", [LightGCN, NGCF, AttnGraphRec])
@pytest.mark.parametrize(("param", "value"), [("sampling", "edges"), ("num_neighbors", 0),
                                              ("num_neighbors", 2.5), ("negatives", "hard")])
def test_invalid_sampling_params(cls, param: str, value: object) -> None:
    with pytest.raises(ValueError, match=param):
        cls(**{param: value})


def test_choose_distinct_uniform_subsets() -> None:
    from movierec.models.graph._graph import choose_distinct

    n = torch.tensor([3, 5, 5, 40] * 1000)
    out = choose_distinct(n, 3, gen(0))
    assert out.shape == (4000, 3)
    assert ((out >= 0) & (out < n[:, None])).all()
    assert (out.sort(1).values.diff(dim=1) > 0).all()  # distinct within a row
    assert (out[n == 3].sort(1).values == torch.arange(3)).all()
    # Rows with n = 5: each of the C(5, 3) = 10 subsets about equally often (2000 rows).
    codes = (1 << out[n == 5]).sum(1)
    freq = torch.bincount(codes, minlength=32)[codes.unique()].double() / 2000
    assert len(freq) == 10 and (freq - 0.1).abs().max() < 0.03
