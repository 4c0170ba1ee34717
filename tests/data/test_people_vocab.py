"""The people vocabulary of people-aware models (movierec.data.people), by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from movierec.data.people import has_people, people_lists, people_spec, person_names
from movierec.errors import MovieRecError


def _items() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": [1, 2, 3, 4],
        "director_ids": [("d1",), ("d1",), ("d2",), None],
        "directors": [("Dee One",), ("Dee One",), ("Dee Two",), None],
        "actor_ids": [("a1", "a2", "a3"), ("a2", "a1"), ("a3", "d1"), ()],
        "actors": [("A1", "A2", "A3"), ("A2", "A1"), ("A3", "Dee One"), ()],
    })


def test_spec_counts_movies_and_keeps_top_billed():
    spec = people_spec(_items(), max_actors=2, min_movies=2)
    # a3 is billed third in movie 1, so with max_actors=2 it is in one movie only (movie 3);
    # d1 directs 1 and 2 and acts in 3; d2 directs one movie.
    assert spec["persons"] == ["a1", "a2", "d1"]
    assert spec["column"] == {"director": "director_ids", "actor": "actor_ids"}
    wide = people_spec(_items(), max_actors=3, min_movies=1)
    assert wide["persons"] == ["a1", "a2", "a3", "d1", "d2"]


def test_lists_are_per_row_with_roles():
    spec = people_spec(_items(), max_actors=2, min_movies=2)
    indptr, codes, roles = people_lists(_items(), spec)
    assert indptr.tolist() == [0, 3, 6, 7, 7]
    # movie 1: d1 (director), a1, a2 (actors); movie 3: d1 as actor (d2, a3 unknown)
    assert codes.tolist() == [2, 0, 1, 2, 1, 0, 2]
    assert roles.tolist() == [0, 1, 1, 0, 1, 1, 1]
    empty = people_lists(None, spec)
    assert empty[0].tolist() == [0] and len(empty[1]) == 0


def test_names_are_used_without_ids_and_mapped():
    items = _items().drop(columns=["director_ids", "actor_ids"])
    spec = people_spec(items, max_actors=3, min_movies=2)
    assert spec["persons"] == ["A1", "A2", "A3", "Dee One"]
    assert person_names(_items(), people_spec(_items()))["d1"] == "Dee One"


def test_no_people_is_a_clear_error():
    assert not has_people(pd.DataFrame({"item_id": [1], "title": ["x"]}))
    assert not has_people(None)
    with pytest.raises(MovieRecError, match="imdb_dir"):
        people_spec(pd.DataFrame({"item_id": [1], "directors": [()]}))
    with pytest.raises(ValueError, match="max_actors"):
        people_spec(_items(), max_actors=-1)
    with pytest.raises(ValueError, match="min_movies"):
        people_spec(_items(), min_movies=0)
