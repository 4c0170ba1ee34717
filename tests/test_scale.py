"""Scoring at scale: memory budgets pick user blocks without changing any result, nothing holds
all users x all items, and the item-item models either stay bounded or refuse, naming the need."""

from __future__ import annotations

import logging
import tracemalloc
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from movierec import ranking as base_module
from movierec.data.dataset import Dataset
from movierec.errors import MovieRecError
from movierec.evaluate import evaluate
from movierec.models import get
from movierec.models.base import (
    BYTES_PER_SCORE,
    Recommender,
    block_size_for,
    resolve_block_size,
    topk_rows,
)
from movierec.models.ease import EASE, memory_needed_gb
from movierec.models.knn import UserKNN, similarity_matrix, similarity_pairs
from movierec.split import Split


class RandomScores(Recommender):
    """Seeded random float32 scores with many exact ties (values rounded to 0.1)."""

    name = "random-scores"

    def __init__(self) -> None:
        pass

    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: Any = None,
            progress: bool = True) -> RandomScores:
        self._setup(train)
        gen = np.random.default_rng(0)
        self.scores_ = np.round(gen.random((self.n_users, self.n_items)), 1).astype(np.float32)
        return self

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        s = self.scores_[user_codes]
        return s if item_codes is None else s[:, item_codes]


def interactions(n_users: int, n_items: int, density: float, seed: int = 1) -> pd.DataFrame:
    gen = np.random.default_rng(seed)
    u, i = np.nonzero(gen.random((n_users, n_items)) < density)
    return pd.DataFrame({"user_id": u + 1, "item_id": i + 1,
                         "rating": gen.integers(1, 6, len(u)).astype(np.float32),
                         "timestamp": gen.integers(0, 10**6, len(u))})


@pytest.fixture
def split() -> Split:
    frame = interactions(60, 40, 0.25)
    test = np.random.default_rng(2).random(len(frame)) < 0.2
    return Split(train=Dataset(frame[~test]), test=Dataset(frame[test]), name="random")


def budget_for(users: int, n_items: int, bytes_per_score: int = BYTES_PER_SCORE) -> float:
    """The max_memory_mb that holds exactly `users` users a block."""
    return users * n_items * bytes_per_score / 1e6


# --- the budget -> block arithmetic -----------------------------------------------------------
def test_block_is_budget_over_items_times_bytes_per_score() -> None:
    assert BYTES_PER_SCORE == 20
    assert block_size_for(60_000, 1000.0) == 833  # 10^9 / (60,000 x 20)
    assert block_size_for(1000, 1.0) == 50
    assert block_size_for(1000, 1.0, bytes_per_score=28) == 35


def test_default_is_1024_users_unless_the_catalog_is_large() -> None:
    assert resolve_block_size(1682) == 1024
    assert resolve_block_size(3706) == 1024
    assert resolve_block_size(60_000) == 208  # 250 MB / (60,000 x 20 bytes)
    assert resolve_block_size(60_000, block_size=2000) == 2000


def test_budget_too_small_for_one_user_names_the_need() -> None:
    with pytest.raises(MovieRecError, match=r"1\.20 MB a user") as info:
        block_size_for(60_000, 0.5)
    assert "max_memory_mb=0.5" in str(info.value)


def test_block_size_and_budget_are_exclusive_and_checked() -> None:
    with pytest.raises(ValueError, match="not both"):
        resolve_block_size(100, block_size=10, max_memory_mb=5.0)
    with pytest.raises(ValueError, match="block_size"):
        resolve_block_size(100, block_size=0)
    with pytest.raises(ValueError, match="max_memory_mb"):
        resolve_block_size(100, max_memory_mb=-1.0)


