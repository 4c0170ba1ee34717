"""The feedback API over a SQLite store: ratings, users, read-your-writes, impressions, keys,
limits, store faults, /metrics and /health (TestClient; the PostgreSQL run is in
test_feedback_live.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servekit import make_client

pytest.importorskip("sqlalchemy", reason="the feedback API needs the `store` extra")
pytest.importorskip("prometheus_client", reason="/metrics needs prometheus-client")

from movierec.store import Store, StoreUnavailableError  # noqa: E402

LOOPBACK = "127.0.0.1"
REMOTE = "203.0.113.7"  # TEST-NET-3: never this machine


@pytest.fixture(scope="module")
def artifact(itemknn_dir: Path) -> tuple[Any, Any, Any]:
    from movierec.artifact import load_catalog, load_model, read_meta

    return load_model(itemknn_dir), load_catalog(itemknn_dir), read_meta(itemknn_dir)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'state.db'}", timeout=0.5) as st:
        yield st


def build(artifact: tuple[Any, Any, Any], store: Store, **kwargs: Any) -> Any:
    from movierec.serve import create_app

    model, catalog, meta = artifact
    return create_app(model, catalog, meta, store=store, max_ratings=5, **kwargs)


@pytest.fixture
def app(artifact: tuple[Any, Any, Any], store: Store) -> Any:
    return build(artifact, store)


@pytest.fixture
def local(app: Any) -> Any:
    """A client on the server's machine (writes allowed while no key exists)."""
    return make_client(app, host=LOOPBACK)


