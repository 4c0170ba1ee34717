"""The threaded numba kernels: iALS's CG solves on several threads, and MF's numba BPR backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytest.importorskip("numba")
pytest.importorskip("torch")

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.errors import MovieRecError  # noqa: E402
from movierec.fold_in import fold_in  # noqa: E402
from movierec.models import load  # noqa: E402
from movierec.models._bpr_numba import bpr_sgd  # noqa: E402
from movierec.models._numba_threads import balanced_blocks, model_threads  # noqa: E402
from movierec.models.als import ImplicitALS, cg_half_sweep, cg_rows  # noqa: E402
from movierec.models.mf import MF, MFModule  # noqa: E402
from movierec.random import as_generator  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

ALS: dict[str, Any] = {"embedding_size": 8, "epochs": 5, "reg": 0.1, "alpha": 5.0}
BPR: dict[str, Any] = {"loss": "bpr", "backend": "numba", "embedding_size": 8, "epochs": 40,
       "learning_rate": 0.05, "reg": 0.01}


def planted(n_users: int = 60, n_items: int = 40, per_user: int = 12, seed: int = 0) -> Dataset:
    """Two halves of users, each rating `per_user` random items of its own half of the items."""
    gen = np.random.default_rng(seed)
    half = n_items // 2
    rows = []
    for u in range(n_users):
        group = u % 2
        for i in gen.choice(half, per_user, replace=False):
            rows.append((u + 1, group * half + int(i) + 1, float(gen.integers(3, 6)), u))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Dataset(frame.astype({"user_id": "int32", "item_id": "int32", "rating": "float32"}),
                   name="planted", rating_scale=(1.0, 5.0))


def in_group_share(model: MF | ImplicitALS, ds: Dataset, k: int = 5) -> float:
    """Share of the users' top-k unseen recommendations that lie in their own item half."""
    users = np.asarray(ds.user_vocab.index)
    recs = model.recommend(users, k=k)
    half = ds.n_items // 2
    own = (recs["user_id"].to_numpy() - 1) % 2 == (recs["item_id"].to_numpy() - 1) // half
    return float(own.mean())


# --- threads --------------------------------------------------------------------------------------
def test_model_threads_follows_the_parameter_then_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOVIEREC_THREADS", raising=False)
    assert model_threads(None) == 1
    assert model_threads(3) == 3
    monkeypatch.setenv("MOVIEREC_THREADS", "2")
    assert model_threads(None) == 2
    with pytest.raises(ValueError, match="threads"):
        model_threads(0)
    with pytest.raises(ValueError, match="threads"):
        ImplicitALS(threads=0)
    with pytest.raises(ValueError, match="threads"):
        MF(loss="bpr", backend="numba", threads=1.5)  # type: ignore[arg-type]