# --- recommend / evaluate under a budget --------------------------------------------------------
def test_budget_picks_blocks_and_keeps_the_recommendations(split: Split, monkeypatch) -> None:
    model = RandomScores().fit(split.train)
    users = model.user_vocab_.index
    whole = model.recommend(users, k=5, block_size=len(users))
    seen_blocks: list[int] = []
    original = Recommender.top_k_codes

    def spy(self: Recommender, codes: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        seen_blocks.append(len(codes))
        return original(self, codes, *args, **kwargs)

    monkeypatch.setattr(Recommender, "top_k_codes", spy)
    blocked = model.recommend(users, k=5, max_memory_mb=budget_for(7, model.n_items))
    assert seen_blocks[:-1] == [7] * (len(seen_blocks) - 1) and 0 < seen_blocks[-1] <= 7
    assert sum(seen_blocks) == len(users)
    pd.testing.assert_frame_equal(whole, blocked)


@pytest.mark.parametrize("protocol", ["full", "sampled"])
def test_evaluate_under_a_budget_equals_one_block(split: Split, protocol: str) -> None:
    model = RandomScores().fit(split.train)
    kwargs: dict[str, Any] = {"ks": (3, 5), "relevance": 0, "protocol": protocol,
                              "n_negatives": 10, "rng": 3}
    whole = evaluate(model, split, block_size=10_000, **kwargs)
    small = evaluate(model, split, max_memory_mb=budget_for(3, model.n_items, 28), **kwargs)
    pd.testing.assert_frame_equal(whole.per_user, small.per_user)
    assert whole.summary == small.summary and whole.counts == small.counts


def test_evaluate_rejects_both_block_size_and_budget(split: Split) -> None:
    model = RandomScores().fit(split.train)
    with pytest.raises(ValueError, match="not both"):
        evaluate(model, split, block_size=4, max_memory_mb=1.0)


def test_recommend_memory_stays_near_the_budget() -> None:
    """tracemalloc sees every numpy buffer: a users x items array would show as 4 MB here."""
    frame = interactions(400, 2500, 0.01, seed=5)
    model = RandomScores().fit(Dataset(frame))
    users = model.user_vocab_.index
    budget = budget_for(20, model.n_items)  # 0.8 MB: 20 users a block
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        recs = model.recommend(users, k=10, max_memory_mb=budget)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    output = recs.memory_usage(deep=True).sum()
    all_scores = len(users) * model.n_items * 4
    assert peak <= budget * 1e6 + 3 * output + 200_000 < all_scores


# --- top-k in row chunks --------------------------------------------------------------------------
def reference_topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Full stable sort by (-score, column): the definition topk_rows must match."""
    cols = np.full((len(scores), k), -1, dtype=np.int32)
    vals = np.full((len(scores), k), -np.inf, dtype=np.float32)
    for r, row in enumerate(scores):
        order = np.lexsort((np.arange(len(row)), -row))[:k]
        order = order[np.isfinite(row[order]) | (row[order] > 0)]
        cols[r, :len(order)], vals[r, :len(order)] = order, row[order]
    return cols, vals


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_topk_in_row_chunks_breaks_ties_by_lower_column(
    rng: np.random.Generator, monkeypatch, chunk: int
) -> None:
    scores = rng.integers(0, 4, size=(23, 9)).astype(np.float32)  # ties everywhere
    scores[3, :] = -np.inf                                       # no candidate
    scores[5, 2:] = -np.inf                                      # fewer than k
    monkeypatch.setattr(base_module, "_TOPK_CHUNK", chunk)
    for k in (1, 4, 9, 12):
        cols, vals = topk_rows(scores, k)
        want_cols, want_vals = reference_topk(scores, k)
        np.testing.assert_array_equal(cols, want_cols)
        np.testing.assert_array_equal(vals, want_vals)


@pytest.mark.parametrize("sample", [1, 2, 5])
def test_topk_from_a_sampled_bound_equals_the_full_sort(
    rng: np.random.Generator, monkeypatch, sample: int
) -> None:
    """Wide rows rank only the columns above the k-th best of a column sample: same result."""
    scores = rng.integers(0, 6, size=(40, 300)).astype(np.float32)  # ties everywhere
    scores[:, ::7] = rng.normal(size=(40, 43))
    scores[0, :] = -np.inf                              # bound -inf: handed back to argpartition
    scores[1, 5:] = -np.inf                             # fewer than k finite
    scores[2, ::3] = np.nan                             # NaN never ranks
    scores[3] = np.arange(300)                          # the sample misses the best columns
    monkeypatch.setattr(base_module, "_sample_size", lambda kk, n: min(n, sample * kk))
    for k in (1, 3, 10):
        cols, vals = topk_rows(scores, k)
        want_cols, want_vals = reference_topk(np.where(np.isnan(scores), -np.inf, scores), k)
        np.testing.assert_array_equal(cols, want_cols)
        np.testing.assert_array_equal(vals, want_vals)


# --- item-item and user-user models -----------------------------------------------------------
@pytest.mark.parametrize("shrinkage", [0.0, 3.0])
def test_blocked_similarity_equals_one_block(
    rng: np.random.Generator, monkeypatch, shrinkage: float
) -> None:
    values = sp.csr_matrix(rng.normal(size=(50, 30)) * (rng.random((50, 30)) < 0.3))
    whole = similarity_matrix(values, k=5, shrinkage=shrinkage)
    monkeypatch.setattr("movierec.models.knn._BLOCK_BYTES", 1)  # one target a block
    single = similarity_matrix(values, k=5, shrinkage=shrinkage)
    assert np.diff(whole.indptr).max() <= 5
    np.testing.assert_array_equal(whole.toarray(), single.toarray())


def test_similarity_pairs_counts_products_per_context_row() -> None:
    values = sp.csr_matrix(np.array([[1, 1, 1], [0, 1, 0], [1, 0, 0]], dtype=float))
    assert similarity_pairs(values) == 9 + 1 + 1
    assert similarity_pairs(values.T) == 4 + 4 + 1


def test_userknn_warns_when_the_similarity_will_take_long(
    tiny: Dataset, monkeypatch, caplog
) -> None:
    monkeypatch.setattr("movierec.models.knn._SLOW_PAIRS", 0.0)
    with caplog.at_level(logging.WARNING, logger="movierec.models.knn"):
        UserKNN(n_neighbors=2).fit(tiny)
    assert "pairs of co-rated values" in caplog.text and "itemknn multiplies" in caplog.text


def test_ease_refusal_names_the_memory_and_the_way_out() -> None:
    class Catalog:  # only the size is read before the refusal
        n_items = 60_000

    assert memory_needed_gb(60_000) == pytest.approx(43.2)
    with pytest.raises(MovieRecError) as info:
        EASE().fit(Catalog())  # type: ignore[arg-type]
    msg = str(info.value)
    assert "43.2 GB" in msg and "60,000 x 60,000" in msg and "max_memory_mb=4000" in msg
    assert "18,257 items" in msg and "min_item_ratings" in msg


def test_ease_fit_peak_memory_is_what_the_guard_counts(monkeypatch) -> None:
    train = Dataset(interactions(300, 400, 0.1, seed=7))
    EASE(lambda_=10.0).fit(train)  # builds the dataset's cached matrix, codes and fingerprint
    # Temporaries of 20 item rows a block, as at scale where a block is a sliver of the matrix.
    monkeypatch.setattr("movierec.models.ease._BLOCK_BYTES", 20 * 20 * train.n_items)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        EASE(lambda_=10.0).fit(train)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    needed = memory_needed_gb(train.n_items) * 1e9
    assert 0.9 * needed <= peak <= 1.1 * needed + 64 * train.n_ratings


def test_registry_models_accept_a_budget(split: Split) -> None:
    for name in ("pop", "itemknn", "ease"):
        model = get(name).fit(split.train, progress=False)
        users = model.user_vocab_.index
        a = model.recommend(users, k=4, max_memory_mb=budget_for(5, model.n_items))
        b = model.recommend(users, k=4, block_size=len(users))
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6)
