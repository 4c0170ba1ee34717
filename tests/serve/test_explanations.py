"""Issue 17 through the API: "because you liked" cites only liked movies, similar lists are
each model's own and skip movies with a handful of ratings, and search shares the CLI's."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.models import get  # noqa: E402
from movierec.serve import create_app  # noqa: E402

TITLES = ["Godfather, The (1972)", "Misérables, Les (1995)", "Boot, Das (1981)",
          "Heat (1995)", "Godfather: Part II, The (1974)", "Rare Film (1950)"]


@pytest.fixture(scope="module")
def data() -> Dataset:
    """As tests/test_explain_liked.py's `disliked`: item 1 supports item 0 most, user 0 rated it
    1 star. Item 5 has two ratings, both from users who rated item 0."""
    rows = [(0, 1, 1.0), (0, 2, 5.0), (0, 3, 5.0), (0, 4, 3.0)]
    rows += [(u, i, 5.0) for u in range(1, 13) for i in (0, 1)]
    rows += [(u, 2, 4.0) for u in range(1, 13, 2)] + [(u, 3, 4.0) for u in range(2, 13, 3)]
    rows += [(u, 4, 2.0) for u in range(5, 9)] + [(1, 5, 5.0), (2, 5, 5.0)]
    ratings = pd.DataFrame([(u, i, r, t) for t, (u, i, r) in enumerate(rows)],
                           columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame({"item_id": range(6), "title": TITLES, "year": [1972.0] * 6,
                          "genres": [("Drama",)] * 6})
    return Dataset(ratings, items=items, rating_scale=(1.0, 5.0))


def _client(model: Any, catalog: pd.DataFrame) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    return TestClient(create_app(model, catalog), raise_server_exceptions=False)


@pytest.fixture(scope="module", params=["ease", "itemknn", "pop"])
def client(request: pytest.FixtureRequest, data: Dataset) -> Any:
    return _client(get(request.param).fit(data), data.items)


def _cited(recs: list[dict[str, Any]], item_id: int) -> list[int]:
    rec = next(r for r in recs if r["item_id"] == item_id)
    return [s["item_id"] for s in rec["because_you_liked"]]


def test_known_user_never_gets_a_disliked_movie_cited(client):
    recs = client.get("/users/0/recommendations?k=2").json()["recommendations"]
    cited = _cited(recs, 0)
    assert cited and 1 not in cited and 4 not in cited  # rated 1 and 3 (mean 3.5)


def test_new_user_never_gets_a_disliked_movie_cited(client):
    body = {"ratings": [{"item": 1, "rating": 1}, {"item": 2, "rating": 5},
                        {"item": 3, "rating": 4}], "k": 3}
    recs = client.post("/recommendations", json=body).json()["recommendations"]
    assert all(1 not in [s["item_id"] for s in r["because_you_liked"]] for r in recs)
    assert any(r["because_you_liked"] for r in recs)


def test_search_finds_titles_with_their_article_in_front(client):
    for query, first in (("the godfather", 0), ("Les Miserables", 1), ("das boot", 2)):
        results = client.get("/movies/search", params={"q": query}).json()["results"]
        assert results[0]["item_id"] == first, (query, results)


def test_similar_leaves_out_movies_with_few_ratings(client):
    default = client.get("/movies/0/similar?k=5").json()["similar"]
    assert 5 not in [m["item_id"] for m in default]  # 2 ratings < the default support of 5
    everything = client.get("/movies/0/similar?k=5&min_support=0&shrinkage=0").json()
    assert 5 in [m["item_id"] for m in everything["similar"]]
    assert client.get("/movies/0/similar?min_support=-1").status_code == 422


def test_similar_endpoint_is_the_models_own_list(data):
    model = get("ease", lambda_=2.0).fit(data)
    client = _client(model, data.items)
    api = client.get("/movies/0/similar?k=3&min_support=0&shrinkage=0").json()["similar"]
    b = model.item_weights_[0].astype(np.float64)
    b[0] = -np.inf
    assert [m["item_id"] for m in api] == np.argsort(-b, kind="stable")[:3].tolist()
    assert [m["item_id"] for m in api] == model.similar_items(
        0, k=3, min_support=0, shrinkage=0)["item_id"].tolist()
