"""The HTTP API through FastAPI's TestClient over `create_app` (no socket, nothing written)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from movierec.artifact import load_catalog, load_model, read_meta

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")

from movierec.serve import create_app  # noqa: E402


def client_for(folder: Path, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        # Starlette asks for httpx2 instead of httpx from 1.x on; either works.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    app = create_app(load_model(folder), load_catalog(folder), read_meta(folder), **kwargs)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(itemknn_dir: Path) -> Any:
    return client_for(itemknn_dir)


@pytest.fixture(scope="module")
def mf_client(mf_dir: Path) -> Any:
    return client_for(mf_dir, max_k=20, max_ratings=5)


@pytest.fixture(scope="module")
def known(itemknn_dir: Path) -> dict[str, Any]:
    """A training user with their history, and the catalog."""
    model = load_model(itemknn_dir)
    user = int(model.user_vocab_.index[0])
    history = model.item_vocab_.ids(model.seen_[0].indices)
    return {"user": user, "history": set(history.tolist()), "model": model,
            "catalog": load_catalog(itemknn_dir)}


def assert_error(response: Any, status: int, pattern: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert re.search(pattern, body["detail"]), body["detail"]
    return body


# --- service -------------------------------------------------------------------------------------
def test_health_and_model_info(client: Any, itemknn_dir: Path) -> None:
    assert client.get("/health").json() == {"status": "ok", "model": "itemknn", "n_users": 60,
                                            "n_items": 40, "store": None}
    info = client.get("/model").json()
    meta = read_meta(itemknn_dir)
    assert info["name"] == "itemknn" and info["model_class"] == "ItemKNN"
    assert info["params"] == meta["params"] and info["params"]["n_neighbors"] == 10
    assert info["dataset"] == "ml-synth" and info["trained_at"] == meta["trained_at"]
    assert info["metrics"]["ndcg@10"] == pytest.approx(meta["metrics"]["ndcg@10"])
    assert info["rating_scale"] == [0.5, 5.0] and info["fold_in"] == "model"
    assert "Comedy" in info["genres"] and info["max_k"] == 100 and info["max_ratings"] == 500


def test_openapi_schema_and_docs(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/health", "/model", "/users/{user_id}/recommendations", "/recommendations",
            "/movies/{item_id}/similar", "/movies/search"} <= set(schema["paths"])
    rating = schema["components"]["schemas"]["RatingIn"]["properties"]["rating"]
    assert rating["minimum"] == 0.5 and rating["maximum"] == 5.0  # the model's own scale
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


@pytest.mark.parametrize(("page", "assets"), [
    ("/docs", {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css",
               "/docs-assets/favicon.png"}),
    ("/redoc", {"/docs-assets/redoc.standalone.js", "/docs-assets/favicon.png"}),
])
def test_api_docs_work_offline(client: Any, page: str, assets: set[str]) -> None:
    pytest.importorskip("fastapi_offline", reason="the serve extra ships Swagger UI and ReDoc")
    html = client.get(page)
    assert html.status_code == 200
    # Every URL the page loads is this server's own (FastAPI's default is a CDN).
    urls = set(re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text))
    urls |= set(re.findall(r"""url:\s*['"]([^'"]+)['"]""", html.text))  # Swagger UI's spec URL
    urls |= set(re.findall(r"""spec-url=["']([^"']+)["']""", html.text))  # ReDoc's
    assert assets | {"/openapi.json"} <= urls
    assert not re.search(r"https?://|(src|href)=[\"']//", html.text), html.text
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200 and len(response.content) > 100, url
    assert client.get("/docs-assets/swagger-ui-bundle.js").headers["content-type"].startswith(
        ("text/javascript", "application/javascript"))


def test_web_page_and_static_files_have_no_external_urls(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for path in ("/static/app.js", "/static/style.css"):
        response = client.get(path)
        assert response.status_code == 200 and response.text
    for text in (page.text, client.get("/static/app.js").text,
                 client.get("/static/style.css").text):
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # no CDN
        assert "@import" not in text


# --- known users ---------------------------------------------------------------------------------
def test_known_user_recommendations(client: Any, known: dict[str, Any]) -> None:
    user = known["user"]
    body = client.get(f"/users/{user}/recommendations", params={"k": 5}).json()
    assert body["user_id"] == user and body["k"] == 5 and body["exclude_seen"] is True
    recs = body["recommendations"]
    assert [r["rank"] for r in recs] == [1, 2, 3, 4, 5]
    assert not {r["item_id"] for r in recs} & known["history"]
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)
    # The same list as the library's recommend (ties aside: compare the score sets).
    want = known["model"].recommend([user], k=5)
    np.testing.assert_allclose(sorted(scores), sorted(want["score"]), rtol=1e-6)
    titles = dict(zip(known["catalog"]["item_id"], known["catalog"]["title"], strict=True))
    for r in recs:
        assert r["title"] == titles[r["item_id"]] and isinstance(r["genres"], list)
        assert r["predicted_rating"] is not None  # itemknn predicts ratings
        assert r["because_you_liked"], "every recommendation is explained by the history"
        for s in r["because_you_liked"]:
            assert s["item_id"] in known["history"] and s["similarity"] > 0


def test_known_user_without_exclusion_and_with_genres(client: Any, known: dict[str, Any]
                                                      ) -> None:
    user = known["user"]
    body = client.get(f"/users/{user}/recommendations",
                      params={"k": 40, "exclude_seen": "false"}).json()
    assert known["history"] <= {r["item_id"] for r in body["recommendations"]}
    genres = dict(zip(known["catalog"]["item_id"], known["catalog"]["genres"], strict=True))
    body = client.get(f"/users/{user}/recommendations",
                      params={"k": 40, "genres": "comedy, Drama"}).json()
    assert body["genres"] == ["comedy", "Drama"] and body["recommendations"]
    for r in body["recommendations"]:
        assert {"Comedy", "Drama"} & set(genres[r["item_id"]])
    assert_error(client.get(f"/users/{user}/recommendations", params={"genres": "Western"}),
                 422, r"unknown genre.*Western.*known genres: Action")


def test_user_history_and_user_list(client: Any, known: dict[str, Any]) -> None:
    body = client.get(f"/users/{known['user']}").json()
    assert body["n_ratings"] == len(known["history"])
    assert {m["item_id"] for m in body["history"]} == known["history"]
    page = client.get("/users", params={"offset": 2, "limit": 3}).json()
    assert page["n_users"] == 60 and page["user_ids"] == known["model"].user_vocab_.index[
        2:5].tolist()


@pytest.mark.parametrize(("path", "status", "pattern"), [
    ("/users/424242/recommendations", 404, r"user 424242 is not in the training data"),
    ("/users/424242", 404, r"user 424242"),
    ("/movies/424242/similar", 404, r"movie 424242 is not in the training data"),
    ("/users/1/recommendations?k=0", 422, r"^k \(query\): .*greater than or equal to 1"),
    ("/users/1/recommendations?k=101", 422, r"k \(query\): .*less than or equal to 100"),
    ("/users/1/recommendations?k=10000000000000000000000", 422, r"k \(query\)"),
    ("/users/1/recommendations?k=ten", 422, r"k \(query\): .*integer"),
    ("/users/abc/recommendations", 422, r"user_id \(path\)"),
    ("/users/99999999999999999999999/recommendations", 422, r"user_id \(path\)"),
    ("/users/1/recommendations?exclude_seen=maybe", 422, r"exclude_seen"),
    ("/movies/1/similar?k=-3", 422, r"k \(query\)"),
    ("/movies/search?q=", 422, r"q \(query\)"),
    ("/movies/search?q=%20%20", 422, r"non-space"),
    ("/movies/search?q=toy&limit=0", 422, r"limit"),
    ("/no/such/path", 404, r"Not Found"),
])
def test_bad_requests_get_clear_json_errors(client: Any, path: str, status: int,
                                            pattern: str) -> None:
    assert_error(client.get(path), status, pattern)


# --- new users (fold-in) ------------------------------------------------------------------------
def test_new_user_is_folded_in(client: Any, known: dict[str, Any]) -> None:
    items = sorted(known["history"])[:3]
    body = {"ratings": [{"item": i, "rating": 5} for i in items] + [{"item": 999999,
                                                                     "rating": 4}], "k": 6}
    answer = client.post("/recommendations", json=body).json()
    assert answer["method"] == "model" and answer["used_ratings"] == 3
    assert answer["ignored_items"] == [999999] and len(answer["recommendations"]) == 6
    recs = answer["recommendations"]
    assert not {r["item_id"] for r in recs} & set(items)  # rated movies are left out
    # ItemKNN's fold-in is the training-user score of the same history.
    model = known["model"]
    codes = model.item_vocab_.codes(items)
    want = np.asarray(model._cached("neighbors_t")[codes].sum(axis=0)).ravel()
    for r in recs:
        assert r["score"] == pytest.approx(want[model.item_vocab_.codes([r["item_id"]])[0]])
        assert {s["item_id"] for s in r["because_you_liked"]} <= set(items)
    assert any(r["because_you_liked"] for r in recs)


def test_new_user_with_no_usable_ratings_gets_popular_movies(client: Any,
                                                             known: dict[str, Any]) -> None:
    model = known["model"]
    counts = np.asarray(model.seen_.sum(axis=0)).ravel()
    most = model.item_vocab_.ids(np.argsort(-counts, kind="stable")[:3]).tolist()
    for ratings in ([], [{"item": 777777, "rating": 3}]):
        answer = client.post("/recommendations", json={"ratings": ratings, "k": 3}).json()
        assert answer["method"] == "popularity" and answer["used_ratings"] == 0
        assert [r["item_id"] for r in answer["recommendations"]] == most
        assert all(r["because_you_liked"] == [] for r in answer["recommendations"])


def test_new_user_genre_filter_and_keep_rated(client: Any, known: dict[str, Any]) -> None:
    items = sorted(known["history"])[:2]
    answer = client.post("/recommendations", json={
        "ratings": [{"item": i, "rating": 4.5} for i in items], "k": 40,
        "exclude_rated": False, "genres": ["Sci-Fi"]}).json()
    genres = dict(zip(known["catalog"]["item_id"], known["catalog"]["genres"], strict=True))
    assert answer["recommendations"]
    assert all("Sci-Fi" in genres[r["item_id"]] for r in answer["recommendations"])


@pytest.mark.parametrize(("body", "pattern"), [
    ({"ratings": [{"item": 1, "rating": 5.5}]}, r"ratings\[0\]\.rating: .*less than or equal to 5"),
    ({"ratings": [{"item": 1, "rating": 0}]}, r"greater than or equal to 0\.5"),
    ({"ratings": [{"item": 1, "rating": "great"}]}, r"ratings\[0\]\.rating"),
    ({"ratings": [{"item": 1}]}, r"ratings\[0\]\.rating: Field required"),
    ({"ratings": [{"item": "x", "rating": 3}]}, r"ratings\[0\]\.item"),
    ({"ratings": [{"item": 2**70, "rating": 3}]}, r"ratings\[0\]\.item"),
    ({"ratings": [{"item": 1, "rating": 3, "extra": 1}]}, r"extra"),
    ({"ratings": [{"item": 1, "rating": 3}, {"item": 1, "rating": 4}]}, r"item 1 is rated more"),
    ({"ratings": [{"item": 1, "rating": 3}], "k": 0}, r"body\.k: .*greater than or equal to 1"),
    ({"ratings": [{"item": 1, "rating": 3}], "k": 101}, r"body\.k: .*less than or equal to 100"),
    ({"ratings": [{"item": 1, "rating": 3}], "genres": ["Nope"]}, r"unknown genre"),
    ({"ratings": {"item": 1}}, r"body\.ratings: .*list"),
    ({"k": 3}, r"body\.ratings: Field required"),
    ([1, 2], r"body"),
])
def test_malformed_new_user_bodies_are_422(client: Any, body: Any, pattern: str) -> None:
    assert_error(client.post("/recommendations", json=body), 422, pattern)


def test_non_json_bodies_and_huge_bodies(client: Any) -> None:
    assert_error(client.post("/recommendations", content=b"{not json",
                             headers={"content-type": "application/json"}), 422, "not valid JSON")
    assert_error(client.post("/recommendations", content=b"nan",
                             headers={"content-type": "application/json"}), 422, "")
    for bad in (b"NaN", b"Infinity", b"1e999"):  # Python's JSON reader accepts the first two
        body = b'{"ratings": [{"item": 1, "rating": ' + bad + b"}]}"
        assert_error(client.post("/recommendations", content=body,
                                 headers={"content-type": "application/json"}), 422, r"rating")
    too_many = {"ratings": [{"item": i, "rating": 3} for i in range(501)]}
    assert_error(client.post("/recommendations", json=too_many), 422,
                 r"ratings: .*at most 500")
    huge = json.dumps({"ratings": [], "pad": "x" * 70_000}).encode()
    assert_error(client.post("/recommendations", content=huge,
                             headers={"content-type": "application/json"}), 413,
                 r"too large: at most 65536 bytes")

    def chunks() -> Any:  # no Content-Length: counted while reading
        for _ in range(80):
            yield b" " * 1000

    assert_error(client.post("/recommendations", content=chunks(),
                             headers={"content-type": "application/json"}), 413, "too large")


def test_wrong_methods_are_not_500(client: Any) -> None:
    assert client.get("/recommendations").status_code == 405
    assert client.post("/users/1/recommendations").status_code == 405


# --- movies --------------------------------------------------------------------------------------
def test_similar_movies(client: Any, known: dict[str, Any]) -> None:
    item = int(known["model"].item_vocab_.index[0])
    body = client.get(f"/movies/{item}/similar", params={"k": 4}).json()
    assert body["movie"]["item_id"] == item and len(body["similar"]) == 4
    sims = [m["similarity"] for m in body["similar"]]
    assert sims == sorted(sims, reverse=True) and item not in {m["item_id"] for m in
                                                              body["similar"]}
    want = known["model"].similar_items(item, k=4)
    np.testing.assert_allclose(sims, want["similarity"], rtol=1e-5)


def test_title_search(client: Any) -> None:
    hits = client.get("/movies/search", params={"q": "AMELIE"}).json()["results"]
    assert [h["item_id"] for h in hits] == [1]  # accent- and case-insensitive
    hits = client.get("/movies/search", params={"q": "the synthetic movie"}).json()["results"]
    assert [h["title"] for h in hits] == ["Synthetic Movie, The (1999)"]  # article moved
    hits = client.get("/movies/search", params={"q": "synthetic film 1", "limit": 5}).json()
    titles = [h["title"] for h in hits["results"]]
    assert len(titles) == 5 and all(t.lower().startswith("synthetic film 1") for t in titles)
    assert all(h["n_ratings"] >= 0 for h in hits["results"])
    assert client.get("/movies/search", params={"q": "zzz"}).json()["results"] == []


# --- another family, its limits ------------------------------------------------------------------
def test_mf_model_limits_from_create_app(mf_client: Any) -> None:
    info = mf_client.get("/model").json()
    assert info["name"] == "mf" and info["max_k"] == 20 and info["max_ratings"] == 5
    users = mf_client.get("/users", params={"limit": 1}).json()["user_ids"]
    recs = mf_client.get(f"/users/{users[0]}/recommendations", params={"k": 20}).json()
    assert len(recs["recommendations"]) == 20
    assert_error(mf_client.get(f"/users/{users[0]}/recommendations", params={"k": 21}), 422,
                 "less than or equal to 20")
    body = {"ratings": [{"item": i, "rating": 4} for i in range(1, 7)]}
    assert_error(mf_client.post("/recommendations", json=body), 422, "at most 5")
    body["ratings"] = body["ratings"][:3]
    answer = mf_client.post("/recommendations", json=body).json()
    assert answer["method"] == "model" and len(answer["recommendations"]) == 10


def test_apps_are_independent_and_built_by_the_factory(itemknn_dir: Path, mf_dir: Path
                                                       ) -> None:
    import movierec.serve.app as module

    assert not any(type(v).__name__ == "FastAPI" for v in vars(module).values())
    a = client_for(itemknn_dir, max_k=7)
    b = client_for(mf_dir)
    assert a.get("/model").json()["max_k"] == 7 and b.get("/model").json()["max_k"] == 100
    assert a.get("/health").json()["model"] == "itemknn"
    assert b.get("/health").json()["model"] == "mf"


def test_model_without_catalog_answers_with_ids(itemknn_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    model = load_model(itemknn_dir)
    client = TestClient(create_app(model))
    user = int(model.user_vocab_.index[0])
    recs = client.get(f"/users/{user}/recommendations", params={"k": 2}).json()
    assert all(re.fullmatch(r"item \d+", r["title"]) for r in recs["recommendations"])
    assert client.get("/model").json()["genres"] == []
    assert_error(client.get(f"/users/{user}/recommendations", params={"genres": "Drama"}), 422,
                 "no item table")
