"""The evaluator on a hand-made example whose every number is worked out in comments."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Dataset
from movierec.evaluate import evaluate
from movierec.models.base import Recommender
from movierec.split import Split

ITEMS = [10, 20, 30, 40, 50, 60]          # item codes 0..5
DOWN = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]     # prefers low ids
UP = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]       # prefers high ids
L3 = 1 / math.log2(3)


class FixedScores(Recommender):
    """Scores each user by a fixed row over ITEMS (users absent from `table` score 0)."""

    name = "fixed"

    def __init__(self, *, table: dict[int, list[float]] | None = None) -> None:
        self.table = table

    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: Any = None,
            progress: bool = True) -> FixedScores:
        self._setup(train)
        assert list(self.item_vocab_.index) == ITEMS
        table = self.table or {}
        self.scores_ = np.array([table.get(int(u), [0.0] * len(ITEMS))
                                 for u in self.user_vocab_.index], dtype=np.float32)
        return self

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        s = self.scores_[user_codes]
        return s if item_codes is None else s[:, item_codes]


class FixedRatings(FixedScores):
    """Also predicts a constant rating of 3 (its fallback for unknown users/items too)."""

    predicts_ratings: ClassVar[bool] = True

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        return np.full(len(user_codes), 3.0, dtype=np.float32)


def _frame(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    return pd.DataFrame([(u, i, r, 0) for u, i, r in rows],
                        columns=["user_id", "item_id", "rating", "timestamp"])


@pytest.fixture
def example() -> Split:
    """Users 1-3 are tested; 4 and 5 only make training popularity interesting; 9 is unknown.

    Training user shares (5 users) and rating counts: 10: 2/5 (2), 20: 1/5 (1), 30: 1/5 (1),
    40: 2/5 (2), 50: 1/5 (1), 60: 1/5 (1).
    """
    train = _frame([(1, 10, 5), (2, 20, 4), (3, 30, 4),
                    (4, 10, 3), (4, 40, 3), (4, 50, 3), (4, 60, 3), (5, 40, 4)])
    test = _frame([(1, 20, 5), (1, 50, 4), (1, 70, 5), (1, 30, 2),   # 70 unknown to training
                   (2, 10, 3),                                       # nothing rated >= 4
                   (3, 10, 4), (3, 40, 5),
                   (9, 10, 5)])                                      # unknown user
    items = pd.DataFrame({"item_id": [10, 20, 30, 40, 50, 60, 70],
                          "title": list("abcdefg"), "year": [2000.0] * 7,
                          "genres": [("A",), ("A",), ("A", "B"), ("C",), ("C",), ("B",), ()]})
    return Split(Dataset(train, items=items, name="ex"), Dataset(test, items=items, name="ex"),
                 name="files")


def _model(split: Split, cls: type[FixedScores] = FixedScores) -> FixedScores:
    # Rankings after removing each user's training item:
    #   user 1 (DOWN, trained on 10): 20, 30, 40, 50, 60
    #   user 2 (UP, trained on 20):   60, 50, 40, 30, 10
    #   user 3 (UP, trained on 30):   60, 50, 40, 20, 10
    return cls(table={1: DOWN, 2: UP, 3: UP, 4: DOWN, 5: DOWN}).fit(split.train)


def test_full_protocol_per_user_by_hand(example: Split) -> None:
    res = evaluate(_model(example), example, ks=(1, 3), relevance=4.0, keep_lists=True)
    pu = res.per_user.set_index("user_id")
    # every known test user gets a list; user 2 has no relevant item, so no ranking values
    assert list(pu.index) == [1, 2, 3]
    assert pu.loc[2, "n_relevant"] == 0 and math.isnan(pu.loc[2, "ndcg@3"])
    # user 1: relevant {20, 50, 70} (|rel| = 3, 70 can never be hit); top 3 = 20, 30, 40
    #   hits@3 = [1, 0, 0]: precision 1/3, recall 1/3, ndcg = 1 / (1 + 1/log2 3 + 1/2),
    #   map = P@1 / min(3, 3) = 1/3, mrr 1, hit 1; @1: precision 1, recall 1/3, ndcg 1, map 1
    u1 = pu.loc[1]
    assert u1["precision@3"] == pytest.approx(1 / 3)
    assert u1["recall@3"] == pytest.approx(1 / 3)
    assert u1["ndcg@3"] == pytest.approx(1 / (1 + L3 + 0.5))
    assert u1["map@3"] == pytest.approx(1 / 3)
    assert u1["mrr@3"] == 1.0 and u1["hit@3"] == 1.0
    assert u1["f1@3"] == pytest.approx(1 / 3)
    assert (u1["precision@1"], u1["ndcg@1"], u1["map@1"]) == (1.0, 1.0, 1.0)
    assert u1["recall@1"] == pytest.approx(1 / 3)
    # user 3: relevant {10, 40}; top 3 = 60, 50, 40: hits@3 = [0, 0, 1]
    #   precision 1/3, recall 1/2, ndcg = (1/log2 4) / (1 + 1/log2 3), map = (1/3) / 2,
    #   mrr 1/3, hit 1; @1 all zero
    u3 = pu.loc[3]
    assert u3["precision@3"] == pytest.approx(1 / 3)
    assert u3["recall@3"] == pytest.approx(0.5)
    assert u3["ndcg@3"] == pytest.approx(0.5 / (1 + L3))
    assert u3["map@3"] == pytest.approx(1 / 6)
    assert u3["mrr@3"] == pytest.approx(1 / 3)
    assert u3["hit@1"] == 0.0
    # summary = mean over the two users
    assert res.summary["recall@3"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert res.summary["hit@1"] == pytest.approx(0.5)
    assert "rmse" not in res.summary  # a ranking-only model has no rating metrics
    assert res.counts["users_evaluated"] == 2
    assert res.counts["users_no_relevant"] == 1      # user 2
    assert res.counts["test_users_unknown"] == 1     # user 9
    assert res.counts["relevant_unknown_items"] == 1  # item 70
    assert res.counts["test_rows_unknown_item"] == 1
    assert res.protocol == {"protocol": "full", "relevance": 4.0, "k": [1, 3],
                            "candidates": "all-unseen"}
    lists = res.lists
    assert lists is not None
    assert lists[lists.user_id == 1].item_id.tolist() == [20, 30, 40]  # 10 was trained on
    assert lists[lists.user_id == 1].score.tolist() == [5.0, 4.0, 3.0]
    assert lists.groupby("user_id")["rank"].apply(list).tolist() == [[1, 2, 3]] * 3


def test_beyond_accuracy_by_hand(example: Split) -> None:
    res = evaluate(_model(example), example, ks=(1, 3), relevance=4.0)
    s = res.summary
    # Beyond-accuracy metrics cover every known test user's list, user 2 included:
    # lists@3: user 1 {20, 30, 40}, users 2 and 3 {60, 50, 40}; 5 distinct of 6 training items
    assert s["coverage@1"] == pytest.approx(2 / 6)
    assert s["coverage@3"] == pytest.approx(5 / 6)
    # overlaps@3: (1,2) 1/3, (1,3) 1/3, (2,3) 3/3 -> 1 - 5/9
    assert s["personalization@3"] == pytest.approx(4 / 9)
    # overlaps@1: (1,2) 0, (1,3) 0, (2,3) 1 -> 1 - 1/3
    assert s["personalization@1"] == pytest.approx(2 / 3)
    # novelty: -log2(1/5) for 20, 30, 50, 60 and -log2(2/5) for 40, both lists alike
    nov = (2 * math.log2(5) + math.log2(5 / 2)) / 3
    assert s["novelty@3"] == pytest.approx(nov)
    assert s["novelty@1"] == pytest.approx(math.log2(5))
    # ARP: training counts (1 + 1 + 2)/3 for both lists
    assert s["arp@3"] == pytest.approx(4 / 3)
    # diversity: user 1 genres A, AB, C -> 1 - (1/sqrt2)/3; users 2, 3 B, C, C -> 1 - 1/3
    pu = res.per_user.set_index("user_id")
    assert pu.loc[1, "diversity@3"] == pytest.approx(1 - 1 / math.sqrt(2) / 3)
    assert pu.loc[3, "diversity@3"] == pytest.approx(2 / 3)
    assert math.isnan(pu.loc[1, "diversity@1"])  # a single item has no pairs
    assert "diversity@1" not in s                 # no list had a pair at k = 1
    assert s["diversity@3"] == pytest.approx((1 - 1 / math.sqrt(2) / 3 + 2 / 3 + 2 / 3) / 3)


def test_relevance_zero_counts_every_test_item(example: Split) -> None:
    res = evaluate(_model(example), example, ks=(3,), relevance=0)
    pu = res.per_user.set_index("user_id")
    assert list(pu.index) == [1, 2, 3]
    # user 1: relevant {20, 50, 70, 30}; top 3 = 20, 30, 40 -> 2 hits; recall 2/4
    assert pu.loc[1, "precision@3"] == pytest.approx(2 / 3)
    assert pu.loc[1, "recall@3"] == pytest.approx(0.5)
    # user 2: relevant {10}; top 3 = 60, 50, 40 -> no hit
    assert pu.loc[2, "ndcg@3"] == 0.0
    assert res.counts["users_no_relevant"] == 0


def test_no_diversity_without_genres(example: Split) -> None:
    plain = Split(Dataset(example.train.ratings), Dataset(example.test.ratings))
    res = evaluate(_model(plain), plain, ks=(3,))
    assert "diversity@3" not in res.summary and "diversity@3" not in res.per_user
    assert "novelty@3" in res.summary


def test_rating_metrics_for_rating_models(example: Split) -> None:
    res = evaluate(_model(example, FixedRatings), example, ks=(3,))
    # errors of the constant 3 on all 8 test rows: 2, 1, 2, -1, 0, 1, 2, 2
    assert res.summary["rmse"] == pytest.approx(math.sqrt(19 / 8))
    assert res.summary["mae"] == pytest.approx(11 / 8)
    assert res.counts["rating_rows_predicted"] == 8
    assert res.counts["rating_rows_fallback"] == 2  # (1, 70) and (9, 10)
    assert list(res.summary)[:2] == ["rmse", "mae"]


def test_block_size_does_not_change_results(example: Split) -> None:
    model = _model(example)
    a = evaluate(model, example, ks=(1, 3), block_size=1)
    b = evaluate(model, example, ks=(1, 3), block_size=1000)
    pd.testing.assert_frame_equal(a.per_user, b.per_user)
    assert a.summary == b.summary


def test_sampled_protocol_by_hand(example: Split) -> None:
    # With more negatives asked for than exist, every never-interacted training item is used.
    # user 1: interacted {10, 20, 30, 50} -> negatives {40: 3, 60: 1} (scores DOWN)
    #   positive 20 (5) ranks first; positive 50 (2) is beaten by 40 -> rank 2
    #   hit@1 = (1 + 0)/2, hit@3 = 1, ndcg@3 = (1 + 1/log2 3)/2
    # user 3: interacted {30, 10, 40} -> negatives {20: 2, 50: 5, 60: 6} (scores UP)
    #   positive 10 (1) ranks 4th; positive 40 (4) ranks 3rd: hit@3 = 1/2, ndcg@3 = (0 + 1/2)/2
    res = evaluate(_model(example), example, ks=(1, 3), protocol="sampled", n_negatives=100,
                   rng=0)
    pu = res.per_user.set_index("user_id")
    assert pu.loc[1, "sampled_hit@1"] == pytest.approx(0.5)
    assert pu.loc[1, "sampled_hit@3"] == pytest.approx(1.0)
    assert pu.loc[1, "sampled_ndcg@3"] == pytest.approx((1 + L3) / 2)
    assert pu.loc[3, "sampled_hit@3"] == pytest.approx(0.5)
    assert pu.loc[3, "sampled_ndcg@3"] == pytest.approx(0.25)
    assert set(res.summary) == {"sampled_hit@1", "sampled_ndcg@1", "sampled_hit@3",
                                "sampled_ndcg@3"}
    assert res.protocol["protocol"] == "sampled" and res.protocol["n_negatives"] == 100
    assert res.lists is None


def test_sampled_protocol_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items = 40, 30
    rows = [(u, i, float(rng.integers(1, 6))) for u in range(n_users) for i in range(n_items)
            if rng.random() < 0.3]
    frame = _frame(rows)
    last = frame.groupby("user_id").tail(1).index  # leave one out
    split = Split(Dataset(frame.drop(last)), Dataset(frame.loc[last]), name="loo")

    class Random(Recommender):
        def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: Any = None,
                progress: bool = True) -> Random:
            self._setup(train)
            self.s_ = np.random.default_rng(0).random((self.n_users, self.n_items))
            return self

        def _score(self, user_codes: np.ndarray,
                   item_codes: np.ndarray | None = None) -> np.ndarray:
            return self.s_[user_codes].astype(np.float32)

    model = Random().fit(split.train)
    a = evaluate(model, split, protocol="sampled", n_negatives=5, rng=7, relevance=0)
    b = evaluate(model, split, protocol="sampled", n_negatives=5, rng=7, relevance=0)
    c = evaluate(model, split, protocol="sampled", n_negatives=5, rng=8, relevance=0)
    pd.testing.assert_frame_equal(a.per_user, b.per_user)
    assert a.summary == b.summary
    assert not a.per_user.equals(c.per_user)
    assert all(k.startswith("sampled_") for k in a.summary)
    # 1 held-out among 6 items: hit@5 misses only when the positive ranks last
    assert 0.5 < a.summary["sampled_hit@5"] < 1.0


def test_argument_checks(example: Split) -> None:
    model = _model(example)
    with pytest.raises(ValueError, match="protocol"):
        evaluate(model, example, protocol="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ks"):
        evaluate(model, example, ks=(0,))
    with pytest.raises(ValueError, match="block_size"):
        evaluate(model, example, block_size=0)


def test_validation_items_are_excluded_like_training_items(example: Split) -> None:
    """A validation part withheld from the fit is history: its items are no test candidates."""
    # User 1 (DOWN, trained on 10) also rated 20 and 30 in validation: top 3 = 40, 50, 60.
    # User 3 (UP, trained on 30) rated 60 in validation: top 3 = 50, 40, 20.
    valid = Dataset(_frame([(1, 20, 4), (1, 30, 3), (3, 60, 2), (9, 10, 5), (1, 70, 4)]),
                    name="ex")
    res = evaluate(_model(example), example, ks=(3,), relevance=4.0, keep_lists=True,
                   exclude=valid)
    lists = res.lists
    assert lists is not None
    assert lists[lists.user_id == 1].item_id.tolist() == [40, 50, 60]
    assert lists[lists.user_id == 1].score.tolist() == [3.0, 2.0, 1.0]
    assert lists[lists.user_id == 3].item_id.tolist() == [50, 40, 20]
    assert lists[lists.user_id == 2].item_id.tolist() == [60, 50, 40]  # nothing of user 2's
    # user 1: relevant {20, 50, 70}: hits@3 = [0, 1, 0] -> recall 1/3, ndcg (1/log2 3) / idcg
    pu = res.per_user.set_index("user_id")
    assert pu.loc[1, "ndcg@3"] == pytest.approx(L3 / (1 + L3 + 0.5))
    # (user 9 and item 70 are unknown to the model: left out of the excluded pairs)
    assert res.counts["excluded_history_pairs"] == 3
    assert res.protocol["excluded"] == "training items and the validation part's items"
    # A user whose every remaining item is excluded gets a short list, never an excluded item.
    everything = Dataset(_frame([(2, i, 3) for i in (10, 30, 40, 50, 60)]), name="ex")
    short = evaluate(_model(example), example, ks=(3,), keep_lists=True, exclude=everything)
    assert short.lists is not None and 2 not in set(short.lists.user_id)
    # k above the catalog's 6 items: the lists are padded, not cut, and still skip excluded items
    wide = evaluate(_model(example), example, ks=(10,), keep_lists=True, exclude=valid)
    assert wide.lists is not None
    assert wide.lists[wide.lists.user_id == 1].item_id.tolist() == [40, 50, 60]
    sampled = evaluate(_model(example), example, ks=(3,), protocol="sampled", n_negatives=2,
                       rng=0, exclude=valid)
    assert sampled.counts["excluded_history_pairs"] == 3


def test_fit_evaluate_never_ranks_the_carved_validation_items() -> None:
    from movierec.data.synthetic import make_ratings
    from movierec.models import get
    from movierec.pipeline import EvaluationSpec, fit_evaluate
    from movierec.split import make_split

    ratings = make_ratings(n_users=40, n_items=30, n_ratings=600, rng=0)
    split = make_split(Dataset(ratings, name="syn"), "user-random", test_size=0.2,
                       valid_size=0.2, rng=0)
    assert split.valid is not None
    record = fit_evaluate(get("pop"), split, keep_lists=True,
                          evaluation=EvaluationSpec(k=(10,), relevance=0.0))
    lists, valid = record.lists, split.valid.ratings
    assert lists is not None
    overlap = lists.merge(valid[["user_id", "item_id"]], on=["user_id", "item_id"])
    assert overlap.empty and record.counts["excluded_history_pairs"] == len(valid)
