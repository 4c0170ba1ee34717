"""The service ranks with the model's own kernel: its lists equal `model.recommend`'s.

The engine used to rank a user's scores a second time and broke ties by popularity, so a model
with tied scores answered one order through `recommend` and another through the service.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Dataset
from movierec.models.base import Recommender
from movierec.random import RNGLike, as_generator
from movierec.serve.engine import Engine

# Items 1-6; popularity 1, 1, 1, 2, 3, 4 (item 6 is the most rated). User 1 rated item 1 only.
_ROWS = [(1, 1), (2, 3), (2, 4), (2, 5), (2, 6), (3, 4), (3, 5), (3, 6), (4, 5), (4, 6),
         (5, 2), (5, 6)]
_GENRES = {1: ["Comedy"], 2: ["Comedy"], 3: ["Comedy"], 4: ["Drama"], 5: ["Comedy", "Drama"],
           6: ["Drama"]}


def _tiny() -> Dataset:
    frame = pd.DataFrame(_ROWS, columns=["user_id", "item_id"])
    frame["rating"] = np.float32(4.0)
    frame["timestamp"] = np.arange(len(frame))
    return Dataset(frame, name="ties")


def _catalog(item_ids: Any, genres: dict[int, list[str]] | None = None) -> pd.DataFrame:
    ids = [int(i) for i in item_ids]
    return pd.DataFrame({"item_id": ids, "title": [f"Movie {i} (2000)" for i in ids],
                         "year": [2000] * len(ids),
                         "genres": [(genres or {}).get(i, ["Comedy"] if i % 2 else ["Drama"])
                                    for i in ids]})


class Constant(Recommender):
    """Scores every item 1.0: every candidate ties."""

    name = "constant"

    def __init__(self) -> None:
        pass

    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: RNGLike = None,
            progress: bool = True) -> Constant:
        self._setup(train)
        return self

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        n = self.n_items if item_codes is None else len(item_codes)
        return np.ones((len(user_codes), n), dtype=np.float32)


class Coarse(Recommender):
    """Seeded scores on a coarse grid (0, 0.5, 1, 1.5): many ties, some NaN."""

    name = "coarse"

    def __init__(self) -> None:
        pass

    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: RNGLike = None,
            progress: bool = True) -> Coarse:
        self._setup(train)
        gen = as_generator(rng)
        table = gen.integers(0, 4, size=(self.n_users, self.n_items)).astype(np.float32) / 2
        table[gen.random(table.shape) < 0.05] = np.nan
        self.table_ = table
        return self

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        s = self.table_[user_codes]
        return s if item_codes is None else s[:, item_codes]


def _served(engine: Engine, user_id: int, k: int, **kwargs: Any) -> list[int]:
    answer = engine.recommend_user(user_id, k, **kwargs)
    return [r["item_id"] for r in answer["recommendations"]]


def _recommended(model: Recommender, user_id: int, k: int, **kwargs: Any) -> list[int]:
    return model.recommend([user_id], k, **kwargs)["item_id"].tolist()


def test_ties_are_broken_as_recommend_breaks_them() -> None:
    """Hand-computed: all scores tie, so the lowest item codes win, not the most popular."""
    train = _tiny()
    model = Constant().fit(train)
    engine = Engine(model, _catalog(train.item_vocab.index, _GENRES))
    assert _recommended(model, 1, 3) == [2, 3, 4]
    assert _served(engine, 1, 3) == [2, 3, 4]  # popularity would give [6, 5, 4]
    # Comedy: items 1, 2, 3, 5; item 1 is seen.
    assert _recommended(model, 1, 2, candidates=[1, 2, 3, 5]) == [2, 3]
    assert _served(engine, 1, 2, genres=["comedy"]) == [2, 3]  # popularity: [5, 2]
    # Without exclusion the user's own item 1 comes first (lowest code).
    assert _served(engine, 1, 2, exclude_seen=False) == [1, 2]


@pytest.mark.parametrize("model_name", ["coarse", "pop"])
def test_service_lists_equal_recommend_for_every_user(model_name: str) -> None:
    gen = np.random.default_rng(4)
    rows = {(int(u), int(i)) for u, i in zip(gen.integers(1, 31, 400), gen.integers(1, 61, 400),
                                             strict=True)}
    frame = pd.DataFrame(sorted(rows), columns=["user_id", "item_id"])
    frame["rating"] = gen.integers(1, 6, size=len(frame)).astype(np.float32)
    frame["timestamp"] = np.arange(len(frame))
    train = Dataset(frame, name="coarse")
    if model_name == "pop":
        from movierec.models import get

        model = get("pop").fit(train, progress=False)
    else:
        model = Coarse().fit(train, rng=0)
    catalog = _catalog(train.item_vocab.index)
    engine = Engine(model, catalog)
    drama = catalog.loc[[("Drama" in g) for g in catalog["genres"]], "item_id"].to_numpy()
    checked_ties = 0
    for user in train.user_vocab.index.tolist():
        for exclude_seen in (True, False):
            want = model.recommend([user], 8, exclude_seen=exclude_seen)
            checked_ties += int(want["score"].duplicated().any())
            assert _served(engine, user, 8, exclude_seen=exclude_seen) == want.item_id.tolist()
            answer = engine.recommend_user(user, 8, exclude_seen=exclude_seen)
            np.testing.assert_allclose([r["score"] for r in answer["recommendations"]],
                                       want["score"], rtol=1e-6)
        want = _recommended(model, user, 5, candidates=drama)
        assert _served(engine, user, 5, genres=["Drama"]) == want
    assert checked_ties > 10  # the comparison did meet tied scores


def test_http_route_gives_the_same_order() -> None:
    from servekit import make_client

    from movierec.serve import create_app

    train = _tiny()
    model = Constant().fit(train)
    app = create_app(model, _catalog(train.item_vocab.index, _GENRES))
    body = make_client(app).get("/users/1/recommendations",
                                params={"k": 2, "genres": "Comedy"}).json()
    assert [r["item_id"] for r in body["recommendations"]] == [2, 3]
    assert [r["rank"] for r in body["recommendations"]] == [1, 2]
