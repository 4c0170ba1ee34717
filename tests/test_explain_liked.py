"""Issue 17: "because you liked" cites only liked movies; each model's similar list is its own
and not dominated by movies with a handful of ratings; save keeps the titles by default."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from movierec.artifact import load_catalog
from movierec.data.dataset import Dataset
from movierec.explain import item_similarity, liked_mask, similar_items
from movierec.models import get, load


def _dataset(rows: list[tuple[int, int, float]], n_items: int) -> Dataset:
    ratings = pd.DataFrame([(u, i, r, t) for t, (u, i, r) in enumerate(rows)],
                           columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame({"item_id": range(n_items), "title": [f"Movie {i}" for i in
                                                                range(n_items)],
                          "year": [1990.0] * n_items, "genres": [("Drama",)] * n_items})
    return Dataset(ratings, items=items)


@pytest.fixture
def disliked() -> Dataset:
    """Users 1-12 rate items 0-3 (5 stars) and item 0 always with item 1, so that item 1 is the
    movie most similar to item 0. User 0 rated item 1 with 1 star, items 2 and 3 with 5, and has
    not rated item 0: item 0 is recommended and its best support would be the disliked item 1."""
    rows = [(0, 1, 1.0), (0, 2, 5.0), (0, 3, 5.0), (0, 4, 3.0)]
    rows += [(u, i, 5.0) for u in range(1, 13) for i in (0, 1)]
    rows += [(u, 2, 4.0) for u in range(1, 13, 2)] + [(u, 3, 4.0) for u in range(2, 13, 3)]
    rows += [(u, 4, 2.0) for u in range(5, 9)]
    return _dataset(rows, 5)


def test_liked_mask_by_hand():
    users = np.array([7, 7, 7, 8, 8, 8, 9, 9, 9])
    ratings = np.array([1, 2, 3, 4, 4, 5, 3, 3, 2], dtype=float)
    # 7: mean 2, only 3 is above; 8: all ≥ 4; 9: mean 8/3, the 3s are above it.
    assert liked_mask(users, ratings).tolist() == [False, False, True, True, True, True,
                                                   True, True, False]
    assert liked_mask(np.zeros(3), np.ones(3), implicit=True).tolist() == [True] * 3
    assert liked_mask(np.zeros(3), np.array([3.0, 3.0, 3.0])).tolist() == [False] * 3
    assert liked_mask(np.zeros(2), np.array([4.0, 4.0])).tolist() == [True] * 2


@pytest.mark.parametrize("name", ["ease", "itemknn", "pop"])
def test_a_disliked_movie_is_never_cited(disliked, name):
    model = get(name).fit(disliked)
    sims = item_similarity(model, np.array([1, 2, 3]), np.array([0]))[:, 0]
    assert sims[0] > 0  # item 1 does support item 0 in every model...
    why = model.explain(0, [0], n=3)
    cited = [i for i, _ in why[0]]
    assert 1 not in cited  # ...but user 0 rated it 1 star
    assert 4 not in cited  # 3 stars, below the user's mean 3.5
    assert cited and set(cited) <= {2, 3}


def test_liked_record_survives_save_and_load(disliked, tmp_path):
    model = get("ease").fit(disliked)
    model.save(tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert (loaded.liked_ != model.liked_).nnz == 0
    assert [i for i, _ in loaded.explain(0, [0], n=3)[0]] == [i for i, _ in
                                                              model.explain(0, [0], n=3)[0]]


def test_implicit_data_likes_every_rated_movie(disliked):
    ones = Dataset(disliked.ratings.assign(rating=1.0), items=disliked.items)
    model = get("pop").fit(ones)
    assert model.liked_.nnz == model.seen_.nnz
    assert {i for i, _ in model.explain(0, [0], n=3)[0]} == {1, 2, 3}


def test_a_model_saved_without_the_liked_record_cites_nothing(disliked, caplog):
    model = get("ease").fit(disliked)
    del model.liked_  # as in a folder written before the record existed
    with caplog.at_level(logging.WARNING, logger="movierec.explain"):
        assert model.explain(0, [0], n=3) == {0: []}
    assert "without the record of which movies its users liked" in caplog.text


# --- similar lists -----------------------------------------------------------------------------
@pytest.fixture
def blocks() -> Dataset:
    """40 users, 12 items: item 0 rated by everyone, items 1-10 by overlapping bands of users,
    item 11 by only two users (who also rated item 0)."""
    rng = np.random.default_rng(0)
    rows = [(u, 0, 5.0) for u in range(40)]
    for i in range(1, 11):
        users = rng.choice(40, size=8 + 2 * i, replace=False)
        rows += [(int(u), i, float(rng.integers(1, 6))) for u in users]
    rows += [(3, 11, 5.0), (4, 11, 5.0)]
    return _dataset(rows, 12)


def test_ease_lists_by_its_own_weights(blocks):
    ease = get("ease", lambda_=5.0).fit(blocks)
    knn = get("itemknn").fit(blocks)
    mine = ease.similar_items(3, k=10, min_support=0, shrinkage=0)
    b = ease.item_weights_[3].astype(np.float64)
    b[3] = -np.inf
    assert mine["item_id"].tolist() == np.argsort(-b, kind="stable")[:10].tolist()
    np.testing.assert_allclose(mine["similarity"], np.sort(b)[::-1][:10], rtol=1e-6)
    theirs = knn.similar_items(3, k=10, min_support=0, shrinkage=0)
    assert mine["item_id"].tolist() != theirs["item_id"].tolist()


def test_itemknn_lists_by_its_own_neighbourhoods(blocks):
    knn = get("itemknn").fit(blocks)
    row = knn.neighbors_.T.toarray()[3]  # s_3j: item 3 among item j's neighbours
    got = knn.similar_items(3, k=4, min_support=0, shrinkage=0)
    np.testing.assert_allclose(got["similarity"], np.sort(row)[::-1][:4], rtol=1e-6)


def test_support_and_shrinkage_by_hand(blocks):
    model = get("pop").fit(blocks)  # co-occurrence cosine
    x = model.seen_.toarray()
    cos = (x.T @ x)[0] / (np.linalg.norm(x, axis=0) * np.linalg.norm(x[:, 0]))
    n = x.sum(axis=0)
    want = cos * n / (n + 10.0)
    want[0] = -np.inf
    got = similar_items(model, 0, k=11)
    assert 11 not in got["item_id"].tolist()  # 2 ratings < 5
    assert len(got) == 10
    np.testing.assert_allclose(got["similarity"], np.sort(want[:11])[::-1][:10], rtol=1e-5)
    assert 11 in similar_items(model, 0, k=11, min_support=0)["item_id"].tolist()


def test_mf_similar_list_leaves_out_a_two_rating_movie(blocks):
    pytest.importorskip("torch")
    model = get("mf", embedding_size=8, epochs=20, batch_size=64, device="cpu").fit(
        blocks, rng=0, progress=False)
    before = model.similar_items(0, k=10, min_support=0, shrinkage=0)["item_id"].tolist()
    assert 11 in before  # without the rule the 2-rating movie makes the top 10...
    after = model.similar_items(0, k=10)["item_id"].tolist()
    assert 11 not in after and len(after) == 10  # ...with it, never


# --- catalog saved by default --------------------------------------------------------------------
def test_save_without_catalog_keeps_the_titles(disliked, tmp_path):
    model = get("pop").fit(disliked)
    model.save(tmp_path / "m")
    catalog = load_catalog(tmp_path / "m")
    assert catalog is not None and catalog.set_index("item_id").loc[2, "title"] == "Movie 2"
    model.save(tmp_path / "bare", catalog=False)
    assert load_catalog(tmp_path / "bare") is None
    assert "_train_items" not in model._state()  # not learned state
