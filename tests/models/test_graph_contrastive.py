"""UltraGCN and XSimGCL (`movierec.models.graph._contrastive`): their maths on hand-sized cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from movierec.artifact import load_model  # noqa: E402
from movierec.data.dataset import Dataset  # noqa: E402
from movierec.fold_in import fold_in_method  # noqa: E402
from movierec.models.graph import LightGCNModule, UltraGCN, XSimGCL  # noqa: E402
from movierec.models.graph._contrastive import (  # noqa: E402
    XSimGCLModule,
    info_nce,
    item_constraints,
    ultragcn_betas,
)
from movierec.models.graph._graph import sparse_adjacency  # noqa: E402

QUICK = {"embedding_size": 8, "epochs": 4, "batch_size": 64, "learning_rate": 0.02,
         "device": "cpu"}
ULTRA = {**QUICK, "n_negatives": 8, "negative_weight": 8.0, "n_neighbors": 3, "init_std": 0.1}


def taste_data(n_users: int = 60, n_items: int = 40, per_user: int = 12, seed: int = 0
               ) -> Dataset:
    """Each user rates the items a rank-2 taste model (plus Gumbel noise) likes best."""
    gen = np.random.default_rng(seed)
    u, v = gen.normal(size=(n_users, 2)), gen.normal(size=(n_items, 2))
    items = np.argsort(-(u @ v.T + gen.gumbel(size=(n_users, n_items))), axis=1)[:, :per_user]
    users, items = np.repeat(np.arange(n_users), per_user), items.ravel()
    frame = pd.DataFrame({"user_id": users + 1, "item_id": items + 101,
                          "rating": np.full(len(users), 4.0), "timestamp": np.arange(len(users))})
    return Dataset(frame, name="taste", rating_scale=(1.0, 5.0))


@pytest.fixture(scope="module")
def data() -> Dataset:
    return taste_data()


def history(data: Dataset, code: int) -> tuple[np.ndarray, np.ndarray]:
    row = data.matrix("rating")[code]
    return row.indices.astype(np.int64), row.data.astype(np.float64)


# A 3-user × 4-item graph: R = [[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]].
R = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]], dtype=np.float64))


# --- UltraGCN ------------------------------------------------------------------------------------
def test_ultragcn_betas_by_hand() -> None:
    """β_u = √(d_u + 1)/d_u, β_i = 1/√(d_i + 1); d_u = (2, 2, 4), d_i = (3, 2, 2, 1)."""
    bu, bi = ultragcn_betas(R)
    np.testing.assert_allclose(bu, [np.sqrt(3) / 2, np.sqrt(3) / 2, np.sqrt(5) / 4])
    np.testing.assert_allclose(bi, [1 / 2, 1 / np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(2)])
    # The pair weight of eq. 10: (1/d_u)·√((d_u + 1)/(d_i + 1)) for u = 2, i = 3.
    assert bu[2] * bi[3] == pytest.approx(0.25 * np.sqrt(5 / 2))


def test_item_constraints_by_hand() -> None:
    """G = RᵀR off the diagonal: G01 = 2, G02 = 2, G03 = 1, G12 = 1, G13 = 1, G23 = 1, so
    g = (5, 4, 4, 3) and ω_ij = G_ij · √(g_i + 1)/g_i / √(g_j + 1)."""
    g = np.array([[0, 2, 2, 1], [2, 0, 1, 1], [2, 1, 0, 1], [1, 1, 1, 0]], dtype=np.float64)
    gd = g.sum(1)
    omega = g * (np.sqrt(gd + 1) / gd)[:, None] / np.sqrt(gd + 1)[None, :]
    idx, val = item_constraints(R, 2)
    assert idx.shape == (4, 2) and idx.dtype == np.int64 and val.dtype == np.float32
    for i in range(4):
        np.testing.assert_allclose(val[i], np.sort(omega[i])[::-1][:2], rtol=1e-6)
        np.testing.assert_allclose(omega[i, idx[i]], val[i], rtol=1e-6)
        assert i not in idx[i][val[i] > 0]  # never its own neighbour
    # Item 0's best neighbours are 1 and 2 (G = 2), not 3 (G = 1).
    assert set(idx[0]) == {1, 2}
    # k above n_items − 1 keeps n_items − 1 columns; k = 0 none.
    assert item_constraints(R, 10)[0].shape == (4, 3)
    assert item_constraints(R, 0)[0].shape == (4, 0)
    # Blocked rows give the same result as one block.
    np.testing.assert_array_equal(item_constraints(R, 2, block=4)[1], val)


def test_ultragcn_loss_by_hand(data: Dataset) -> None:
    model = UltraGCN(**{**ULTRA, "epochs": 1, "w1": 0.3, "w3": 0.1, "reg": 0.01,
                        "lambda_": 0.5}).fit(data, rng=0, progress=False)
    module = model.module_
    gen = torch.Generator().manual_seed(0)
    batch = {"user": torch.tensor([0, 3, 7]), "item": torch.tensor([1, 2, 5])}
    batch["negative"] = torch.randint(0, data.n_items, (3, 8), generator=gen)
    with torch.no_grad():
        got = float(model.batch_loss(module, batch))
        eu = module.user_emb.weight.numpy().astype(np.float64)
        ei = module.item_emb.weight.numpy().astype(np.float64)
    bu, bi = ultragcn_betas(model.seen_)
    nb, w = item_constraints(model.seen_, 3)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    total = 0.0
    for u, i, js in zip(batch["user"].tolist(), batch["item"].tolist(),
                        batch["negative"].numpy(), strict=True):
        total -= (0.3 + bu[u] * bi[i]) * np.log(sig(eu[u] @ ei[i]))
        total -= 8.0 * np.mean([(0.1 + bu[u] * bi[j]) * np.log(sig(-eu[u] @ ei[j])) for j in js])
        total -= 0.5 * sum(w[i, k] * np.log(sig(eu[u] @ ei[nb[i, k]])) for k in range(3))
    total += 0.01 * ((eu**2).sum() + (ei**2).sum()) / 2
    assert got == pytest.approx(total / 3, rel=1e-5)


def test_ultragcn_dense_and_gathered_negatives_agree(data: Dataset) -> None:
    """Both ways of scoring the negatives give the same loss and gradients."""
    model = UltraGCN(**{**ULTRA, "epochs": 1}).fit(data, rng=0, progress=False)
    module = model.module_
    gen = torch.Generator().manual_seed(1)
    batch = {"user": torch.arange(10), "item": torch.arange(10) % data.n_items,
             "negative": torch.randint(0, data.n_items, (10, 8), generator=gen)}
    out = []
    for ratio in (0, 1000):  # gathered rows, then the full product
        model.dense_negatives_ratio = ratio
        module.zero_grad()
        loss = model.batch_loss(module, batch)
        loss.backward()
        out.append((float(loss.detach()), module.item_emb.weight.grad.clone()))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-6)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-5, atol=1e-7)


def test_ultragcn_scores_are_dot_products_and_beat_chance(data: Dataset) -> None:
    model = UltraGCN(**{**ULTRA, "epochs": 15}).fit(data, rng=1, progress=False)
    vectors = model.dot_vectors()
    users = np.arange(data.n_users)
    np.testing.assert_allclose(vectors.users @ vectors.items.T, model._score(users), rtol=1e-5,
                               atol=1e-6)
    losses = [h["train_loss"] for h in model.history_]
    assert losses[-1] < losses[0]
    # It learned the taste structure: the training items outrank the others on average.
    scores, seen = model._score(users), model.seen_.toarray() > 0
    assert scores[seen].mean() > scores[~seen].mean()


# --- XSimGCL -------------------------------------------------------------------------------------
def test_info_nce_by_hand() -> None:
    """Two users, two views: −½ Σ_v log softmax_w(cos(a_v, b_w)/τ)[v]."""
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
    tau = 0.5
    an = a.numpy() / np.linalg.norm(a.numpy(), axis=1, keepdims=True)
    bn = b.numpy() / np.linalg.norm(b.numpy(), axis=1, keepdims=True)
    s = an @ bn.T / tau
    expected = -np.mean([s[v, v] - np.log(np.exp(s[v]).sum()) for v in range(2)])
    assert float(info_nce(a, b, tau)) == pytest.approx(expected, rel=1e-6)
    # Identical, orthogonal views: the positive dominates as τ falls.
    eye = torch.eye(2)
    assert float(info_nce(eye, eye, 0.01)) < 1e-6
    assert float(info_nce(eye, eye, 1.0)) == pytest.approx(np.log(1 + np.exp(-1.0)), rel=1e-6)


def test_xsimgcl_without_noise_is_lightgcn_propagation() -> None:
    """ε = 0: train and eval layers agree and equal LightGCN's Â^k E^(0); the final
    representation is the mean of layers 1..K."""
    adj = sparse_adjacency(R)
    torch.manual_seed(0)
    x = XSimGCLModule(3, 4, 5, 3, adj, eps=0.0)
    light = LightGCNModule(3, 4, 5, 3, adj)
    light.load_state_dict(x.state_dict())
    x.train()
    with torch.no_grad():
        mine, theirs = x.layers(), light.layers()
        for got, want in zip(mine, theirs, strict=True):
            torch.testing.assert_close(got, want)
        x.eval()
        users, items = x.final()
        want = torch.stack(theirs[1:]).mean(0)
        torch.testing.assert_close(torch.cat([users, items]), want)


def test_xsimgcl_noise_has_norm_eps_and_keeps_signs() -> None:
    adj = sparse_adjacency(R)
    torch.manual_seed(0)
    x = XSimGCLModule(3, 4, 5, 2, adj, eps=0.2).train()
    with torch.no_grad():
        side = torch.randn(7, 5)
        out = x.step(0, side, side)
        delta = out - side
        torch.testing.assert_close(delta.norm(dim=1), torch.full((7,), 0.2))
        assert (torch.sign(delta) == torch.sign(side)).all()
        x.eval()
        torch.testing.assert_close(x.step(0, side, side), side)  # no noise outside training


def test_xsimgcl_loss_by_hand(data: Dataset) -> None:
    """With ε = 0 the loss is BPR + reg·(‖E_u‖ + ‖E_i‖)/B + λ(InfoNCE_u + InfoNCE_i) on the
    propagated representations, the contrast between the final layer mean and layer l*."""
    model = XSimGCL(**{**QUICK, "epochs": 1, "eps": 0.0, "lambda_": 0.3, "reg": 0.01,
                       "tau": 0.2, "n_layers": 2, "l_star": 1}).fit(data, rng=0, progress=False)
    module = model.module_.train()
    batch = {"user": torch.tensor([0, 3, 3, 7]), "item": torch.tensor([1, 2, 5, 5]),
             "negative": torch.tensor([[4], [9], [0], [11]])}
    with torch.no_grad():
        got = float(model.batch_loss(module, batch))
        adj = module.adj.to_dense().numpy().astype(np.float64)
        e0 = module.ego().numpy().astype(np.float64)
    e1 = adj @ e0
    e2 = adj @ e1
    final, view = (e1 + e2) / 2, e1
    nu = data.n_users
    u, i, j = batch["user"].numpy(), batch["item"].numpy(), batch["negative"].numpy()[:, 0]
    eu, ei, ej = final[u], final[nu + i], final[nu + j]
    bpr = np.mean(np.log1p(np.exp(-((eu * ei).sum(1) - (eu * ej).sum(1)))))
    l2 = 0.01 * (np.linalg.norm(eu) + np.linalg.norm(ei)) / 4

    def nce(a: np.ndarray, b: np.ndarray) -> float:
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        s = a @ b.T / 0.2
        return float(-np.mean(np.diag(s) - np.log(np.exp(s).sum(1))))

    uu, ii = np.unique(u), nu + np.unique(i)
    cl = nce(final[uu], view[uu]) + nce(final[ii], view[ii])
    assert got == pytest.approx(bpr + l2 + 0.3 * cl, rel=1e-4)


def test_xsimgcl_l_star_must_be_a_layer() -> None:
    with pytest.raises(ValueError, match="l_star"):
        XSimGCL(n_layers=2, l_star=3)
    with pytest.raises(ValueError, match="tau"):
        XSimGCL(tau=0.0)


# --- fold-in, persistence, ANN vectors -----------------------------------------------------------
def test_xsimgcl_fold_in_of_a_training_history_is_exact(data: Dataset) -> None:
    """The representation of a user is the mean of its layers 1..K, which its items' trained
    layers determine: folding in a training user's own history gives its fitted scores."""
    model = XSimGCL(**QUICK).fit(data, rng=0, progress=False)
    assert fold_in_method(model) == "model"
    for code in (0, 11, 42):
        own = model._score(np.array([code]))[0]
        np.testing.assert_allclose(model._score_history(*history(data, code)), own, rtol=1e-4,
                                   atol=1e-5)


