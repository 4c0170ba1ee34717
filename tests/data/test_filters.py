"""Filters: order, k-core property, minimum counts, metadata filters, immutability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.data.dataset import Dataset
from movierec.data.filters import apply_filters, kcore_mask
from movierec.errors import DataError


def _frame(pairs):
    return pd.DataFrame({"user_id": [p[0] for p in pairs], "item_id": [p[1] for p in pairs],
                         "rating": [3.0] * len(pairs), "timestamp": range(len(pairs))})


@settings(max_examples=60, deadline=None)
@given(st.sets(st.tuples(st.integers(0, 12), st.integers(0, 12)), max_size=90),
       st.integers(1, 5))
def test_kcore_result_is_the_maximal_core(pairs, k):
    pairs = sorted(pairs)
    users = np.array([p[0] for p in pairs], dtype=np.int64)
    items = np.array([p[1] for p in pairs], dtype=np.int64)
    keep = kcore_mask(users, items, k)
    if keep.any():  # every kept user and item has >= k kept ratings
        assert np.unique(users[keep], return_counts=True)[1].min() >= k
        assert np.unique(items[keep], return_counts=True)[1].min() >= k
    # maximal: no dropped rating could join (its user or item lacks support in core + it)
    if k > 1:
        for idx in np.flatnonzero(~keep):
            trial = keep.copy()
            trial[idx] = True
            uc = np.unique(users[trial], return_counts=True)
            ic = np.unique(items[trial], return_counts=True)
            assert uc[1].min() < k or ic[1].min() < k


def test_kcore_on_dataset_and_immutability(ml_100k):
    before = ml_100k.ratings.copy()
    out = ml_100k.filter(kcore=30)
    pd.testing.assert_frame_equal(ml_100k.ratings, before)
    assert out is not ml_100k and 0 < out.n_ratings < ml_100k.n_ratings
    r = out.ratings
    assert r.groupby("user_id").size().min() >= 30 and r.groupby("item_id").size().min() >= 30
    assert out.items is ml_100k.items and out.users is ml_100k.users  # side tables kept whole


def test_min_counts_single_pass_items_then_users(tiny):
    # item counts: 10:3, 20:2, 30:2, 40:2, 50:2 -> with min_item_ratings=3 only item 10 stays;
    # then users 1, 2, 4 have one rating each, user 3 none.
    out = apply_filters(tiny, min_item_ratings=3)
    assert sorted(out.ratings["item_id"].unique()) == [10]
    out = apply_filters(tiny, min_item_ratings=2, min_user_ratings=3)
    assert sorted(out.ratings["user_id"].unique()) == [1, 2, 3]
    assert out.n_ratings == 9


def test_min_rating_then_counts(tiny):
    out = apply_filters(tiny, min_rating=4.0)
    assert (out.ratings["rating"] >= 4.0).all() and out.n_ratings == 7
    out = apply_filters(tiny, min_rating=4.0, min_user_ratings=2)
    assert sorted(out.ratings["user_id"].unique()) == [1, 2, 3]


def test_metadata_filters():
    ratings = _frame([(1, 1), (1, 2), (2, 2), (2, 3), (3, 4)])
    items = pd.DataFrame({"item_id": [1, 2, 3, 4], "title": list("abcd"),
                          "year": [1990.0, 2000.0, np.nan, 2010.0],
                          "genres": [("Drama",), (), ("Comedy",), ("Drama",)]})
    ds = Dataset(ratings, items=items)
    assert sorted(ds.filter(require_genres=True).ratings["item_id"]) == [1, 3, 4]
    assert sorted(ds.filter(min_year=2000).ratings["item_id"]) == [2, 2, 4]  # NaN year dropped
    assert sorted(ds.filter(max_year=2000, require_genres=True).ratings["item_id"]) == [1]
    with pytest.raises(DataError, match="item table"):
        Dataset(ratings).filter(min_year=2000)


def test_no_filter_is_an_equal_copy(tiny):
    out = apply_filters(tiny)
    assert out is not tiny and out.fingerprint == tiny.fingerprint
    with pytest.raises(ValueError, match="kcore"):
        apply_filters(tiny, kcore=-1)
