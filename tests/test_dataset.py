import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Dataset
from movierec.errors import DataError


def test_columns_get_canonical_dtypes(tiny):
    r = tiny.ratings
    assert list(r.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert [str(t) for t in r.dtypes] == ["int32", "int32", "float32", "int64"]
    assert tiny.n_users == 4 and tiny.n_items == 5 and tiny.n_ratings == 11
    assert tiny.rating_scale == (1.0, 5.0)


def test_matrix_in_own_codes(tiny):
    m = tiny.matrix()
    assert m.shape == (4, 5)
    u = tiny.user_vocab.codes([3])[0]
    i = tiny.item_vocab.codes([40])[0]
    assert m[u, i] == 5.0
    assert tiny.matrix("binary").sum() == 11
    with pytest.raises(ValueError, match="binary"):
        tiny.matrix("counts")


def test_fingerprint_changes_with_data(tiny):
    other = tiny.with_ratings(tiny.ratings.iloc[:-1])
    assert other.fingerprint != tiny.fingerprint
    same = tiny.with_ratings(tiny.ratings.copy())
    assert same.fingerprint == tiny.fingerprint


def test_missing_column_is_named():
    with pytest.raises(DataError, match=r"rating"):
        Dataset(pd.DataFrame({"user_id": [1], "item_id": [2]}), name="x")


def test_nan_rating_names_row():
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 1], "rating": [4.0, np.nan]})
    with pytest.raises(DataError, match="row 1"):
        Dataset(frame, source="ratings.csv")


def test_fractional_id_rejected():
    frame = pd.DataFrame({"user_id": [1.5], "item_id": [1], "rating": [4.0]})
    with pytest.raises(DataError, match="user_id"):
        Dataset(frame)


def test_timestamp_defaults_to_zero():
    ds = Dataset(pd.DataFrame({"user_id": [1], "item_id": [2], "rating": [3.0]}))
    assert ds.ratings["timestamp"].tolist() == [0]


def test_genre_matrix():
    items = pd.DataFrame({"item_id": [1, 2], "title": ["A", "B"], "year": [1990.0, np.nan],
                          "genres": [("Comedy", "Drama"), ()]})
    ds = Dataset(pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "rating": [3.0, 4.0]}),
                 items=items)
    assert ds.genres == ["Comedy", "Drama"]
    g = ds.genre_matrix(np.array([2, 1, 99]))
    assert g.toarray().tolist() == [[0, 0], [1, 1], [0, 0]]
