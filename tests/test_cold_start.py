"""Cold-start split and evaluation (movierec.cold_start): hand-checked values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movierec.cold_start import _auc, evaluate_cold, item_cold_split, random_scores
from movierec.data.dataset import Dataset
from movierec.data.synthetic import make_people_dataset
from movierec.errors import SplitError


def _ds() -> Dataset:
    # users 1..3; items 1..6; items 4, 5, 6 will be cold in the hand-made split below.
    rows = [(1, 1, 5), (1, 2, 3), (1, 4, 4), (1, 5, 2),
            (2, 1, 4), (2, 3, 5), (2, 6, 5),
            (3, 2, 2), (3, 3, 1), (3, 5, 4), (9, 6, 3)]
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"]).assign(timestamp=0)
    items = pd.DataFrame({"item_id": range(1, 7), "title": [f"t{i}" for i in range(1, 7)]})
    return Dataset(ratings=ratings, items=items)


def _hand_split():
    from movierec.split import Split

    ds = _ds()
    r = ds.ratings
    cold = r["item_id"].isin([4, 5, 6])
    return Split(train=ds.with_ratings(r[~cold]), test=ds.with_ratings(r[cold]),
                 name="item-cold")


def test_auc_hand_values():
    assert _auc(np.array([3.0, 2.0, 1.0]), np.array([True, False, False])) == 1.0
    assert _auc(np.array([1.0, 2.0, 3.0]), np.array([True, False, False])) == 0.0
    # one tie between the relevant item and one of two others: (1 + 0.5) / 2
    assert _auc(np.array([2.0, 2.0, 1.0]), np.array([True, False, False])) == 0.75
    assert np.isnan(_auc(np.array([1.0, 2.0]), np.array([True, True])))


def test_evaluate_cold_hand_values():
    split = _hand_split()
    # Scores prefer item 4 > 5 > 6 for every user.
    def scorer(user_ids, items):
        assert list(items["item_id"]) == [4, 5, 6]
        assert "title" in items.columns
        return np.tile(np.array([3.0, 2.0, 1.0]), (len(user_ids), 1))

    summary, frame = evaluate_cold(scorer, split, ks=(1, 3))
    # user 9 has no training rating: counted, not scored
    assert summary["unknown_users"] == 1
    assert list(frame["user_id"]) == [1, 2, 3]
    f = frame.set_index("user_id")
    # user 1 rated 4 and 5 (ranks 1, 2): hit@1 = 1, ndcg@3 = 1, auc = 1
    assert f.loc[1, "hit@1"] == 1 and f.loc[1, "ndcg@3"] == pytest.approx(1.0)
    assert f.loc[1, "auc"] == 1.0
    # user 2 rated 6 (rank 3): ndcg@3 = 1/log2(4) = 0.5, recall@1 = 0, auc = 0
    assert f.loc[2, "ndcg@3"] == pytest.approx(0.5)
    assert f.loc[2, "recall@1"] == 0 and f.loc[2, "auc"] == 0.0
    # user 3 rated 5 (rank 2): ndcg@3 = 1/log2(3), auc = 1/2
    assert f.loc[3, "ndcg@3"] == pytest.approx(1 / np.log2(3))
    assert f.loc[3, "auc"] == 0.5
    assert summary["auc"] == pytest.approx(0.5)
    assert summary["candidates"] == 3
    # relevance 4 drops user 1's rating 2 of item 5 and user 3's 4 stays
    summary4, frame4 = evaluate_cold(scorer, split, ks=(1,), relevance=4)
    assert frame4.set_index("user_id").loc[1, "n_relevant"] == 1


def test_item_cold_split_holds_out_whole_movies():
    ds = make_people_dataset(n_users=60, n_items=80, ratings_per_user=10, rng=1)
    split = item_cold_split(ds, test_size=0.2, valid_size=0.1, min_item_ratings=3, rng=7)
    test_items = set(split.test.ratings["item_id"])
    valid_items = set(split.valid.ratings["item_id"])
    train_items = set(split.train.ratings["item_id"])
    assert not test_items & train_items and not valid_items & train_items
    assert not test_items & valid_items
    # every rating of a held-out movie left training
    assert split.train.n_ratings + split.test.n_ratings + split.valid.n_ratings == ds.n_ratings
    counts = ds.ratings["item_id"].value_counts()
    assert all(counts[i] >= 3 for i in test_items | valid_items)
    assert split.params["test_items"] == len(test_items)
    again = item_cold_split(ds, test_size=0.2, valid_size=0.1, min_item_ratings=3, rng=7)
    assert set(again.test.ratings["item_id"]) == test_items


def test_random_scores_near_half_auc():
    ds = make_people_dataset(n_users=200, n_items=200, ratings_per_user=15, rng=2)
    split = item_cold_split(ds, test_size=0.2, rng=3)
    summary, _ = evaluate_cold(random_scores(0), split)
    assert abs(summary["auc"] - 0.5) < 0.03


def test_bad_input():
    ds = _ds()
    with pytest.raises(SplitError, match="test_size"):
        item_cold_split(ds, test_size=0.0)
    with pytest.raises(SplitError, match="too few"):
        item_cold_split(ds, test_size=0.2, min_item_ratings=3)
    split = _hand_split()
    with pytest.raises(SplitError, match="no valid part"):
        evaluate_cold(random_scores(), split, part="valid")
    leaky = type(split)(train=split.train, test=ds.with_ratings(ds.ratings), name="x")
    with pytest.raises(SplitError, match="training ratings"):
        evaluate_cold(random_scores(), leaky)
