"""Ratings, users and impressions: upserts, batches, validation, reads."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest


def triples(frame: pd.DataFrame) -> list[list[float]]:
    return frame[["user_id", "item_id", "rating"]].values.tolist()


def test_the_latest_rating_wins_and_repeating_a_put_changes_nothing(store):
    store.put_rating(1, 10, 2.0)
    store.put_rating(1, 10, 4.5, timestamp=1_000)
    store.put_rating(1, 10, 4.5, timestamp=1_000)
    frame = store.ratings_of(1)
    assert triples(frame) == [[1, 10, 4.5]]
    assert frame["timestamp"].tolist() == [1_000]
    assert store.count_ratings() == 1


def test_ratings_of_has_the_dataset_dtypes_and_only_that_user(store):
    store.put_ratings([{"user_id": 1, "item_id": 10, "rating": 3},
                       {"user_id": 2, "item_id": 10, "rating": 5},
                       {"user_id": 1, "item_id": 11, "rating": 0.5}])
    frame = store.ratings_of(1)
    assert sorted(triples(frame)) == [[1, 10, 3.0], [1, 11, 0.5]]
    assert frame.dtypes.to_dict() == {"user_id": np.int32, "item_id": np.int32,
                                      "rating": np.float32, "timestamp": np.int64,
                                      "source": object, "updated_at": np.float64,
                                      "list_id": object}
    assert store.ratings_of(99).empty
    assert list(store.ratings_of(99).columns) == list(frame.columns)


def test_a_rating_keeps_the_list_it_was_given_from_and_a_new_write_replaces_it(store):
    store.put_rating(1, 10, 4.0, list_id="abc")
    assert store.ratings_of(1)["list_id"].tolist() == ["abc"]
    store.put_rating(1, 10, 3.0)  # latest wins, list id included
    assert store.ratings_of(1)["list_id"].tolist() == [None]
    with pytest.raises(ValueError, match="row 0: list_id"):
        store.put_ratings([{"user_id": 1, "item_id": 11, "rating": 3, "list_id": "x" * 65}])


def test_delete_removes_one_rating_and_says_whether_there_was_one(store):
    store.put_ratings([{"user_id": 1, "item_id": 10, "rating": 3},
                       {"user_id": 1, "item_id": 11, "rating": 4}])
    assert store.delete_rating(1, 10) is True
    assert store.delete_rating(1, 10) is False
    assert triples(store.all_ratings()) == [[1, 11, 4.0]]


def test_a_batch_writes_all_rows_and_the_later_duplicate_wins(store):
    written = store.put_ratings(pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 10, 10],
                                              "rating": [1.0, 2.0, 3.0]}), source="import")
    assert written == 2
    assert sorted(triples(store.all_ratings())) == [[1, 10, 2.0], [2, 10, 3.0]]
    assert set(store.all_ratings()["source"]) == {"import"}


def test_a_bad_row_anywhere_in_a_batch_writes_nothing(store):
    store.put_rating(1, 10, 3.0)
    rows = [{"user_id": 1, "item_id": 10, "rating": 5.0},   # would overwrite
            {"user_id": 2, "item_id": 11, "rating": 4.0},
            {"user_id": 3, "item_id": 12, "rating": 7.0}]   # outside 0.5..5
    with pytest.raises(ValueError, match=r"row 2: rating 7 is outside the scale 0.5\.\.5"):
        store.put_ratings(rows)
    assert triples(store.all_ratings()) == [[1, 10, 3.0]]


def test_a_batch_over_the_maximum_is_refused_whole(store):
    rows = [{"user_id": 1, "item_id": i, "rating": 3.0} for i in range(6)]  # max_batch=5
    with pytest.raises(ValueError, match="more than 5 ratings"):
        store.put_ratings(rows)
    with pytest.raises(ValueError, match="more than 5 ratings"):
        store.put_ratings(iter(rows))  # a generator is not read past the limit
    assert store.count_ratings() == 0
    assert store.put_ratings(rows[:5]) == 5


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rating": math.nan}, "rating must be finite, found nan"),
    ({"rating": math.inf}, "rating must be finite, found inf"),
    ({"rating": 0.25}, "rating 0.25 is outside the scale"),
    ({"rating": "4"}, "rating must be a number, found '4'"),
    ({"rating": True}, "rating must be a number, found True"),
    ({"user_id": -1}, "user_id -1 is outside"),
    ({"user_id": 2**31}, "user_id 2147483648 is outside"),
    ({"item_id": 1.5}, "item_id must be an integer id, found 1.5"),
    ({"item_id": True}, "item_id must be an integer id, found True"),
    ({"timestamp": 1.7e12}, "timestamp 1700000000000.0 is outside 1970..2100"),
    ({"timestamp": math.nan}, "timestamp must be whole unix seconds, found nan"),
    ({"source": ""}, "source must be a non-empty string"),
])
def test_invalid_values_name_the_field_and_write_nothing(store, kwargs, message):
    args = {"user_id": 1, "item_id": 10, "rating": 3.0} | kwargs
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        store.put_rating(**args)
    assert store.count_ratings() == 0


def test_a_row_missing_a_field_is_named(store):
    with pytest.raises(ValueError, match="row 1: missing field rating"):
        store.put_ratings([{"user_id": 1, "item_id": 1, "rating": 1},
                           {"user_id": 1, "item_id": 2}])
    assert store.count_ratings() == 0


def test_feedback_since_returns_the_writes_after_a_point_oldest_first(store):
    store.put_rating(1, 10, 3.0)
    mark = store.all_ratings()["updated_at"].max()
    store.put_rating(2, 20, 4.0)
    store.put_rating(1, 10, 5.0)  # rewritten after the mark: counts as new feedback
    assert triples(store.feedback_since(mark)) == [[2, 20, 4.0], [1, 10, 5.0]]
    assert len(store.feedback_since(0)) == 2


def test_new_users_get_ids_above_the_dataset_and_every_stored_id(store):
    assert store.add_users([1, 2, 3, 2]) == 3
    assert store.add_users([3, 4]) == 1
    assert store.create_user(above=943) == 944
    assert store.create_user(above=943) == 945
    store.put_rating(2000, 1, 3.0)  # a user only known from feedback
    assert store.create_user(above=943) == 2001
    assert store.create_user() == 2002
    assert store.user_exists(944) and store.user_exists(2000) and not store.user_exists(5)


def test_impressions_keep_the_list_in_order(store):
    list_id = store.log_impressions(None, 7, [30, 10, 20], "v0001")
    assert len(list_id) == 32
    store.log_impressions("mine", 8, [5], "v0002")
    shown = store.impressions_since()
    mine = shown[shown["list_id"] == list_id]
    assert mine[["position", "user_id", "item_id", "model_version"]].values.tolist() == [
        [1, 7, 30, "v0001"], [2, 7, 10, "v0001"], [3, 7, 20, "v0001"]]
    with pytest.raises(ValueError, match="list_id 'mine' was logged already"):
        store.log_impressions("mine", 8, [6], "v0002")
    with pytest.raises(ValueError, match=r"items\[1\] must be an integer id"):
        store.log_impressions("other", 8, [6, "x"], "v0002")
    assert len(store.impressions_since()) == 4
