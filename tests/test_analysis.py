"""Exploration statistics and result analyses, checked by hand on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from movierec import analysis as A
from movierec.benchmark import BenchmarkResult
from movierec.data.dataset import Dataset
from movierec.errors import ArtifactError, SplitError
from movierec.split import make_split


@pytest.fixture
def movies() -> Dataset:
    """Three users, five movies with genres; item 1 is the most rated (3 of 8 ratings)."""
    ratings = pd.DataFrame(
        [(1, 1, 5.0, 10), (1, 2, 3.0, 20), (1, 3, 4.0, 30),
         (2, 1, 4.0, 40), (2, 4, 2.0, 50),
         (3, 1, 5.0, 60), (3, 3, 1.0, 70), (3, 5, 4.0, 80)],
        columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame({
        "item_id": [1, 2, 3, 4, 5],
        "title": ["Alpha (1990)", "Beta (1991)", "Gamma (1991)", "Delta (1995)", "Eps (1999)"],
        "year": [1990.0, 1991.0, 1991.0, 1995.0, np.nan],
        "genres": [("Action",), ("Comedy",), ("Action", "Comedy"), ("Drama",),
                   ("Comedy", "Drama")],
    })
    users = pd.DataFrame({"user_id": [1, 2, 3, 4], "age": [17, 30, 56, 40],
                          "gender": ["F", "M", "M", "F"],
                          "occupation": ["student", "writer", "student", "doctor"],
                          "zip": ["1", "2", "3", "4"]})
    return Dataset(ratings, items=items, users=users, name="movies")


@pytest.fixture
def lists() -> dict[str, pd.DataFrame]:
    def frame(rows: list[tuple[int, int]]) -> pd.DataFrame:
        users, items = zip(*rows, strict=True)
        rank = pd.Series(users).groupby(pd.Series(users)).cumcount() + 1
        return pd.DataFrame({"user_id": users, "item_id": items,
                             "score": np.linspace(1, 0, len(rows)), "rank": rank})

    return {"a": frame([(1, 4), (1, 5), (2, 2), (2, 3)]),
            "b": frame([(2, 1), (2, 3), (3, 2), (3, 4)])}


# --- exploration -------------------------------------------------------------------------------
def test_rating_distribution_counts_each_value(movies):
    dist = A.rating_distribution(movies)
    assert dist["rating"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert dist["ratings"].tolist() == [1, 1, 1, 3, 2]
    assert dist["share"].sum() == pytest.approx(1.0)


def test_ratings_over_time_sums_to_all_ratings():
    day = 86_400
    ratings = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [1, 2, 1, 3],
                            "rating": [4.0] * 4,
                            "timestamp": [0 + day, 2 * day, 9 * day, 30 * day]})
    frame = A.ratings_over_time(Dataset(ratings), freq="W")
    assert frame["ratings"].sum() == 4
    assert frame["users"].max() == 1  # never two users in the same week
    assert A.ratings_over_time(Dataset(ratings.assign(timestamp=0))).empty


def test_genre_popularity_counts_movies_and_ratings(movies):
    g = A.genre_popularity(movies).set_index("genre")
    assert g.loc["Action", "movies"] == 2 and g.loc["Action", "ratings"] == 5  # items 1, 3
    assert g.loc["Comedy", "movies"] == 3 and g.loc["Comedy", "ratings"] == 4  # 2, 3, 5
    assert g.loc["Drama", "ratings"] == 2
    assert list(g.index) == ["Action", "Comedy", "Drama"]  # most rated first
    assert len(A.genre_popularity(movies, top=2)) == 2


def test_item_popularity_marks_the_head(movies):
    pop = A.item_popularity(movies, head_share=0.2)
    assert pop["item_id"].tolist()[:2] == [1, 3]  # 3 and 2 ratings
    assert pop["cumulative_share"].iloc[-1] == pytest.approx(1.0)
    # item 1 alone holds 3/8 >= 20 % of the ratings: it is the whole head
    assert pop.loc[pop["head"], "item_id"].tolist() == [1]


def test_degree_distribution_and_sparsity(movies):
    users = A.degree_distribution(movies, "user")
    assert dict(zip(users["degree"], users["count"], strict=True)) == {2: 1, 3: 2}
    items = A.degree_distribution(movies, "item")
    assert dict(zip(items["degree"], items["count"], strict=True)) == {1: 3, 2: 1, 3: 1}
    row = A.sparsity(movies).iloc[0]
    assert row["possible"] == 15 and row["density"] == pytest.approx(8 / 15)
    assert row["sparsity"] == pytest.approx(7 / 15)
    with pytest.raises(ValueError, match="side"):
        A.degree_distribution(movies, "movie")  # type: ignore[arg-type]


def test_user_attributes_group_ages_and_count_rating_users(movies):
    ages = A.user_attribute(movies, "age").set_index("value")["users"]
    assert list(ages.index) == list(A.AGE_LABELS)
    assert ages["under 18"] == 1 and ages["25-34"] == 1 and ages["56+"] == 1
    assert ages.sum() == 3  # user 4 has no ratings
    jobs = A.user_attribute(movies, "occupation")
    assert jobs.iloc[0].tolist()[:2] == ["student", 2]
    with pytest.raises(ValueError, match="users table"):
        A.user_attribute(Dataset(movies.ratings), "gender")


def test_release_years_skip_unknown_years(movies):
    years = A.release_years(movies).set_index("year")
    assert years.to_dict("index") == {1990: {"movies": 1, "ratings": 3},
                                      1991: {"movies": 2, "ratings": 3},
                                      1995: {"movies": 1, "ratings": 1}}


def test_bipartite_sample_is_a_seeded_subgraph(ml_100k):
    nodes, edges = A.bipartite_sample(ml_100k, n_users=12, n_items=15, rng=3)
    users, movies = nodes[nodes["kind"] == "user"], nodes[nodes["kind"] == "movie"]
    assert len(users) == 12 and len(movies) == 15
    assert set(edges["user_id"]) <= set(users["id"]) and set(edges["item_id"]) == set(movies["id"])
    r = ml_100k.ratings
    pairs = set(zip(r["user_id"], r["item_id"], strict=True))
    assert all(p in pairs for p in zip(edges["user_id"], edges["item_id"], strict=True))
    for part in (users, movies):
        assert sorted(part["order"]) == list(range(len(part)))
    counts = r["item_id"].value_counts()
    assert (movies["degree"].to_numpy() == counts.reindex(movies["id"]).to_numpy()).all()
    again, _ = A.bipartite_sample(ml_100k, n_users=12, n_items=15, rng=3)
    pd.testing.assert_frame_equal(nodes, again)


# --- results -----------------------------------------------------------------------------------
def test_genre_distribution_by_hand(movies, lists):
    dist = A.genre_distribution(movies, {"a": lists["a"]})
    assert dist.loc["Action"].tolist() == pytest.approx([2 / 5, 3 / 5, 1 / 4])
    assert dist.loc["Comedy"].tolist() == pytest.approx([3 / 5, 2 / 5, 3 / 4])
    assert dist.loc["Drama"].tolist() == pytest.approx([2 / 5, 1 / 5, 2 / 4])
    assert list(dist.columns) == ["catalog", "history", "a"]
    # history: the 5 ratings of users 1 and 2 (the users with lists): items 1, 2, 3, 1, 4


def test_genre_overlap_and_one_users_sets(movies, lists):
    overlap = A.genre_overlap(movies, lists["a"]).set_index("user_id")
    # user 1: history {Action, Comedy}, list {Drama, Comedy}; user 2: {Action, Drama} vs
    # {Comedy, Action}
    assert overlap.loc[1].tolist() == [1, 1, 1]
    assert overlap.loc[2].tolist() == [1, 1, 1]
    sets = A.genre_sets(movies, lists["a"], 1).set_index("genre")
    assert sets.loc["Action"].tolist() == [2, 0, "only history"]
    assert sets.loc["Comedy"].tolist() == [2, 1, "both"]
    assert sets.loc["Drama"].tolist() == [0, 2, "only recommended"]


def test_popularity_bias_head_and_tail(movies, lists):
    bias = A.popularity_bias(movies, lists)
    assert bias.loc["catalog items", "head"] == pytest.approx(1 / 5)
    assert bias.loc["training ratings", "head"] == pytest.approx(3 / 8)
    assert bias.loc["a", "head"] == 0.0 and bias.loc["b", "head"] == pytest.approx(1 / 4)
    assert (bias["head"] + bias["tail"]).tolist() == pytest.approx([1.0] * 4)
    assert (bias["head_items"] == 1).all()


def test_user_card_explains_with_co_rated_liked_movies(movies, lists):
    history, recs = A.user_card(movies, lists["a"], 1)
    assert history["item_id"].tolist() == [1, 3, 2]  # best rated first
    assert history["genres"].tolist()[1] == "Action, Comedy"
    assert recs["item_id"].tolist() == [4, 5]
    # item 4 is rated by user 2 only, who also rated Alpha; item 5 by user 3, who rated Alpha
    # and Gamma: cos(5, Gamma) = 1/sqrt(2) > cos(5, Alpha) = 1/sqrt(3)
    assert recs["because_you_liked"].tolist() == ["Alpha (1990)", "Gamma (1991)"]
    assert A.pick_user(movies, lists["a"]) in (1, 2)
    with pytest.raises(ValueError, match="no training ratings"):
        A.user_card(movies, lists["a"], 99)


def _result(runs: list[dict]) -> BenchmarkResult:
    return BenchmarkResult(dataset="movies", split={"name": "random"},
                           protocol={"k": [5, 10]}, runs=runs)


def test_metric_frame_means_and_stds_over_seeds():
    runs = [{"model": "mf", "seed": s, "fit_seconds": 1.0, "recommend_seconds": 0.1,
             "metrics": {"rmse": 0.9 + s / 10, "ndcg@10": 0.2, "ndcg@5": 0.1,
                         "coverage@10": 0.5}} for s in (0, 1)]
    runs.append({"model": "pop", "seed": 0, "fit_seconds": 0.0, "recommend_seconds": 0.1,
                 "metrics": {"ndcg@10": 0.1, "ndcg@5": 0.05, "coverage@10": 0.01}})
    frame = A.metric_frame(_result(runs)).set_index(["model", "metric"])
    assert frame.loc[("mf", "rmse"), "mean"] == pytest.approx(0.95)
    assert frame.loc[("mf", "rmse"), "std"] == pytest.approx(np.std([0.9, 1.0], ddof=1))
    assert frame.loc[("mf", "rmse"), "family"] == "rating"
    assert frame.loc[("pop", "coverage@10"), "family"] == "beyond"
    assert frame.loc[("pop", "ndcg@10"), "seeds"] == 1
    assert ("pop", "rmse") not in frame.index and ("mf", "ndcg@5") not in frame.index
    assert ("mf", "ndcg@5") in A.metric_frame(_result(runs), k=5).set_index(
        ["model", "metric"]).index


def test_training_history_flattens_run_histories():
    hist = [{"epoch": e, "train_loss": 1.0 / e, "valid_metric": None, "seconds": 0.1}
            for e in (1, 2)]
    runs = [{"model": "mf", "seed": 1, "metrics": {}, "history": hist},
            {"model": "pop", "seed": 1, "metrics": {}}]
    frame = A.training_history(_result(runs))
    assert frame["epoch"].tolist() == [1, 2] and (frame["model"] == "mf").all()
    assert frame["valid_metric"].isna().all()
    assert A.training_history(_result(runs[1:])).empty


def test_load_benchmark_reads_results_and_lists(tmp_path, lists):
    runs = [{"model": "a", "seed": 1, "metrics": {"ndcg@10": 0.3}, "fit_seconds": 0.0,
             "recommend_seconds": 0.0}]
    result = _result(runs)
    result.lists["a-seed1"] = lists["a"]
    result.save(tmp_path)
    back = A.load_benchmark(tmp_path)
    assert back.runs == json.loads((tmp_path / "results.json").read_text())["runs"]
    pd.testing.assert_frame_equal(back.lists["a-seed1"], lists["a"])
    assert A.model_lists(back, k=1)["a"]["rank"].max() == 1
    with pytest.raises(ArtifactError, match="results.json"):
        A.load_benchmark(tmp_path / "missing")


def test_recreate_split_replays_the_record(ml_100k):
    for kind in ("user-random", "user-time", "random", "loo"):
        split = make_split(ml_100k, kind, test_size=0.2, valid_size=0.1, rng=7)
        result = BenchmarkResult(dataset="ml-100k", split=split.describe(), protocol={})
        again = A.recreate_split(result, ml_100k)
        pd.testing.assert_frame_equal(again.train.ratings, split.train.ratings)
    filtered = ml_100k.filter(min_item_ratings=5)
    split = make_split(filtered, "user-random", rng=7)
    result = BenchmarkResult(dataset="ml-100k", split=split.describe(), protocol={})
    with pytest.raises(SplitError, match="filtered"):
        A.recreate_split(result, ml_100k)
    with pytest.raises(SplitError, match="from files"):
        A.recreate_split(BenchmarkResult("x", {"name": "files"}, {}), ml_100k)