def items(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [card["item_id"] for card in response.json()["recommendations"]]


# --- read your writes -----------------------------------------------------------------------
def test_a_stored_rating_changes_the_list_at_once_and_delete_brings_it_back(local: Any) -> None:
    before = local.get("/users/1/recommendations?k=5")
    assert before.json()["method"] == "trained" and before.json()["n_feedback"] == 0
    top = items(before)[0]
    put = local.put(f"/users/1/ratings/{top}", json={"rating": 4.5})
    assert put.status_code == 200 and put.json() == {"user_id": 1, "item_id": top,
                                                     "rating": 4.5, "list_id": None}
    after = local.get("/users/1/recommendations?k=5")
    assert top not in items(after)
    assert after.json()["method"] == "model" and after.json()["n_feedback"] == 1
    assert after.json()["feedback"] == "ok"
    assert local.delete(f"/users/1/ratings/{top}").json() == {"user_id": 1, "item_id": top,
                                                             "deleted": True}
    assert items(local.get("/users/1/recommendations?k=5")) == items(before)
    assert local.delete(f"/users/1/ratings/{top}").json()["deleted"] is False


def test_put_is_idempotent_and_the_latest_rating_wins(local: Any) -> None:
    for rating in (2.0, 2.0, 4.5):
        assert local.put("/users/3/ratings/7", json={"rating": rating}).status_code == 200
    listed = local.get("/users/3/ratings").json()
    assert listed["n_ratings"] == 1
    assert [(r["item_id"], r["rating"]) for r in listed["ratings"]] == [(7, 4.5)]
    assert listed["ratings"][0]["title"]  # the catalog's title


def test_a_new_profile_gets_an_id_above_the_dataset_and_personal_lists(local: Any) -> None:
    created = local.post("/users")
    assert created.status_code == 201 and created.json() == {"user_id": 61}  # users are 1..60
    assert local.post("/users").json() == {"user_id": 62}
    first = local.get("/users/61/recommendations?k=5").json()
    assert first["method"] == "popularity" and "popular" in first["note"]
    assert local.put("/users/61/ratings/5", json={"rating": 5}).status_code == 200
    personal = local.get("/users/61/recommendations?k=5")
    assert personal.json()["method"] == "model" and personal.json()["n_feedback"] == 1
    assert 5 not in items(personal)
    assert local.get("/users/61/ratings").json()["n_ratings"] == 1
    assert local.get("/users/62/ratings").json() == {"user_id": 62, "n_ratings": 0,
                                                     "ratings": []}


def test_a_model_without_fold_in_says_so(artifact: Any, store: Store) -> None:
    model = artifact[0]
    model.supports_fold_in = False  # this instance only: fold-in falls back to item similarity
    try:
        client = make_client(build(artifact, store), host=LOOPBACK)
        client.put("/users/1/ratings/5", json={"rating": 5})
        answer = client.get("/users/1/recommendations").json()
    finally:
        del model.supports_fold_in
    assert answer["method"] == "item-similarity" and "no fold-in rule" in answer["note"]


# --- refusals: nothing half-written ---------------------------------------------------------
def test_unknown_users_movies_and_ratings_off_the_scale_are_refused(local: Any,
                                                                   store: Store) -> None:
    unknown_user = local.put("/users/999/ratings/5", json={"rating": 3})
    assert unknown_user.status_code == 404 and "POST /users" in unknown_user.json()["detail"]
    unknown_movie = local.put("/users/1/ratings/4000", json={"rating": 3})
    assert unknown_movie.status_code == 404 and "movie 4000" in unknown_movie.json()["detail"]
    high = local.put("/users/1/ratings/5", json={"rating": 5.5})
    assert high.status_code == 422 and "body.rating" in high.json()["detail"]
    assert local.put("/users/1/ratings/5", json={"rating": True}).status_code == 422
    assert local.put("/users/1/ratings/5", json={"rating": 3, "x": 1}).status_code == 422
    assert local.get("/users/999/recommendations").status_code == 404
    assert local.get("/users/999/ratings").status_code == 404
    assert store.count_ratings() == 0


def test_a_batch_is_written_whole_or_not_at_all(local: Any, store: Store) -> None:
    good = [{"item_id": 1, "rating": 4}, {"item_id": 2, "rating": 0.5}]
    done = local.post("/users/2/ratings", json={"ratings": good, "list_id": "L1"})
    assert done.status_code == 200 and done.json() == {"user_id": 2, "written": 2}
    assert store.ratings_of(2)["list_id"].tolist() == ["L1", "L1"]
    bad_movie = local.post("/users/2/ratings", json={"ratings": [
        {"item_id": 3, "rating": 4}, {"item_id": 4000, "rating": 4}]})
    assert bad_movie.status_code == 422
    assert "ratings[1].item_id: movie 4000" in bad_movie.json()["detail"]
    bad_rating = local.post("/users/2/ratings", json={"ratings": [
        {"item_id": 3, "rating": 4}, {"item_id": 5, "rating": 9}]})
    assert bad_rating.status_code == 422 and "ratings[1].rating" in bad_rating.json()["detail"]
    assert sorted(store.ratings_of(2)["item_id"].tolist()) == [1, 2]  # neither batch wrote


def test_oversize_batches_and_bodies_get_a_message(artifact: Any, store: Store) -> None:
    client = make_client(build(artifact, store, max_body_bytes=2048), host=LOOPBACK)
    six = [{"item_id": i, "rating": 3} for i in range(1, 7)]  # max_ratings=5
    too_many = client.post("/users/1/ratings", json={"ratings": six})
    assert too_many.status_code == 422 and "at most 5" in too_many.json()["detail"]
    huge = client.post("/users/1/ratings", json={"ratings": six, "list_id": "x" * 3000})
    assert huge.status_code == 413 and "at most 2048 bytes" in huge.json()["detail"]
    assert client.post("/users/1/ratings", json={"ratings": []}).status_code == 422
    assert store.count_ratings() == 0


# --- impressions ----------------------------------------------------------------------------
def test_logged_lists_get_an_id_that_ratings_can_cite(local: Any, store: Store) -> None:
    shown = local.get("/users/4/recommendations?k=3&log=true").json()
    list_id = shown["list_id"]
    assert list_id
    logged = store.impressions_since(0)
    assert logged["list_id"].tolist() == [list_id] * 3
    assert logged["position"].tolist() == [1, 2, 3]
    assert logged["item_id"].tolist() == [c["item_id"] for c in shown["recommendations"]]
    assert logged["model_version"].tolist() == ["itemknn@1"] * 3
    by_header = local.get("/users/4/recommendations?k=2",
                          headers={"X-Log-Impressions": "1"}).json()
    assert by_header["list_id"] not in (None, list_id)
    assert local.get("/users/4/recommendations?k=2").json()["list_id"] is None
    cited = shown["recommendations"][0]["item_id"]
    local.put(f"/users/4/ratings/{cited}", json={"rating": 4, "list_id": list_id})
    assert local.get("/users/4/ratings").json()["ratings"][0]["list_id"] == list_id
    assert len(store.impressions_since(0)) == 5


# --- keys -----------------------------------------------------------------------------------
def test_without_keys_only_loopback_clients_may_write(app: Any, store: Store) -> None:
    remote = make_client(app, host=REMOTE)
    refused = remote.put("/users/1/ratings/5", json={"rating": 3})
    assert refused.status_code == 403 and "movierec keys create" in refused.json()["detail"]
    assert remote.post("/users").status_code == 403
    assert remote.get("/users/1/recommendations").status_code == 200  # reads are open
    assert make_client(app, host=LOOPBACK).put("/users/1/ratings/5",
                                               json={"rating": 3}).status_code == 200
    store.create_key("write")
    no_key = make_client(app, host=LOOPBACK).put("/users/1/ratings/5", json={"rating": 3})
    assert no_key.status_code == 401 and no_key.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("scope", "revoked", "write", "reload"), [
    (None, False, 401, 401), ("read", False, 403, 403), ("write", False, 200, 403),
    ("admin", False, 200, 409), ("write", True, 401, 401)])
