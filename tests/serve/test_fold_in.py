"""Fold-in: a new user's scores from a few ratings, for every model family, without refitting."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Dataset
from movierec.fold_in import fold_in, known_ratings, score_new_user
from movierec.models.baseline import Bias, GlobalMean, Popularity
from movierec.models.ease import EASE
from movierec.models.knn import ItemKNN, UserKNN


def low_rank_ratings(n_users: int = 150, n_items: int = 120, per_user: int = 30,
                     rank: int = 3, seed: int = 0) -> Dataset:
    """Ratings with structure: r = clip(round(3 + u·v + b_i + noise), 1, 5), and popular
    items rated more often, so that both rating and ranking models have something to learn."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n_users, rank))
    v = rng.normal(size=(n_items, rank))
    b = rng.normal(0, 0.5, size=n_items)
    # Without replacement, proportional to popularity: top keys of log(p) + Gumbel noise.
    keys = np.log(np.linspace(1.0, 0.1, n_items))[None, :] + rng.gumbel(size=(n_users,
                                                                             n_items))
    items = np.argsort(-keys, axis=1)[:, :per_user]
    users = np.repeat(np.arange(n_users), per_user)
    items = items.ravel()
    raw = 3 + np.sum(u[users] * v[items], axis=1) + b[items] + rng.normal(0, 0.3, len(items))
    frame = pd.DataFrame({"user_id": users + 1, "item_id": items + 1,
                          "rating": np.clip(np.round(raw), 1, 5),
                          "timestamp": np.arange(len(items))})
    return Dataset(frame, name="low-rank")


@pytest.fixture(scope="module")
def data() -> Dataset:
    return low_rank_ratings()


