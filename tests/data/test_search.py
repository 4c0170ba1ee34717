"""The one title search (`movierec.data.search`) behind `similar --movie` and /movies/search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movierec.cli._models import find_movie
from movierec.data.search import TitleIndex, normalize
from movierec.errors import MovieRecError

TITLES = [
    "Godfather, The (1972)",                                             # 0
    "Godfather: Part II, The (1974)",                                    # 1
    "Misérables, Les (1995)",                                            # 2
    "City of Lost Children, The (Cité des enfants perdus, La) (1995)",   # 3
    "Boot, Das (1981)",                                                  # 4
    "Die Hard (1988)",                                                   # 5
    "Schindler's List (1993)",                                           # 6
    "Star Wars: Episode IV - A New Hope (1977)",                         # 7
    "Hamlet (1990)",                                                     # 8
    "Hamlet (1996)",                                                     # 9
    "Bug's Life, A (1998)",                                              # 10
    "Hard Target (1993)",                                                # 11
]


@pytest.fixture
def index() -> TitleIndex:
    return TitleIndex(TITLES, popularity=np.arange(len(TITLES), dtype=float))


def test_normalize():
    assert normalize("Misérables, Les") == "miserables les"
    assert normalize("Schindler's  List!") == "schindlers list"
    assert normalize("STAR WARS: Episode IV - A") == "star wars episode iv a"


@pytest.mark.parametrize(("query", "position"), [
    ("The Godfather", 0), ("the godfather (1972)", 0), ("Godfather", 0), ("Godfather, The", 0),
    ("GODFATHER, THE (1972)", 0),
    ("Les Misérables", 2), ("les miserables", 2), ("Misérables", 2),
    ("The City of Lost Children", 3), ("La Cité des enfants perdus", 3),
    ("cite des enfants perdus", 3),  # the alternative title, without its article
    ("Das Boot", 4), ("boot", 4),
    ("A Bug's Life", 10), ("a bugs life", 10),
    ("Hamlet (1996)", 9),
])
def test_exact_titles(index, query, position):
    assert index.exact(query).tolist() == [position]
    assert index.search(query)[0] == position


def test_a_leading_word_is_not_an_article_to_drop(index):
    assert index.exact("Hard").tolist() == []  # "Die Hard" starts with "Die", it is no article
    assert index.exact("Die Hard").tolist() == [5]


def test_substrings_punctuation_and_order(index):
    assert index.search("schindlers list").tolist() == [6]
    assert index.search("star wars episode iv").tolist() == [7]
    # Exact first, then prefixes, then popularity (here: position).
    assert index.search("godfather").tolist() == [0, 1]
    assert index.search("hard").tolist() == [11, 5]  # prefix "Hard Target" before "Die Hard"
    assert index.search("hamlet").tolist() == [9, 8]  # two exact: more popular first
    assert index.search("!!").tolist() == []
    assert index.search("zzz").tolist() == []


def test_find_movie_takes_the_article_in_front():
    catalog = pd.DataFrame({"item_id": np.arange(100, 100 + len(TITLES)), "title": TITLES,
                            "genres": [()] * len(TITLES)})
    known = catalog["item_id"].to_numpy()
    assert find_movie(catalog, "The Godfather", known) == 100
    assert find_movie(catalog, "les miserables", known) == 102
    assert find_movie(catalog, "Hamlet (1990)", known) == 108
    with pytest.raises(MovieRecError, match=r"2 movies match 'Hamlet': Hamlet \(1996\) \(id "
                                            r"109\); Hamlet \(1990\)"):
        find_movie(catalog, "Hamlet", known, popularity={108: 1, 109: 5})
    with pytest.raises(MovieRecError, match="no movie title contains 'nothing like it'"):
        find_movie(catalog, "nothing like it", known)
