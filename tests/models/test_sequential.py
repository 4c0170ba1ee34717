"""LSTMRec and SASRec: histories, windows, causality, shapes and a learnable sequential pattern."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from movierec.data.dataset import Dataset
from movierec.models import get
from movierec.models.sequential import (
    LSTMRec,
    SASRec,
    SASRecModule,
    build_histories,
    build_windows,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one intra-op thread avoids spin-wait contention on busy machines."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


QUICK = {"embedding_size": 16, "dropout": 0.0, "max_len": 8, "batch_size": 16,
         "learning_rate": 0.01, "device": "cpu"}


def test_histories_by_hand() -> None:
    # user 0: items 3 (t=5), 1 (t=2), 2 (t=2; tie with 1 → by item), 0 (t=9)
    # user 1: a single item; user 2: no rating at all (padding only).
    users = np.array([0, 0, 0, 0, 1])
    items = np.array([3, 1, 2, 0, 4])
    ts = np.array([5, 2, 2, 9, 1])
    ratings = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    hist, rat = build_histories(users, items, ts, n_users=3, n_items=5, max_len=3,
                                ratings=ratings)
    pad = 5
    # user 0 in order: 1, 2, 3, 0 → truncated to the latest three
    np.testing.assert_array_equal(hist, [[2, 3, 0], [pad, pad, 4], [pad, pad, pad]])
    np.testing.assert_array_equal(rat, [[3.0, 1.0, 4.0], [0, 0, 5.0], [0, 0, 0]])
    long, _ = build_histories(users, items, ts, n_users=3, n_items=5, max_len=6)
    np.testing.assert_array_equal(long[0], [pad, pad, 1, 2, 3, 0])


def test_windows_by_hand() -> None:
    # one user, sequence 0 1 2 3 4 with max_len 2 → windows (from the end) [3,4], [1,2], [·,0]
    users = np.zeros(5, dtype=np.int64)
    items = np.array([4, 3, 2, 1, 0])
    ts = np.array([50, 40, 30, 20, 10])
    w = build_windows(users, items, ts, items.astype(float), n_users=1, n_items=5, max_len=2)
    pad = 5
    np.testing.assert_array_equal(w["user"], [0, 0, 0])
    np.testing.assert_array_equal(w["target"], [[3, 4], [1, 2], [pad, 0]])
    np.testing.assert_array_equal(w["input"], [[2, 3], [0, 1], [pad, pad]])
    np.testing.assert_array_equal(w["rating"], [[3, 4], [1, 2], [0, 0]])


def test_windows_cover_every_rating_once() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 7, 300)
    items = rng.integers(0, 40, 300)
    ts = rng.integers(0, 50, 300)
    w = build_windows(users, items, ts, np.ones(300), n_users=7, n_items=40, max_len=9)
    valid = w["target"] != 40
    assert valid.sum() == 300
    np.testing.assert_array_equal(np.bincount(w["user"][:, None].repeat(9, 1)[valid],
                                              minlength=7), np.bincount(users, minlength=7))


def test_sasrec_is_causal() -> None:
    torch.manual_seed(0)
    module = SASRecModule(n_items=20, embedding_size=16, max_len=10, n_layers=2, n_heads=2,
                          dropout=0.0).eval()
    seq = torch.tensor([[20, 20, 3, 5, 7, 1, 9, 2, 4, 6]])
    other = seq.clone()
    other[0, 7:] = torch.tensor([11, 12, 13])
    with torch.no_grad():
        a, b = module(seq), module(other)
    assert a.shape == (1, 10, 16)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def _cyclic(n_users: int = 40, n_items: int = 12, seed: int = 0) -> tuple[Dataset, dict]:
    """Everyone watches items in the cyclic order 0→1→…; the next item is the truth."""
    rng = np.random.default_rng(seed)
    rows, nxt = [], {}
    for u in range(n_users):
        start, length = int(rng.integers(n_items)), int(rng.integers(4, 8))
        for t in range(length):
            rows.append((u, (start + t) % n_items, 4.0, 1000 * u + t))
        nxt[u] = (start + length) % n_items
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Dataset(frame, name="cyclic"), nxt


@pytest.mark.parametrize("name,extra", [
    ("lstm", {"hidden_size": 32, "epochs": 25, "learning_rate": 0.02}),
    ("sasrec", {"epochs": 25, "n_negatives": 3, "learning_rate": 0.02}),
])
def test_learns_next_item_in_cycle(name: str, extra: dict) -> None:
    train, nxt = _cyclic()
    model = get(name, **(QUICK | extra)).fit(train, rng=0, progress=False)
    users = np.array(sorted(nxt))
    rec = model.recommend(users, k=1)
    got = dict(zip(rec["user_id"], rec["item_id"], strict=True))
    accuracy = np.mean([got[u] == nxt[u] for u in users])
    assert accuracy >= 0.95, accuracy


@pytest.mark.parametrize("cls", [LSTMRec, SASRec])
def test_shapes_and_unknown_user(cls: type, tiny: Dataset) -> None:
    model = cls(**QUICK, epochs=2).fit(tiny, rng=0, progress=False)
    assert model.uses_sequence
    assert model.sequences_.shape == (tiny.n_users, 8) and model.sequences_.dtype == np.int64
    with model._eval() as module:
        users = torch.tensor([0, 1, -1])
        full = model.score_block(module, users, None)
        some = model.score_block(module, users, torch.tensor([2, 0]))
    assert full.shape == (3, tiny.n_items) and some.shape == (3, 2)
    assert torch.isfinite(full).all()
    torch.testing.assert_close(some, full[:, [2, 0]])
    vectors = model.item_vectors()
    assert vectors.shape == (tiny.n_items, 16)


def test_lstm_mse_predicts_ratings(tiny: Dataset) -> None:
    model = LSTMRec(**QUICK, loss="mse", user_embedding=True, epochs=30)
    model.fit(tiny, rng=0, progress=False)
    assert model.objective == "rating"
    losses = [h["train_loss"] for h in model.history_]
    assert losses[-1] < losses[0]
    pred = model.predict(tiny.ratings["user_id"].to_numpy(), tiny.ratings["item_id"].to_numpy())
    assert pred.dtype == np.float32 and np.all((pred >= 1) & (pred <= 5))
    rmse = float(np.sqrt(np.mean((pred - tiny.ratings["rating"].to_numpy()) ** 2)))
    assert rmse < 1.3


def test_history_is_the_evaluation_context(tiny: Dataset) -> None:
    """The score of a user depends on the stored history: a changed history changes scores."""
    model = SASRec(**QUICK, epochs=3).fit(tiny, rng=0, progress=False)
    before = model.score([1])
    model.sequences_ = model.sequences_.copy()
    model.sequences_[0, -1] = (model.sequences_[0, -1] + 1) % tiny.n_items
    model._contexts_cache = None
    assert not np.allclose(before, model.score([1]))


def test_invalid_params() -> None:
    with pytest.raises(ValueError, match="n_heads"):
        SASRec(embedding_size=10, n_heads=3)
    with pytest.raises(ValueError, match="loss"):
        SASRec(loss="mse")
    with pytest.raises(ValueError, match="max_len"):
        LSTMRec(max_len=0)
