"""Fusion: standardization by hand, weights it must learn, fixed weights, persistence, bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from contract import check_serves_known_and_new_users

from movierec.data.dataset import Dataset
from movierec.evaluate import evaluate
from movierec.fold_in import fold_in
from movierec.models import get
from movierec.models.fusion import DEFAULT_MEMBERS, Fusion, standardize
from movierec.split import user_random_split


def planted(n_users: int = 80, n_items: int = 40, seed: int = 0) -> Dataset:
    """Each user rates only movies of their own half; popularity ignores the halves."""
    gen = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        own = np.arange(u % 2, n_items, 2)
        for t, i in enumerate(gen.choice(own, size=10, replace=False)):
            rows.append((u + 1, int(i) + 1, 5.0, 100 * u + t))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Dataset(frame, name="planted")


def test_standardize_by_hand() -> None:
    scores = np.array([[1.0, 2.0, 3.0, 100.0], [5.0, 5.0, -np.inf, 5.0]])
    seen = np.array([[False, False, False, True], [False, False, False, False]])
    z = standardize(scores, seen)
    # Row 0: mean 2 and deviation sqrt(2/3) over the three unseen items; the seen one shifted
    # and scaled alike.
    sd = np.sqrt(2 / 3)
    np.testing.assert_allclose(z[0], [-1 / sd, 0.0, 1 / sd, 98 / sd], rtol=1e-6)
    # Row 1: equal finite scores give 0, a non-finite one the floor.
    assert z[1, [0, 1, 3]].tolist() == [0.0, 0.0, 0.0] and z[1, 2] < -100
    assert z.dtype == np.float32


def test_learns_to_weigh_the_member_that_knows_the_users() -> None:
    split = user_random_split(planted(), test_size=0.3, rng=0)
    model = Fusion(members=("pop", ("itemknn", {"n_neighbors": 10})), holdout_size=0.3)
    model.fit(split.train, rng=0, progress=False)
    # Popularity (weight 1) mixes the halves; item-kNN knows them and gets a weight.
    assert model.weights_[0] == 1.0 and model.weights_[1] > 0
    alone = model.holdout_ndcg_
    assert alone["fusion"] > alone["pop"] + 0.1 and model.holdout_users_ > 0
    pop = get("pop").fit(split.train, rng=0, progress=False)
    ndcg_pop = evaluate(pop, split, ks=(10,), relevance=0.0)["ndcg@10"]
    ndcg_fusion = evaluate(model, split, ks=(10,), relevance=0.0)["ndcg@10"]
    assert ndcg_fusion > ndcg_pop + 0.1


def test_fixed_weights_skip_the_carve_out_and_rank_as_the_weighted_member() -> None:
    train = planted()
    model = Fusion(members=("pop", ("ease", {"lambda_": 10.0})), weights=(0, 1))
    model.fit(train, rng=0, progress=False)
    assert model.holdout_ndcg_ == {} and set(model.fit_seconds_) == {"pop", "ease"}
    ease = get("ease", lambda_=10.0).fit(train, rng=0, progress=False)
    users = train.user_vocab.index
    pd.testing.assert_frame_equal(model.recommend(users, k=5)[["user_id", "item_id"]],
                                  ease.recommend(users, k=5)[["user_id", "item_id"]])


def test_equal_weights_add_the_standardized_scores(tiny: Dataset) -> None:
    model = Fusion(members=("ease", "itemknn"), weights=(1, 1)).fit(tiny, rng=0, progress=False)
    users = tiny.user_vocab.index
    seen = model.seen_.toarray() > 0
    expected = sum(standardize(m.score(users), seen) for m in model.members_)
    np.testing.assert_allclose(model.score(users), expected, rtol=1e-5, atol=1e-5)


def test_save_load_same_recommendations_no_pickle(tmp_path: Path) -> None:
    split = user_random_split(planted(), test_size=0.3, rng=0)
    model = Fusion(members=(("ease", {"lambda_": 10.0}), "itemknn", "pop"), holdout_size=0.3)
    model.fit(split.train, rng=0, progress=False)
    path = model.save(tmp_path / "model")
    loaded = Fusion.load(path)
    np.testing.assert_array_equal(loaded.weights_, model.weights_)
    users = split.train.user_vocab.index
    pd.testing.assert_frame_equal(model.recommend(users, k=5), loaded.recommend(users, k=5))
    assert not [p for p in path.rglob("*") if p.suffix in (".pkl", ".pickle", ".pt", ".npy")]
    assert json.loads((path / "model.json").read_text())["params"]["members"][0][0] == "ease"


def test_fold_in_scores_a_new_user(tiny: Dataset) -> None:
    model = Fusion(members=("ease", "itemknn"), weights=(1, 0.5)).fit(tiny, rng=0,
                                                                      progress=False)
    result = fold_in(model, [10, 20], [5.0, 4.0])
    assert result.method == "model" and result.scores.shape == (tiny.n_items,)
    rated = model.item_vocab_.codes(np.array([10, 20]))
    seen = np.zeros((1, tiny.n_items), dtype=bool)
    seen[0, rated] = True
    ease, knn = (fold_in(m, [10, 20], [5.0, 4.0]).scores[None] for m in model.members_)
    expected = standardize(ease, seen) + 0.5 * standardize(knn, seen)
    np.testing.assert_allclose(result.scores, expected[0], rtol=1e-5, atol=1e-5)


def test_too_small_a_carve_out_falls_back_to_the_first_member(
        tiny: Dataset, caplog: pytest.LogCaptureFixture) -> None:
    one = Dataset(tiny.ratings.iloc[:1], name="one")
    with caplog.at_level(logging.WARNING, logger="movierec.models.fusion"):
        model = Fusion(members=("ease", "pop")).fit(one, rng=0, progress=False)
    assert model.weights_.tolist() == [1.0, 0.0] and "first member alone" in caplog.text


def test_bad_input_one_line_errors() -> None:
    with pytest.raises(ValueError, match="members must be a non-empty sequence"):
        Fusion(members=())
    with pytest.raises(ValueError, match=r"members\[0\].*ranks items.*'mean' cannot"):
        Fusion(members=("mean",))
    with pytest.raises(ValueError, match=r"members\[1\].*other than fusion"):
        Fusion(members=("ease", "fusion"))
    with pytest.raises(ValueError, match=r"members\[0\] \(ease\)"):
        Fusion(members=(("ease", {"nope": 1}),))
    for weights in ((1.0,), (1.0, -1.0), (0, 0), (1.0, "x")):
        with pytest.raises(ValueError, match=r"weights must be one number ≥ 0 per member \(2\)"):
            Fusion(members=("ease", "pop"), weights=weights)
    with pytest.raises(ValueError, match="grid must be a non-empty sequence"):
        Fusion(grid=())
    with pytest.raises(ValueError, match="holdout must be one of"):
        Fusion(holdout="oldest")
    with pytest.raises(ValueError, match="max_holdout_users must be an integer ≥ 1"):
        Fusion(max_holdout_users=0)


@pytest.mark.parametrize(("kind", "expected"), [("user-time", "latest"),
                                                ("user-random", "random")])
def test_auto_holdout_follows_the_split_order(kind: str, expected: str) -> None:
    from movierec.pipeline import fit_evaluate
    from movierec.split import make_split

    split = make_split(planted(), kind, test_size=0.2, rng=0)
    record = fit_evaluate(Fusion(members=("pop", "itemknn")), split, seed=0, auto_valid=False)
    assert record.fitted.holdout_used_ == expected


def test_max_holdout_users_samples_the_carve_out() -> None:
    model = Fusion(members=("pop", "itemknn"), holdout_size=0.3, max_holdout_users=7)
    assert model.fit(planted(), rng=0, progress=False).holdout_users_ == 7


def test_seeds_of_one_model_share_a_weight() -> None:
    from movierec.models.fusion import member_groups

    members = (("ease", {}), ("pop", {}), ("ease", {}), ("ease", {"lambda_": 10.0}))
    assert member_groups(members).tolist() == [0, 1, 0, 2]
    split = user_random_split(planted(), test_size=0.3, rng=0)
    mf = ("mf", {"loss": "bpr", "embedding_size": 8, "epochs": 20, "batch_size": 32,
                 "learning_rate": 0.02, "reg": 0.0, "weight_decay": 0.0, "device": "cpu"})
    model = Fusion(members=("pop", mf, mf), holdout_size=0.3).fit(split.train, rng=0,
                                                                   progress=False)
    # The two mf seeds differ but split one weight equally.
    a, b = (m.score(split.train.user_vocab.index) for m in model.members_[1:])
    assert not np.allclose(a, b)
    assert model.weights_[1] == model.weights_[2] > 0
    # One group only: equal weights, no carve-out.
    alone = Fusion(members=("ease", "ease")).fit(split.train, rng=0, progress=False)
    assert alone.weights_.tolist() == [0.5, 0.5] and alone.holdout_ndcg_ == {}


def test_service_answers_known_and_new_users(tmp_path: Path) -> None:
    train = planted()
    model = Fusion(members=(("ease", {"lambda_": 10.0}), "itemknn"), holdout_size=0.3)
    check_serves_known_and_new_users(model.fit(train, rng=0, progress=False), train, tmp_path)


def test_quick_overrides_reach_members_and_generators() -> None:
    # Recommender.with_overrides passes overrides into `nested_param`'s models, filling in the
    # defaults when none are given, and keeps the members' own params.
    from movierec.models import get_class

    params = get_class("fusion").with_overrides({}, {"epochs": 1, "lambda_": 7.0})
    assert [name for name, _ in params["members"]] == [n for n, _ in DEFAULT_MEMBERS]
    assert params["members"][0][1] == {"lambda_": 7.0}
    assert all(p == {"epochs": 1} for _, p in params["members"][1:])
    given = get_class("fusion").with_overrides(
        {"members": [["ease", {"lambda_": 3.0}], "recvae"], "passes": 3}, {"epochs": 2})
    assert given == {"members": [["ease", {"lambda_": 3.0}], ["recvae", {"epochs": 2}]],
                     "passes": 3}
    rerank = get_class("rerank").with_overrides({}, {"lambda_": 9.0})
    assert dict(map(tuple, rerank["generators"]))["ease"] == {"lambda_": 9.0}
    assert get_class("ease").with_overrides({"lambda_": 1.0}, {"lambda_": 2.0}) == {
        "lambda_": 2.0}