def test_ultragcn_fold_in_agrees_with_the_fitted_users(data: Dataset) -> None:
    model = UltraGCN(**{**ULTRA, "epochs": 15}).fit(data, rng=0, progress=False)
    assert fold_in_method(model) == "model"
    overlaps = []
    for code in range(12):
        codes, r = history(data, code)
        folded, own = model._score_history(codes, r), model._score(np.array([code]))[0]
        folded[codes], own[codes] = -np.inf, -np.inf
        overlaps.append(len(set(np.argsort(-folded)[:10]) & set(np.argsort(-own)[:10])) / 10)
    # Measured 0.75 (seed 0; 0.79 with seed 1): mean top-10 overlap outside the history over 12
    # users; 10 random unrated items overlap about 0.35.
    assert np.mean(overlaps) >= 0.6


@pytest.mark.parametrize("cls", [UltraGCN, XSimGCL])
def test_save_load_keeps_scores_and_fold_in(cls: type, data: Dataset, tmp_path: Path) -> None:
    params = ULTRA if cls is UltraGCN else QUICK
    model = cls(**{**params, "epochs": 2}).fit(data, rng=0, progress=False)
    loaded = load_model(model.save(tmp_path / cls.__name__))
    users = np.arange(5)
    np.testing.assert_array_equal(loaded._score(users), model._score(users))
    codes, r = history(data, 3)
    np.testing.assert_array_equal(loaded._score_history(codes, r), model._score_history(codes, r))
    if cls is UltraGCN:  # the rebuilt constraint buffers match
        for name in ("beta_user", "beta_item", "neighbors", "neighbor_weights"):
            torch.testing.assert_close(getattr(loaded.module_, name),
                                       getattr(model.module_, name))
