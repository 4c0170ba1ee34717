"""Metric functions against hand-computed cases and hypothesis properties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from movierec import metrics as M

# Three users, lists of length 4; relevant counts 2, 3, 5.
HITS = np.array([[1, 0, 1, 0],
                 [0, 0, 0, 0],
                 [0, 1, 0, 0]], dtype=bool)
NREL = np.array([2, 3, 5])
L2, L3, L4 = 1.0, 1 / math.log2(3), 1 / math.log2(4)  # discounts of ranks 1, 2, 3
L5 = 1 / math.log2(5)


def test_precision_recall_f1_by_hand() -> None:
    # precision = hits / 4: 2/4, 0, 1/4
    np.testing.assert_allclose(M.precision(HITS), [0.5, 0.0, 0.25])
    # recall = hits / n_relevant: 2/2, 0/3, 1/5
    np.testing.assert_allclose(M.recall(HITS, NREL), [1.0, 0.0, 0.2])
    # f1 = 2pr/(p+r): 2*.5*1/1.5 = 2/3; 0; 2*.25*.2/.45 = 2/9
    np.testing.assert_allclose(M.f1(HITS, NREL), [2 / 3, 0.0, 2 / 9])


def test_ndcg_by_hand() -> None:
    # user 0: DCG = 1/log2(2) + 1/log2(4) = 1.5; ideal over min(2, 4) = 2 ranks: 1 + 1/log2(3)
    # user 2: DCG = 1/log2(3); ideal over min(5, 4) = 4 ranks: 1 + 1/log2 3 + 1/2 + 1/log2 5
    expected = [(L2 + L4) / (L2 + L3), 0.0, L3 / (L2 + L3 + L4 + L5)]
    np.testing.assert_allclose(M.ndcg(HITS, NREL), expected)
    np.testing.assert_allclose(expected, [0.919721, 0.0, 0.246302], atol=1e-6)


def test_average_precision_mrr_hit_by_hand() -> None:
    # user 0: hits at 1 (P@1 = 1) and 3 (P@3 = 2/3): (1 + 2/3) / min(2, 4) = 5/6
    # user 2: hit at 2 (P@2 = 1/2): 0.5 / min(5, 4) = 1/8
    np.testing.assert_allclose(M.average_precision(HITS, NREL), [5 / 6, 0.0, 0.125])
    np.testing.assert_allclose(M.reciprocal_rank(HITS), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(M.hit_rate(HITS), [1.0, 0.0, 1.0])


def test_truncation_by_slicing() -> None:
    h2 = HITS[:, :2]
    np.testing.assert_allclose(M.precision(h2), [0.5, 0.0, 0.5])
    # user 2 at k = 2: ideal over min(5, 2) = 2 ranks
    np.testing.assert_allclose(M.ndcg(h2, NREL), [1 / (L2 + L3), 0.0, L3 / (L2 + L3)])
    # AP@2 of user 0: P@1 = 1 / min(2, 2)
    np.testing.assert_allclose(M.average_precision(h2, NREL), [0.5, 0.0, 0.25])


def test_users_without_relevant_items_score_zero() -> None:
    h = np.zeros((1, 3), dtype=bool)
    n = np.array([0])
    for fn in (M.recall, M.f1, M.ndcg, M.average_precision):
        assert fn(h, n)[0] == 0.0


def test_empty_block() -> None:
    h = np.zeros((0, 5), dtype=bool)
    assert M.ndcg(h, np.zeros(0, dtype=int)).shape == (0,)
    assert M.precision(h).shape == (0,)


def test_rating_metrics_by_hand() -> None:
    # errors 1, 0, 2: MSE = 5/3, MAE = 1
    assert M.rmse(np.array([1, 2, 3]), np.array([2, 2, 5])) == pytest.approx(math.sqrt(5 / 3))
    assert M.mae(np.array([1, 2, 3]), np.array([2, 2, 5])) == pytest.approx(1.0)
    assert math.isnan(M.rmse(np.array([]), np.array([])))
    with pytest.raises(ValueError):
        M.mae(np.array([1.0]), np.array([1.0, 2.0]))


def test_coverage_novelty_arp_by_hand() -> None:
    lists = np.array([[0, 1], [2, 3], [3, -1]])
    # distinct {0, 1, 2, 3} of 10
    assert M.coverage(lists, 10) == pytest.approx(0.4)
    p = np.array([0.5, 0.25, 1.0, 0.125])  # self-information 1, 2, 0, 3 bits
    # (1 + 2)/2, (0 + 3)/2, 3 (padding ignored)
    np.testing.assert_allclose(M.novelty(lists, p), [1.5, 1.5, 3.0])
    counts = np.array([10, 4, 20, 1])
    # (10 + 4)/2, (20 + 1)/2, 1
    np.testing.assert_allclose(M.arp(lists, counts), [7.0, 10.5, 1.0])
    assert math.isnan(M.novelty(np.array([[-1, -1]]), p)[0])


def test_diversity_by_hand() -> None:
    genres = sp.csr_matrix(np.array([[1, 0, 0],     # item 0: A
                                     [1, 1, 0],     # item 1: A, B
                                     [0, 0, 1],     # item 2: C
                                     [0, 0, 0]]))   # item 3: no genre
    lists = np.array([[0, 1, 2], [0, 3, -1], [2, 1, -1], [0, 1, 3]])
    # list 0: cos(0,1) = 1/sqrt2, cos(0,2) = cos(1,2) = 0 -> 1 - (1/sqrt2)/3
    # list 1: item 3 has no genre, one featured item left -> NaN
    # list 2: cos = 0 -> 1;  list 3: item 3 left out -> 1 - 1/sqrt2
    got = M.intra_list_diversity(lists, genres)
    s = 1 / math.sqrt(2)
    np.testing.assert_allclose(got[[0, 2, 3]], [1 - s / 3, 1.0, 1 - s])
    assert math.isnan(got[1])


def test_personalization_and_gini_by_hand() -> None:
    # overlaps/k: (a,b) share item 0 -> 1/2; others 0; mean over 3 pairs = 1/6
    assert M.personalization(np.array([[0, 1], [0, 2], [3, 4]])) == pytest.approx(5 / 6)
    assert M.personalization(np.array([[0, 1], [0, 1]])) == pytest.approx(0.0)
    assert math.isnan(M.personalization(np.array([[0, 1]])))
    # counts [0, 2] over two items: sum (2i - n - 1) c_i / (n * total) = (1 * 2) / (2 * 2)
    assert M.gini(np.array([[0], [0]]), 2) == pytest.approx(0.5)
    assert M.gini(np.array([[0], [1]]), 2) == pytest.approx(0.0)


def test_directions() -> None:
    assert M.direction("ndcg@10") == "higher"
    assert M.direction("rmse") == "lower"
    assert M.direction("sampled_hit@10") == "higher"
    with pytest.raises(KeyError):
        M.direction("bogus@5")


@st.composite
def hit_blocks(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    u = draw(st.integers(1, 12))
    k = draw(st.integers(1, 15))
    hits = draw(arrays(bool, (u, k)))
    extra = draw(arrays(np.int64, (u,), elements=st.integers(0, 20)))
    return hits, hits.sum(axis=1) + extra  # a user has at least as many relevant items as hits


@settings(max_examples=200, deadline=None)
@given(hit_blocks())
def test_ranking_bounds_and_identities(block: tuple[np.ndarray, np.ndarray]) -> None:
    hits, n = block
    k = hits.shape[1]
    values = {
        "precision": M.precision(hits), "recall": M.recall(hits, n), "f1": M.f1(hits, n),
        "ndcg": M.ndcg(hits, n), "map": M.average_precision(hits, n),
        "mrr": M.reciprocal_rank(hits), "hit": M.hit_rate(hits),
    }
    for name, v in values.items():
        assert v.dtype == np.float64 and v.shape == (hits.shape[0],), name
        assert np.all((v >= 0) & (v <= 1 + 1e-12)), name
    np.testing.assert_allclose(values["precision"] * k, hits.sum(axis=1))
    assert np.all(values["mrr"] <= values["hit"])
    assert np.all((values["ndcg"] > 0) == (values["hit"] > 0))
    for j in range(1, k):
        assert np.all(M.recall(hits[:, :j], n) <= M.recall(hits[:, :j + 1], n) + 1e-12)
        assert np.all(M.hit_rate(hits[:, :j]) <= M.hit_rate(hits[:, :j + 1]))


@st.composite
def list_blocks(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    n_items = draw(st.integers(1, 12))
    u = draw(st.integers(2, 10))
    k = draw(st.integers(1, n_items))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lists = np.stack([rng.permutation(n_items)[:k] for _ in range(u)])
    pad = rng.random(lists.shape) < 0.2
    lists[pad] = -1
    return lists, n_items


def _personalization_brute(lists: np.ndarray) -> float:
    k = lists.shape[1]
    sets = [set(row[row >= 0].tolist()) for row in lists]
    overlaps = [len(a & b) / k for a, b in itertools.combinations(sets, 2)]
    return 1.0 - float(np.mean(overlaps))


def _diversity_brute(lists: np.ndarray, g: np.ndarray) -> np.ndarray:
    out = []
    for row in lists:
        items = [i for i in row if i >= 0 and g[i].any()]
        d = [1 - g[a] @ g[b] / np.linalg.norm(g[a]) / np.linalg.norm(g[b])
             for a, b in itertools.combinations(items, 2)]
        out.append(np.mean(d) if d else np.nan)
    return np.array(out)


@settings(max_examples=100, deadline=None)
@given(list_blocks())
def test_personalization_equals_brute_force(block: tuple[np.ndarray, int]) -> None:
    lists, _ = block
    assert M.personalization(lists) == pytest.approx(_personalization_brute(lists))
    assert 0.0 <= M.personalization(lists) <= 1.0


@settings(max_examples=100, deadline=None)
@given(list_blocks(), st.integers(0, 2**32 - 1))
def test_beyond_accuracy_bounds(block: tuple[np.ndarray, int], seed: int) -> None:
    lists, n_items = block
    rng = np.random.default_rng(seed)
    g = (rng.random((n_items, 4)) < 0.4).astype(float)
    got = M.intra_list_diversity(lists, sp.csr_matrix(g))
    np.testing.assert_allclose(got, _diversity_brute(lists, g), atol=1e-9)
    finite = got[np.isfinite(got)]
    assert np.all((finite >= -1e-12) & (finite <= 1 + 1e-12))
    assert 0.0 <= M.coverage(lists, n_items) <= 1.0
    assert 0.0 <= M.gini(lists, n_items) <= 1.0 or (lists < 0).all()