def test_balanced_blocks_cover_every_row_once_with_equal_cost() -> None:
    counts = np.array([50, 1, 1, 1, 1, 1, 1, 1, 1, 48, 2, 2])
    indptr = np.concatenate([[0], np.cumsum(counts)])
    bounds = balanced_blocks(indptr, 1, 4)
    assert bounds[0] == 0 and bounds[-1] == len(counts) and np.all(np.diff(bounds) > 0)
    assert len(bounds) <= 5
    cost = [int(indptr[b] - indptr[a]) + int(b - a)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    assert max(cost) <= 60  # the heavy rows end up in different blocks (total cost 122)
    np.testing.assert_array_equal(balanced_blocks(indptr, 1, 1), [0, len(counts)])


# --- iALS -----------------------------------------------------------------------------------------
def test_ials_one_thread_repeats_the_single_threaded_release(low_rank: Dataset) -> None:
    """`fit` with one thread equals the release before threads: its loop, written out here.

    Whole-matrix half-sweeps (`cg_half_sweep`) from the same seeded start. Compared with this
    machine's own run of that loop, not with pinned numbers: float32 factors after a few ALS
    epochs move by about 1 % between CPUs (the factors are only defined up to a rotation, which
    rounding differences in YᵀY steer), so numbers pinned on one machine fail on another.
    """
    model = ImplicitALS(**ALS, threads=1).fit(low_rank, rng=0, progress=False)
    ref = ImplicitALS(**ALS)
    ref._setup(low_rank)
    gen = as_generator(0)
    cu = ref._confidence_matrix(low_rank)
    ci = sp.csr_matrix(cu.T)
    k = ALS["embedding_size"]
    x = (gen.random((ref.n_users, k)) * ref.init_std).astype(np.float32)
    y = (gen.random((ref.n_items, k)) * ref.init_std).astype(np.float32)
    reg = np.float32(ALS["reg"])
    for _ in range(ALS["epochs"]):
        cg_half_sweep(cu.indptr, cu.indices, cu.data, x, y, (y.T @ y).astype(np.float32), reg,
                      ref.cg_steps)
        cg_half_sweep(ci.indptr, ci.indices, ci.data, y, x, (x.T @ x).astype(np.float32), reg,
                      ref.cg_steps)
    np.testing.assert_array_equal(model.user_factors_, x)
    np.testing.assert_array_equal(model.item_factors_, y)
    # And the model learnt the data: the users' own items score above the rest on average.
    scores = x @ y.T
    seen = low_rank.matrix("binary").toarray() > 0
    assert scores[seen].mean() > scores[~seen].mean() + 0.1


@pytest.mark.parametrize("threads", [2, 3])
def test_ials_factors_are_identical_for_every_thread_count(low_rank: Dataset,
                                                           threads: int) -> None:
    one = ImplicitALS(**ALS, threads=1).fit(low_rank, rng=0, progress=False)
    many = ImplicitALS(**ALS, threads=threads).fit(low_rank, rng=0, progress=False)
    np.testing.assert_array_equal(many.user_factors_, one.user_factors_)
    np.testing.assert_array_equal(many.item_factors_, one.item_factors_)


def test_ials_threads_follow_movierec_threads(low_rank: Dataset,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_THREADS", "2")
    model = ImplicitALS(**ALS).fit(low_rank, rng=0, progress=False)
    assert model.threads is None and model.params()["threads"] is None
    one = ImplicitALS(**ALS, threads=1).fit(low_rank, rng=0, progress=False)
    np.testing.assert_array_equal(model.user_factors_, one.user_factors_)


def test_cg_rows_on_row_ranges_equals_the_whole_sweep(rng: np.random.Generator) -> None:
    import scipy.sparse as sp

    c = sp.random(30, 20, density=0.3, format="csr", random_state=1, dtype=np.float32)
    y = rng.random((20, 4)).astype(np.float32)
    x = rng.random((30, 4)).astype(np.float32)
    yty = (y.T @ y).astype(np.float32)
    whole, parts = x.copy(), x.copy()
    cg_half_sweep(c.indptr, c.indices, c.data, whole, y, yty, np.float32(0.1), 3)
    for a, b in ((0, 7), (7, 8), (8, 30)):
        cg_rows(c.indptr, c.indices, c.data, parts, y, yty, np.float32(0.1), 3, a, b)
    np.testing.assert_array_equal(parts, whole)
    assert not np.array_equal(whole, x)


# --- BPR (numba backend of MF) --------------------------------------------------------------------
def test_bpr_sgd_step_is_the_textbook_update() -> None:
    # Two users with one item each: every unskipped sample is (u, i = u, j = 1 − u).
    indptr = np.array([0, 1, 2], dtype=np.int64)
    indices = np.array([0, 1], dtype=np.int64)
    users = np.array([0, 1], dtype=np.int64)
    gen = np.random.default_rng(0)
    p0 = gen.normal(size=(2, 3)).astype(np.float32)
    q0 = gen.normal(size=(2, 3)).astype(np.float32)
    b0 = np.array([0.2, -0.1], dtype=np.float32)
    lr, reg = 0.1, 0.05
    for seed in range(1, 50):
        p, q, b = p0.copy(), q0.copy(), b0.copy()
        correct, skipped = bpr_sgd(users, indptr, indices, p, q, b, 1, np.float32(lr),
                                   np.float32(reg), np.uint64(seed))
        if skipped:
            np.testing.assert_array_equal(p, p0)
            continue
        u = int(np.flatnonzero(np.any(p != p0, axis=1))[0])
        i, j = u, 1 - u
        x = b0[i] - b0[j] + p0[u] @ (q0[i] - q0[j])
        z = 1 / (1 + np.exp(x))
        assert correct == int(x > 0)
        np.testing.assert_allclose(p[u], p0[u] + lr * (z * (q0[i] - q0[j]) - reg * p0[u]),
                                   rtol=1e-5)
        np.testing.assert_allclose(q[i], q0[i] + lr * (z * p0[u] - reg * q0[i]), rtol=1e-5)
        np.testing.assert_allclose(q[j], q0[j] + lr * (-z * p0[u] - reg * q0[j]), rtol=1e-5)
        assert b[i] == pytest.approx(b0[i] + lr * (z - reg * b0[i]), rel=1e-5)
        assert b[j] == pytest.approx(b0[j] + lr * (-z - reg * b0[j]), rel=1e-5)
        np.testing.assert_array_equal(p[1 - u], p0[1 - u])
        break
    else:
        pytest.fail("every seed drew a rated negative")


def test_numba_bpr_ranks_a_planted_pattern() -> None:
    ds = planted()
    model = MF(**BPR, threads=1).fit(ds, rng=0, progress=False)
    assert in_group_share(model, ds) >= 0.95
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]
    module = model.module_
    assert isinstance(module, MFModule)
    np.testing.assert_array_equal(module.user_bias.weight.detach().numpy(), 0.0)


def test_numba_bpr_repeats_with_one_thread_and_runs_hogwild_on_two() -> None:
    ds = planted()
    a = MF(**BPR, threads=1).fit(ds, rng=3, progress=False)
    b = MF(**BPR, threads=1).fit(ds, rng=3, progress=False)
    c = MF(**BPR, threads=1).fit(ds, rng=4, progress=False)
    np.testing.assert_array_equal(a.item_vectors(), b.item_vectors())
    assert not np.array_equal(a.item_vectors(), c.item_vectors())
    two = MF(**BPR, threads=2).fit(ds, rng=3, progress=False)
    assert in_group_share(two, ds) >= 0.95


def test_numba_bpr_saves_loads_and_folds_in(tmp_path: Path) -> None:
    ds = planted()
    model = MF(**BPR, threads=1).fit(ds, rng=0, progress=False)
    back = load(model.save(tmp_path / "bpr"))
    assert isinstance(back, MF) and back.params()["backend"] == "numba"
    users = np.asarray(ds.user_vocab.index[:10])
    pd.testing.assert_frame_equal(back.recommend(users, k=5), model.recommend(users, k=5))
    # Fold-in is MF's closed form over the learned factors, the same before and after loading.
    # (Its ridge fit of rating residuals is not a BPR objective: ranking quality is not tested.)
    history, ratings = list(range(1, 9)), [5.0, 4.0, 5.0, 3.0, 4.0, 5.0, 4.0, 4.0]
    folded = fold_in(back, history, ratings)
    assert folded.method == "model" and folded.scores.shape == (ds.n_items,)
    assert np.isfinite(folded.scores).all() and np.ptp(folded.scores) > 0
    np.testing.assert_allclose(folded.scores, fold_in(model, history, ratings).scores, rtol=1e-6)


def test_numba_bpr_early_stops_on_validation() -> None:
    ds = planted()
    train = Dataset(ds.ratings.iloc[::2].reset_index(drop=True), name="train",
                    rating_scale=(1.0, 5.0))
    valid = Dataset(ds.ratings.iloc[1::2].reset_index(drop=True), name="valid",
                    rating_scale=(1.0, 5.0))
    seen: list[dict] = []
    model = MF(**{**BPR, "epochs": 30, "patience": 2}, threads=1).fit(
        train, valid, rng=0, progress=False, on_epoch=seen.append)
    assert len(seen) == len(model.history_) and "valid_metric" in seen[0]
    best = max(r["valid_metric"] for r in model.history_)
    assert model.history_[model.best_epoch_ - 1]["valid_metric"] == best


def test_numba_backend_rejects_what_it_cannot_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="backend"):
        MF(backend="numba")  # loss="mse"
    with pytest.raises(ValueError, match="backend"):
        MF(loss="bpr", backend="numba", dropout=0.1)
    with pytest.raises(ValueError, match="backend"):
        MF(loss="bpr", backend="jax")
    with pytest.raises(MovieRecError, match="checkpoint_dir"):
        MF(**BPR).fit(planted(), rng=0, progress=False, checkpoint_dir=tmp_path)
