"""describe() computed by hand on `tiny`; the release table's entries."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from movierec.data import releases
from movierec.data.dataset import Dataset
from movierec.data.describe import describe, gini
from movierec.data.releases import RELEASES, get_release
from movierec.errors import DataError


def test_describe_tiny_by_hand(tiny):
    d = describe(tiny)
    assert (d["users"], d["items"], d["ratings"]) == (4, 5, 11)
    assert d["density"] == pytest.approx(11 / 20) and d["sparsity"] == pytest.approx(9 / 20)
    assert d["rating_histogram"] == {1.0: 1, 2.0: 1, 3.0: 2, 4.0: 3, 5.0: 4}
    assert d["time_range"] == {"first": "1970-01-01", "last": "1970-01-01"}
    assert d["user_degree"] == {"min": 2, "median": 3.0, "mean": 2.75, "max": 3,
                                "gini": pytest.approx(gini(np.array([3, 3, 3, 2])))}
    assert d["item_degree"]["max"] == 3 and d["item_degree"]["min"] == 2
    assert d["items_in_catalog"] is None and d["tags"] is None and not d["has_users_table"]
    assert d["genres"] == []


def test_gini():
    assert gini(np.array([5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)
    assert gini(np.array([])) == 0.0


def test_genre_totals():
    ratings = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2, 2], "rating": [4.0] * 3})
    items = pd.DataFrame({"item_id": [1, 2, 3], "title": list("abc"), "year": [np.nan] * 3,
                          "genres": [("Drama",), ("Drama", "Comedy"), ("War",)]})
    d = describe(Dataset(ratings, items=items))
    assert d["genres"] == [{"genre": "Drama", "ratings": 3, "share": 1.0},
                           {"genre": "Comedy", "ratings": 2, "share": pytest.approx(2 / 3)}]
    assert d["time_range"] is None  # no timestamps


def test_describe_real(ml_100k):
    d = describe(ml_100k)
    assert d["time_range"] == {"first": "1997-09-20", "last": "1998-04-22"}
    assert d["user_degree"]["min"] == 20 and d["genres"][0]["genre"] == "Drama"


def test_release_table():
    assert releases() == ["ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m",
                          "ml-latest-small", "ml-latest", "hetrec-ml-2k"]
    assert get_release("ml-10m").folder == "ml-10M100K"
    assert get_release("ml-10m").url() == (
        "https://files.grouplens.org/datasets/movielens/ml-10m.zip")
    assert get_release("ml-1m").url("http://127.0.0.1:1/x/") == "http://127.0.0.1:1/x/ml-1m.zip"
    layouts = {n: r.layout for n, r in RELEASES.items()}
    assert layouts["ml-100k"] == "ml100k" and layouts["ml-10m"] == layouts["ml-1m"] == "ml1m"
    assert {layouts[n] for n in ("ml-20m", "ml-25m", "ml-32m", "ml-latest")} == {"csv"}
    for r in RELEASES.values():
        assert r.md5 is None or re.fullmatch(r"[0-9a-f]{32}", r.md5)
        assert r.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", r.sha256)
        assert "Harper" in r.citation
    assert "users" not in get_release("ml-10m").tables
    assert len(get_release("ml-100k").files_sha256) == 21
    with pytest.raises(DataError, match="known releases"):
        get_release("ml-2m")


def test_release_list_survives_the_submodule_of_the_same_name() -> None:
    """`movierec.data.releases` stays the function after the table module is imported."""
    import importlib

    import movierec.data as data

    first = data.releases()
    importlib.import_module("movierec.data.releases")
    assert callable(data.releases) and data.releases() == first
