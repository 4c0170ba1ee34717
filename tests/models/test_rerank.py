"""Rerank: its features by hand, a planted signal it must learn, persistence and bad input."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from contract import check_serves_known_and_new_users

from movierec.data.dataset import Dataset
from movierec.errors import MissingExtraError, MovieRecError
from movierec.evaluate import evaluate
from movierec.fold_in import fold_in
from movierec.models import get
from movierec.split import user_random_split

lgb = pytest.importorskip("lightgbm")

from movierec.models._rerank_features import (  # noqa: E402
    CONTEXT_FEATURES,
    SEQUENCE_FEATURES,
    _upto,
    context_columns,
    sequence_side,
    sequence_weights,
    timeline,
    user_rows,
)
from movierec.models._sequences import time_order  # noqa: E402
from movierec.models.rerank import SIDE_FEATURES, Rerank, side_features  # noqa: E402

DAY = 86400


@pytest.fixture
def hand() -> Dataset:
    """Two users, three movies with years and genres, users with demographics; times in days."""
    ratings = pd.DataFrame(
        [(1, 1, 5.0, 0 * DAY), (1, 2, 3.0, 1 * DAY), (2, 1, 4.0, 2 * DAY), (2, 3, 2.0, 4 * DAY)],
        columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame({"item_id": [1, 2, 3], "title": ["A", "B", "C"],
                          "year": [1990.0, 1995.0, 2000.0],
                          "genres": [("Drama",), ("Comedy", "Drama"), ("Comedy",)]})
    users = pd.DataFrame({"user_id": [1, 2], "age": [20, 30], "gender": ["M", "F"],
                          "occupation": ["engineer", "writer"], "zip": ["1", "2"]})
    return Dataset(ratings, items=items, users=users, name="hand")


def test_side_features_by_hand(hand: Dataset) -> None:
    side = side_features(hand, ["Comedy", "Drama"], ["engineer", "writer"])
    np.testing.assert_allclose(side["item_log_count"], np.log1p([2, 1, 1]))
    np.testing.assert_allclose(side["item_mean_rating"], [4.5, 3.0, 2.0])
    # The training end is day 4: item 1 was last rated on day 2, first on day 0.
    np.testing.assert_allclose(side["item_days_since_last"], [2.0, 3.0, 0.0])
    np.testing.assert_allclose(side["item_days_since_first"], [4.0, 3.0, 0.0])
    np.testing.assert_allclose(side["item_year"], [1990, 1995, 2000])
    np.testing.assert_allclose(side["user_log_count"], np.log1p([2, 2]))
    np.testing.assert_allclose(side["user_mean_rating"], [4.0, 3.0])
    np.testing.assert_allclose(side["user_days_since_last"], [3.0, 0.0])
    # User 1 rated A (Drama) and B (Comedy, Drama): Comedy in 1/2 of them, Drama in 2/2.
    np.testing.assert_allclose(side["user_genres"], [[0.5, 1.0], [0.5, 0.5]])
    np.testing.assert_allclose(side["item_genres"], [[0, 1], [1, 1], [1, 0]])
    np.testing.assert_allclose(side["user_age"], [20, 30])
    np.testing.assert_allclose(side["user_gender"], [1, 0])
    np.testing.assert_allclose(side["user_occupation"], [0, 1])


def test_side_features_without_side_tables(tiny: Dataset) -> None:
    side = side_features(tiny, [], [])
    assert np.isnan(side["item_year"]).all() and np.isnan(side["user_age"]).all()
    assert side["item_genres"].shape == (tiny.n_items, 0)


def _context(ds: Dataset, users: list[int], items: list[int], days: int
             ) -> dict[str, np.ndarray]:
    side = timeline(ds)
    rows, cols = np.arange(len(users)), np.asarray(items)
    user = {k: v[np.asarray(users)] for k, v in side.items() if k.startswith("user_")}
    return context_columns(side, user, rows, cols, days)


def test_time_context_by_hand(hand: Dataset) -> None:
    # Days 0, 1 (user 1) and 2, 4 (user 2); movie codes 0, 1, 2 first rated on days 0, 1, 4.
    side = timeline(hand)
    np.testing.assert_allclose(side["user_first_day"], [0, 2])
    np.testing.assert_allclose(side["user_last_day"], [1, 4])
    np.testing.assert_allclose(_upto(side, np.arange(3), np.full(3, 4.0))[2], [0, 1, 4])
    np.testing.assert_allclose(side["timeline_day_total"], [1, 2, 3, 3, 4])
    # User 1 (days 0-1) and movie 3: not rated by day 1, so no count and no age.
    # User 2 (days 2-4) and movie 2: rated once, on day 1, before the user's period;
    # movie 1: twice by day 4, once (day 2) within the period, of 2 ratings in the period.
    ctx = _context(hand, [0, 1, 1], [2, 1, 0], 0)
    np.testing.assert_allclose(ctx["ctx_item_log_count_before"], np.log1p([0, 1, 2]))
    np.testing.assert_allclose(ctx["ctx_item_log_count_window"], np.log1p([0, 0, 1]))
    np.testing.assert_allclose(ctx["ctx_item_share_window"], [0, 0, 0.5])
    np.testing.assert_allclose(ctx["ctx_item_days_since_first"], [np.nan, 3, 4])
    # One day more before user 2's first rating takes in day 1: 3 ratings in the period.
    ctx = _context(hand, [1, 1], [1, 0], 1)
    np.testing.assert_allclose(ctx["ctx_item_log_count_window"], np.log1p([1, 1]))
    np.testing.assert_allclose(ctx["ctx_item_share_window"], [1 / 3, 1 / 3])


def test_time_context_never_looks_past_the_users_last_day(hand: Dataset) -> None:
    before = _context(hand, [0, 0, 0], [0, 1, 2], 30)
    later = pd.DataFrame([(3, 2, 4.0, 3 * DAY), (3, 3, 4.0, 3 * DAY), (3, 1, 1.0, 5 * DAY)],
                         columns=["user_id", "item_id", "rating", "timestamp"])
    more = Dataset(pd.concat([hand.ratings, later], ignore_index=True), items=hand.items,
                   users=hand.users, name="more")
    after = _context(more, [0, 0, 0], [0, 1, 2], 30)  # user 1's last day is day 1
    for name in CONTEXT_FEATURES:
        np.testing.assert_allclose(after[name], before[name], err_msg=name)


def _weights(ds: Dataset, window: int, n_neighbors: int = 100) -> np.ndarray:
    u, i = ds.codes
    order = time_order(u, i, ds.ratings["timestamp"].to_numpy())
    return sequence_weights(u[order], i[order], ds.n_items, window, n_neighbors).toarray()


def test_sequence_weights_and_recent_items_by_hand() -> None:
    # User 1 rates movies 1, 2, 3, 4 in that order; user 2 rates 3, 1 (ties by time: item id).
    ratings = pd.DataFrame(
        [(1, 1, 5.0, 0), (1, 2, 4.0, 10), (1, 3, 4.0, 20), (1, 4, 3.0, 30),
         (2, 3, 4.0, 5), (2, 1, 2.0, 5)],
        columns=["user_id", "item_id", "rating", "timestamp"])
    ds = Dataset(ratings, name="seq")
    # Window 1: pairs (1,2), (2,3), (3,4) of user 1 and (1,3) of user 2 (1 before 3: a tie).
    w = _weights(ds, 1)
    n = np.array([2, 1, 2, 1], dtype=float)  # training counts of movies 1..4
    expected = np.zeros((4, 4))
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 2)]:
        expected[a, b] = expected[b, a] = 1 / np.sqrt(n[a] * n[b])
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    # Window 2 adds (1,3) of user 1 (so c_13 = 2) and (2,4).
    w2 = _weights(ds, 2)
    assert w2[0, 2] == pytest.approx(2 / np.sqrt(4)) and w2[1, 3] == pytest.approx(1.0)
    # Pruned to one neighbour per row: the largest, ties to the lower column.
    w1 = _weights(ds, 2, n_neighbors=1)
    assert (np.count_nonzero(w1, axis=1) == 1).all()
    assert np.argmax(w1[1]) == 3  # movie 2: 1/√2 to 1, 3 and 1.0 to movie 4
    recent = sequence_side(ds, 1, n_recent=2)["user_recent"].toarray()
    np.testing.assert_array_equal(recent, [[0, 0, 1, 1], [1, 0, 1, 0]])


def test_sequence_features_learn_what_follows() -> None:
    """Each user rates a chain of movies in order; the next in the chain is what they rate next.

    Popularity cannot tell which movie comes next; the latest movies' time-adjacency can.
    """
    gen = np.random.default_rng(0)
    rows = []
    for u in range(120):
        start = int(gen.integers(0, 30))
        for t, i in enumerate(range(start, start + 8)):
            rows.append((u + 1, i % 40 + 1, 4.0, t))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    from movierec.split import user_time_split

    split = user_time_split(Dataset(frame, name="chains"), test_size=0.125)
    kw = {"generators": ("pop",), "n_candidates": 40, "n_estimators": 30,
          "min_child_samples": 5, "early_stopping_rounds": 0, "time_context": False}
    plain = Rerank(sequence_window=0, **kw).fit(split.train, rng=0, progress=False,
                                                time_ordered=True)
    seq = Rerank(**kw).fit(split.train, rng=0, progress=False, time_ordered=True)
    ndcg = {name: evaluate(m, split, ks=(10,), relevance=0.0)["ndcg@10"]
            for name, m in (("plain", plain), ("seq", seq))}
    assert ndcg["seq"] > ndcg["plain"] + 0.3, ndcg
    assert max(seq.feature_importances_, key=seq.feature_importances_.__getitem__) in (
        "seq_adjacency_recent", "seq_adjacency")


def test_without_time_context_the_features_are_the_side_features(tmp_path: Path) -> None:
    split = user_random_split(planted(), test_size=0.3, rng=0)
    model = Rerank(generators=("pop",), time_context=False, sequence_window=0, n_estimators=5,
                   min_child_samples=5).fit(split.train, rng=0, progress=False)
    assert model.feature_names_[3:] == [*SIDE_FEATURES]
    assert "timeline_key" not in model._side
    loaded = Rerank.load(model.save(tmp_path / "m"))
    codes = np.arange(5)
    np.testing.assert_array_equal(loaded._score(codes), model._score(codes))


def test_generator_ranks_and_pool() -> None:
    model = Rerank(generators=("pop",), n_candidates=2)
    seen = np.array([[False, False, False, True], [False, False, False, False]])
    scores = np.array([[3.0, 1.0, 2.0, 5.0], [1.0, 1.0, 0.0, 0.0]])
    pool, (rank,) = model._pool([scores], seen)
    # Unseen items by score (ties to the lower code), the seen item last.
    np.testing.assert_array_equal(rank, [[1, 3, 2, 4], [1, 2, 3, 4]])
    np.testing.assert_array_equal(pool, [[True, False, True, False],
                                         [True, True, False, False]])


def test_design_genre_overlap_and_ranks(hand: Dataset) -> None:
    model = Rerank(generators=("pop",), n_candidates=5, early_stopping_rounds=0,
                   min_child_samples=1, n_estimators=2).fit(hand, rng=0, progress=False)
    side = model._side
    codes = np.arange(2)
    scores = [model.generators_[0]._score(codes)]
    pool, ranks = model._pool(scores, model.seen_[codes].toarray() > 0)
    rows, cols = np.nonzero(pool)  # user 1: movie 3; user 2: movie 2
    np.testing.assert_array_equal(cols, [2, 1])
    user = user_rows(side, codes, model.seen_[codes])
    x = model._design(scores, ranks, rows, cols, user, side)
    names = model.feature_names_
    assert names[:3] == ["pop.score", "pop.zscore", "pop.rank"] and names[3:] == [
        *SIDE_FEATURES, *CONTEXT_FEATURES, *SEQUENCE_FEATURES]
    # User 1 (Comedy 1/2, Drama 1) and movie 3 (Comedy): 0.5; user 2 and movie 2: (0.5+0.5)/2.
    np.testing.assert_allclose(x[:, names.index("genre_overlap")], [0.5, 0.5])
    np.testing.assert_allclose(x[:, names.index("pop.score")], [1.0, 1.0])
    np.testing.assert_allclose(x[:, names.index("pop.rank")], [1.0, 1.0])
    np.testing.assert_allclose(x[:, names.index("item_year")], [2000, 1995])
    np.testing.assert_allclose(x[:, names.index("user_gender")], [1, 0])


def planted(n_users: int = 80, n_items: int = 40, seed: int = 0) -> Dataset:
    """Each user rates only movies of their own genre; popularity ignores the genre.

    Popularity ranks both genres alike (about half its list is wrong), while the genre overlap
    feature fully determines what a user rates.
    """
    gen = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        own = np.arange(u % 2, n_items, 2)
        for t, i in enumerate(gen.choice(own, size=10, replace=False)):
            rows.append((u + 1, int(i) + 1, 5.0, t))
    # A few ratings across genres, so that popularity mixes the two.
    for i in range(n_items):
        rows.append((1000 + i, i + 1, 1.0, 0))
    items = pd.DataFrame({"item_id": np.arange(1, n_items + 1), "title": "x", "year": 2000.0,
                          "genres": [("Comedy",) if i % 2 == 0 else ("Drama",)
                                     for i in range(n_items)]})
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Dataset(frame, items=items, name="planted")


def test_learns_a_planted_signal_and_beats_its_generator() -> None:
    split = user_random_split(planted(), test_size=0.3, rng=0)
    pop = get("pop").fit(split.train, rng=0, progress=False)
    # Without the sequence features, which learn the genre too (co-rated movies share it).
    model = Rerank(generators=("pop",), n_candidates=40, holdout="random", holdout_size=0.3,
                   n_estimators=30, min_child_samples=5, early_stopping_rounds=0,
                   sequence_window=0)
    model.fit(split.train, rng=0, progress=False)
    ndcg_pop = evaluate(pop, split, ks=(10,), relevance=0.0)["ndcg@10"]
    ndcg_rerank = evaluate(model, split, ks=(10,), relevance=0.0)["ndcg@10"]
    assert ndcg_rerank > ndcg_pop + 0.2
    importances = model.feature_importances_
    assert list(importances) == model.feature_names_
    assert max(importances, key=importances.__getitem__) == "genre_overlap"


def test_save_load_same_recommendations_no_pickle(tmp_path: Path) -> None:
    split = user_random_split(planted(), test_size=0.3, rng=0)
    model = Rerank(generators=(("ease", {"lambda_": 10.0}), "pop"), n_candidates=10,
                   n_estimators=10, min_child_samples=5).fit(split.train, rng=0, progress=False)
    path = model.save(tmp_path / "model")
    loaded = Rerank.load(path)
    users = split.train.user_vocab.index
    pd.testing.assert_frame_equal(model.recommend(users, k=5), loaded.recommend(users, k=5))
    assert not [p for p in path.rglob("*") if p.suffix in (".pkl", ".pickle", ".pt", ".npy")]
    meta = json.loads((path / "model.json").read_text())
    assert meta["feature_importances"] == model.feature_importances_
    # ranker.txt is LightGBM's own text format and loads on its own.
    booster = lgb.Booster(model_file=str(path / "ranker.txt"))
    assert booster.num_feature() == len(model.feature_names_)


def test_fold_in_scores_a_new_user(tiny: Dataset) -> None:
    model = Rerank(generators=("ease", "itemknn"), n_candidates=2, n_estimators=3,
                   min_child_samples=1, early_stopping_rounds=0).fit(tiny, rng=0, progress=False)
    result = fold_in(model, [10, 20], [5.0, 4.0])
    assert result.method == "model" and result.scores.shape == (tiny.n_items,)
    rated = model.item_vocab_.codes(np.array([10, 20]))
    others = np.setdiff1d(np.arange(tiny.n_items), rated)
    # The rated items come below every unrated one.
    assert result.scores[rated].max() < result.scores[others].min()


def test_list_longer_than_the_pool_is_filled_by_the_first_generator(
        caplog: pytest.LogCaptureFixture) -> None:
    train = planted()
    model = Rerank(generators=("pop", "ease"), n_candidates=2, n_estimators=3,
                   min_child_samples=1, early_stopping_rounds=0).fit(train, rng=0, progress=False)
    user = int(train.user_vocab.index[0])
    with caplog.at_level(logging.WARNING, logger="movierec.models.rerank"):
        rec = model.recommend(user, k=20)
    assert "k=20 is larger than n_candidates=2" in caplog.text
    assert len(rec) == 20
    # Past the pool (at most 2 + 2 items) the order is popularity's.
    pop = get("pop").fit(train).recommend(user, k=30)["item_id"].tolist()
    tail = rec["item_id"].tolist()[4:]
    assert tail == [i for i in pop if i in tail]


def test_bad_input_one_line_errors(tiny: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="generators must be a non-empty sequence"):
        Rerank(generators=())
    with pytest.raises(ValueError, match=r"generators\[0\].*ranks items.*'mean' cannot"):
        Rerank(generators=("mean",))
    with pytest.raises(ValueError, match=r"generators\[1\].*registered model"):
        Rerank(generators=("ease", "no-such-model"))
    with pytest.raises(ValueError, match=r"generators\[0\] \(ease\)"):
        Rerank(generators=(("ease", {"nope": 1}),))
    with pytest.raises(ValueError, match="holdout must be one of"):
        Rerank(holdout="oldest")
    with pytest.raises(ValueError, match="context_days must be an integer ≥ 0"):
        Rerank(context_days=-1)
    with pytest.raises(ValueError, match="sequence_window must be an integer ≥ 0"):
        Rerank(sequence_window=1.5)
    with pytest.raises(ValueError, match="time_context must be true or false"):
        Rerank(time_context="yes")
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # import lightgbm now fails
    with pytest.raises(MissingExtraError, match=r"pip install 'movierec\[rank\]'") as info:
        Rerank(generators=("pop",)).fit(tiny, rng=0, progress=False)
    assert "\n" not in str(info.value)


def test_service_answers_known_and_new_users(tmp_path: Path) -> None:
    train = planted()
    model = Rerank(generators=("ease", "pop"), n_candidates=5, n_estimators=5,
                   min_child_samples=5).fit(train, rng=0, progress=False)
    check_serves_known_and_new_users(model, train, tmp_path)


def test_several_random_carve_outs_give_more_ranker_rows() -> None:
    train = planted()
    one, two = (Rerank(generators=("pop",), n_candidates=5, holdout="random", n_holdouts=n,
                       n_estimators=3, min_child_samples=5).fit(train, rng=0, progress=False)
                for n in (1, 2))
    assert two.n_ranker_rows_ > one.n_ranker_rows_
    assert two.n_ranker_users_ >= one.n_ranker_users_ > 0
    with pytest.raises(ValueError, match="n_holdouts must be"):
        Rerank(holdout="latest", n_holdouts=2)


@pytest.mark.parametrize(("kind", "expected"), [("user-time", "latest"),
                                                ("user-random", "random")])
def test_auto_holdout_follows_the_split_order(kind: str, expected: str) -> None:
    """fit_evaluate tells rerank whether the split is time-ordered; "auto" carves to match."""
    from movierec.pipeline import fit_evaluate
    from movierec.split import make_split

    split = make_split(planted(), kind, test_size=0.2, rng=0)
    record = fit_evaluate(Rerank(generators=("pop",), n_candidates=5, n_estimators=3,
                                 min_child_samples=5), split, seed=0, auto_valid=False)
    assert record.params["holdout"] == "auto" and record.fitted.holdout_used_ == expected
    # Fitted directly, without the split's order, "auto" is "random"; n_holdouts > 1 needs it.
    direct = Rerank(generators=("pop",), n_candidates=5, n_estimators=3, min_child_samples=5,
                    n_holdouts=2)
    assert direct.fit(planted(), rng=0, progress=False).holdout_used_ == "random"
    if expected == "latest":
        with pytest.raises(MovieRecError, match="n_holdouts=2 needs random carve-outs"):
            direct.fit(planted(), rng=0, progress=False, time_ordered=True)
