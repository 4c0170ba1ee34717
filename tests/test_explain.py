"""Similar items and "because you liked" explanations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movierec.artifact import load_catalog
from movierec.data.dataset import Dataset
from movierec.explain import item_similarity
from movierec.models import get, load


@pytest.fixture
def two_groups() -> Dataset:
    """Users 0-9 rate items 0-4, users 10-19 rate items 5-9: two disjoint co-occurrence blocks."""
    rows = [(u, i, 5.0, 0) for u in range(10) for i in range(5) if (u + i) % 5 != 0]
    rows += [(u, i, 4.0, 0) for u in range(10, 20) for i in range(5, 10) if (u + i) % 5 != 0]
    items = pd.DataFrame({"item_id": range(10), "title": [f"Movie {i}" for i in range(10)],
                          "year": [1990.0] * 10, "genres": [("Drama",)] * 5 + [("Comedy",)] * 5})
    return Dataset(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]),
                   items=items)


def test_cooccurrence_similarity_is_cosine(two_groups):
    model = get("pop").fit(two_groups)
    x = model.seen_.toarray()
    unit = x / np.linalg.norm(x, axis=0)
    np.testing.assert_allclose(item_similarity(model, np.array([0, 7])),
                               (unit.T @ unit)[[0, 7]], rtol=1e-5)


def test_similar_items_stay_in_their_block(two_groups):
    model = get("itemknn", n_neighbors=5).fit(two_groups)
    sim = model.similar_items(2, k=4)
    assert sorted(sim["item_id"]) == [0, 1, 3, 4]
    assert list(sim["rank"]) == [1, 2, 3, 4]
    assert (np.diff(sim["similarity"].to_numpy()) <= 0).all()


def test_explanations_come_from_the_users_history(two_groups):
    model = get("ease", lambda_=1.0).fit(two_groups)
    user = 0  # rated items 1-4, not 0
    why = model.explain(user, [0, 7], n=2)
    assert len(why[0]) == 2 and {i for i, _ in why[0]} <= {1, 2, 3, 4}
    assert all(s > 0 for _, s in why[0])
    assert why[7] == []  # nothing the user rated co-occurs with item 7


def test_catalog_travels_with_the_model(two_groups, tmp_path):
    model = get("pop").fit(two_groups)
    model.save(tmp_path / "m", catalog=two_groups.items)
    catalog = load_catalog(tmp_path / "m")
    assert catalog is not None and len(catalog) == 10
    assert catalog.loc[catalog.item_id == 7, "genres"].item() == ("Comedy",)
    assert load(tmp_path / "m").recommend([0], k=1)["item_id"].item() == 0