def history(data: Dataset, code: int) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, ratings) of a training user, by user code."""
    row = data.matrix("rating")[code]
    return data.item_vocab.ids(row.indices), row.data.astype(np.float64)


def top10(scores: np.ndarray, exclude: np.ndarray) -> set[int]:
    s = np.array(scores, dtype=np.float64)
    s[exclude] = -np.inf
    return set(np.argsort(-s, kind="stable")[:10].tolist())


def overlap_with_fitted(model, data: Dataset, users: range) -> float:  # noqa: ANN001
    """Mean top-10 overlap of fitted scores and fold-in scores of the same history."""
    values = []
    for code in users:
        ids, r = history(data, code)
        seen = data.item_vocab.codes(ids)
        fitted = model._score(np.array([code]))[0]
        folded = score_new_user(model, ids, r)
        values.append(len(top10(fitted, seen) & top10(folded, seen)) / 10)
    return float(np.mean(values))


# --- each family -------------------------------------------------------------------------------
def test_mf_fold_in_of_a_training_user_agrees_with_its_fitted_list(data: Dataset) -> None:
    pytest.importorskip("torch")
    from movierec.models.mf import MF

    model = MF(embedding_size=8, epochs=10, batch_size=512, learning_rate=0.03, patience=None,
               device="cpu").fit(data, rng=0, progress=False)
    assert overlap_with_fitted(model, data, range(40)) >= 0.5
    # Scores are on the rating scale, as the fitted user's: rank correlation over all items.
    ids, r = history(data, 0)
    fitted = model._score(np.array([0]))[0]
    folded = score_new_user(model, ids, r)
    ranks = [pd.Series(x).rank().to_numpy() for x in (fitted, folded)]
    assert np.corrcoef(*ranks)[0, 1] > 0.8


@pytest.mark.parametrize("model", [ItemKNN(n_neighbors=20), EASE(lambda_=50.0), Bias()],
                         ids=["itemknn", "ease", "bias"])
def test_fold_in_equals_the_fitted_score_exactly(data: Dataset, model) -> None:  # noqa: ANN001
    model.fit(data)
    for code in range(0, data.n_users, 15):
        ids, r = history(data, code)
        np.testing.assert_allclose(score_new_user(model, ids, r), model._score(
            np.array([code]))[0], rtol=1e-5, atol=1e-5)
    assert fold_in(model, *history(data, 0)).method == "model"


@pytest.mark.parametrize(("feedback", "similarity", "shrinkage"), [
    ("implicit", "cosine", 0.0), ("explicit", "pearson", 5.0),
    ("explicit", "adjusted_cosine", 0.0), ("explicit", "pearson_baseline", 0.0),
])
def test_userknn_fold_in_recomputes_the_similarities_of_fit(data: Dataset, feedback: str,
                                                            similarity: str,
                                                            shrinkage: float) -> None:
    # With k ≥ n_users every neighbour is kept: the new row differs from the training user
    # only by also matching that user (similarity 1), who adds only to already seen items.
    model = UserKNN(n_neighbors=data.n_users, feedback=feedback, similarity=similarity,
                    shrinkage=shrinkage).fit(data)
    for code in range(0, data.n_users, 25):
        ids, r = history(data, code)
        seen = data.item_vocab.codes(ids)
        unseen = np.setdiff1d(np.arange(data.n_items), seen)
        np.testing.assert_allclose(score_new_user(model, ids, r)[unseen],
                                   model._score(np.array([code]))[0, unseen], rtol=1e-4,
                                   atol=1e-5)


def test_userknn_with_pruned_neighbourhoods_agrees_with_its_fitted_list(data: Dataset) -> None:
    model = UserKNN(n_neighbors=20).fit(data)
    assert overlap_with_fitted(model, data, range(40)) >= 0.5


def test_popularity_and_mean_give_the_popular_list(data: Dataset) -> None:
    counts = np.asarray(data.matrix("binary").sum(axis=0)).ravel()
    ids, r = history(data, 3)
    for model in (Popularity().fit(data), GlobalMean().fit(data)):
        scores = score_new_user(model, ids, r)
        np.testing.assert_array_equal(scores, counts.astype(np.float32))


# --- inputs --------------------------------------------------------------------------------------
def test_unknown_items_are_ignored_and_reported(data: Dataset) -> None:
    model = ItemKNN(n_neighbors=20).fit(data)
    ids, r = history(data, 5)
    with_unknown = fold_in(model, np.concatenate([[10_000, 10_001], ids]),
                           np.concatenate([[5.0, 1.0], r]))
    np.testing.assert_array_equal(with_unknown.scores, score_new_user(model, ids, r))
    assert with_unknown.unknown_item_ids.tolist() == [10_000, 10_001]
    assert len(with_unknown.item_codes) == len(ids)


@pytest.mark.parametrize("items", [[], [10_000, 10_001]])
def test_no_usable_rating_falls_back_to_popularity(data: Dataset, items: list[int]) -> None:
    model = EASE(lambda_=50.0).fit(data)
    result = fold_in(model, items, [4.0] * len(items))
    assert result.method == "popularity"
    counts = np.asarray(data.matrix("binary").sum(axis=0)).ravel()
    np.testing.assert_array_equal(result.scores, counts.astype(np.float32))
    result.scores[:] = 0  # the answer is a copy: the cached popularity is untouched
    assert fold_in(model, items, [4.0] * len(items)).scores.sum() == counts.sum()


def test_repeated_item_keeps_its_last_rating(data: Dataset) -> None:
    model = Bias().fit(data)
    once = score_new_user(model, [1, 2], [5.0, 1.0])
    twice = score_new_user(model, [1, 2, 1], [1.0, 1.0, 5.0])
    np.testing.assert_array_equal(once, twice)
    codes, ratings, unknown = known_ratings(model, [2, 1, 2], [3.0, 4.0, 5.0])
    assert data.item_vocab.ids(codes).tolist() == [1, 2] and ratings.tolist() == [4.0, 5.0]
    assert len(unknown) == 0


@pytest.mark.parametrize(("items", "ratings", "message"), [
    ([1, 2], [5.0], "equal length"),
    ([1], [float("nan")], "finite"),
    ([1], [float("inf")], "finite"),
    ([1.5], [3.0], "integers"),
])
def test_invalid_inputs_raise_value_error(data: Dataset, items: list, ratings: list,
                                          message: str) -> None:
    model = Bias().fit(data)
    with pytest.raises(ValueError, match=message):
        score_new_user(model, items, ratings)


def test_fold_in_does_not_change_the_model(data: Dataset) -> None:
    model = UserKNN(n_neighbors=20, feedback="explicit", similarity="pearson").fit(data)
    before = {k: v.copy() if hasattr(v, "copy") else v for k, v in model._state().items()}
    scores = score_new_user(model, *history(data, 7))
    assert scores.dtype == np.float32 and scores.shape == (data.n_items,)
    for key, value in model._state().items():
        old = before[key]
        if hasattr(value, "toarray"):
            np.testing.assert_array_equal(value.toarray(), old.toarray())
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, old)


class _NoFoldIn(ItemKNN):
    """An ItemKNN that claims no fold-in rule, to exercise the generic fallback."""

    supports_fold_in: ClassVar[bool] = False


def test_models_without_a_rule_are_scored_in_their_item_space(checkerboard) -> None:  # noqa: ANN001
    train, withheld = checkerboard
    model = _NoFoldIn(n_neighbors=10).fit(train)
    # A new user who loves two even items and dislikes an odd one: even items come first.
    result = fold_in(model, [0, 2, 1], [5.0, 5.0, 1.0])
    assert result.method == "item-similarity"
    order = np.argsort(-result.scores, kind="stable")
    rated = model.item_vocab_.codes([0, 2, 1])
    ranked = [c for c in order if c not in rated]
    assert all(model.item_vocab_.ids([c])[0] % 2 == 0 for c in ranked[:2])
    assert model.item_vocab_.ids([ranked[-1]])[0] % 2 == 1


def test_mf_fold_in_survives_save_and_load(data: Dataset, tmp_path) -> None:  # noqa: ANN001
    pytest.importorskip("torch")
    from movierec.artifact import load_model
    from movierec.models.mf import MF

    model = MF(embedding_size=4, epochs=2, device="cpu").fit(data, rng=1, progress=False)
    ids, r = history(data, 2)
    loaded = load_model(model.save(tmp_path / "mf"))
    np.testing.assert_allclose(score_new_user(loaded, ids, r), score_new_user(model, ids, r),
                               rtol=1e-6)


@pytest.mark.parametrize("name", ["lstm", "sasrec"])
def test_sequential_fold_in_of_a_training_history_equals_its_fitted_scores(data: Dataset,
                                                                          name: str) -> None:
    """The new user's items, given in time order, are the context a training user has."""
    pytest.importorskip("torch")
    from movierec.models import get

    model = get(name, embedding_size=8, max_len=10, epochs=2, batch_size=64,
                device="cpu").fit(data, rng=0, progress=False)
    ratings = data.ratings
    for user in (0, 7):
        uid = int(model.user_vocab_.ids(np.array([user]))[0])
        mine = ratings[ratings["user_id"] == uid].sort_values("timestamp", kind="stable")
        folded = fold_in(model, mine["item_id"].to_numpy(), mine["rating"].to_numpy())
        assert folded.method == "model"
        np.testing.assert_allclose(folded.scores, model._score(np.array([user]))[0], rtol=1e-5,
                                   atol=1e-5)
    # A different order is a different context: the scores change.
    shuffled = fold_in(model, mine["item_id"].to_numpy()[::-1], mine["rating"].to_numpy()[::-1])
    assert not np.allclose(shuffled.scores, folded.scores)