def test_the_key_matrix(app: Any, store: Store, scope: str | None, revoked: bool, write: int,
                        reload: int) -> None:
    store.create_key("admin", label="someone else's")  # keys exist: no loopback exception
    headers = {}
    if scope is not None:
        token = store.create_key(scope)
        headers = {"X-API-Key": token}
        if revoked:
            store.revoke_key(token.split("_")[1])
    client = make_client(app, host=LOOPBACK)
    assert client.put("/users/1/ratings/5", json={"rating": 3},
                      headers=headers).status_code == write
    assert client.post("/users", headers=headers).status_code == (201 if write == 200
                                                                  else write)
    # The app was built from objects, not a folder: past the key check reload answers 409.
    assert client.post("/model/reload", headers=headers).status_code == reload
    assert client.get("/users/1/recommendations", headers=headers).status_code == 200


def test_bearer_keys_malformed_keys_and_require_key(artifact: Any, store: Store) -> None:
    token = store.create_key("write")
    reader = store.create_key("read")
    client = make_client(build(artifact, store, require_key=True), host=REMOTE)
    assert client.put("/users/1/ratings/5", json={"rating": 3},
                      headers={"Authorization": f"Bearer {token}"}).status_code == 200
    bad = client.put("/users/1/ratings/5", json={"rating": 3}, headers={"X-API-Key": "nope"})
    assert bad.status_code == 401 and "malformed" in bad.json()["detail"]
    assert client.get("/users/1/recommendations").status_code == 401
    assert client.get("/metrics").status_code == 401
    assert client.get("/users/1/recommendations",
                      headers={"X-API-Key": reader}).status_code == 200
    assert client.get("/users/1/ratings", headers={"X-API-Key": reader}).status_code == 200
    assert client.get("/health").status_code == 200  # liveness stays open


# --- store faults ---------------------------------------------------------------------------
def test_a_locked_store_gives_503_for_writes_while_reads_answer(local: Any, store: Store,
                                                                 tmp_path: Path) -> None:
    assert local.put("/users/1/ratings/5", json={"rating": 3}).status_code == 200
    holder = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        write = local.put("/users/1/ratings/6", json={"rating": 3})
        assert write.status_code == 503 and write.headers["retry-after"] == "5"
        assert "unavailable" in write.json()["detail"]
        read = local.get("/users/1/recommendations")
        assert read.status_code == 200 and read.json()["n_feedback"] == 1  # WAL: reads go on
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert local.put("/users/1/ratings/6", json={"rating": 3}).status_code == 200


def test_an_unreachable_store_still_answers_reads_from_the_model(local: Any, store: Store,
                                                                 monkeypatch) -> None:  # noqa: ANN001
    trained = items(local.get("/users/1/recommendations?k=5"))

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailableError("store x is unavailable: connection refused")

    for name in ("ratings_of", "user_exists", "has_keys", "put_rating", "log_impressions"):
        monkeypatch.setattr(store, name, down)
    read = local.get("/users/1/recommendations?k=5&log=true")
    assert read.status_code == 200 and items(read) == trained
    assert read.json()["feedback"] == "unavailable" and "model's alone" in read.json()["note"]
    assert read.json()["list_id"] is None and "not logged" in read.json()["note"]
    write = local.put("/users/1/ratings/5", json={"rating": 3})
    assert write.status_code == 503 and write.headers["retry-after"] == "5"
    assert local.get("/health").json()["store"] == "unavailable"
    assert local.get("/health").status_code == 200


# --- metrics and health ---------------------------------------------------------------------
def test_metrics_count_requests_per_route_and_feedback(local: Any, artifact: Any,
                                                       tmp_path: Path) -> None:
    local.get("/users/1/recommendations")
    local.get("/users/2/recommendations")
    local.put("/users/1/ratings/5", json={"rating": 3})
    local.get("/nowhere")
    scraped = local.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith(
        "text/plain")
    text = scraped.text
    assert ('movierec_http_requests_total{method="GET",route="/users/{user_id}/'
            'recommendations",status="200"} 2.0') in text
    assert ('movierec_http_requests_total{method="PUT",route="/users/{user_id}/ratings/'
            '{item_id}",status="200"} 1.0') in text
    assert 'route="unmatched",status="404"} 1.0' in text
    assert 'movierec_feedback_writes_total{kind="put"} 1.0' in text
    assert "movierec_feedback_ratings_written_total 1.0" in text
    assert 'movierec_store_operation_duration_seconds_count{operation="put_rating"} 1.0' in text
    assert 'movierec_model_info{generation="1",name="itemknn",version="itemknn@1"} 1.0' in text
    # A second app in the same process counts on its own.
    with Store(f"sqlite:///{tmp_path / 'other.db'}") as other:
        fresh = make_client(build(artifact, other), host=LOOPBACK).get("/metrics").text
    assert "recommendations" not in fresh


def test_health_tells_the_store_and_the_model_apart(local: Any) -> None:
    assert local.get("/health").json() == {"status": "ok", "model": "itemknn", "n_users": 60,
                                           "n_items": 40, "store": "ok"}


def test_the_training_users_are_registered_in_the_store(app: Any, store: Store) -> None:
    assert store.user_exists(1) and store.user_exists(60) and not store.user_exists(61)


def test_a_catalog_movie_the_model_never_saw_can_be_rated(artifact: tuple[Any, Any, Any],
                                                          store: Store) -> None:
    # The site's catalog is larger than the model's training items: a rating of a new movie is
    # stored (a retrain learns it) and the list still answers, the movie set aside as unknown.
    import pandas as pd

    from movierec.serve import create_app

    model, catalog, meta = artifact
    new_id = int(catalog["item_id"].max()) + 1
    extra = pd.DataFrame({"item_id": [new_id], "title": ["A New Film (2026)"],
                          "year": [2026.0], "genres": [("Drama",)]})
    bigger = pd.concat([catalog, extra], ignore_index=True)
    client = make_client(create_app(model, bigger, meta, store=store, max_ratings=5),
                         host=LOOPBACK)
    assert client.put(f"/users/1/ratings/{new_id}", json={"rating": 5}).status_code == 200
    batch = client.post("/users/2/ratings", json={"ratings": [{"item_id": new_id,
                                                                "rating": 4}]})
    assert batch.status_code == 200, batch.text
    assert store.ratings_of(1)["item_id"].tolist() == [new_id]
    answer = client.get("/users/1/recommendations")
    assert answer.status_code == 200 and new_id in answer.json()["ignored_items"]
    nobody = client.put(f"/users/1/ratings/{new_id + 1}", json={"rating": 5})
    assert nobody.status_code == 404
