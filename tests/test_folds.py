"""K-fold splits: partitions, leakage, seeds, rebuilding from the record, benchmark folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Dataset
from movierec.errors import SplitError
from movierec.split import check_leakage, kfold_split, make_split


def _data(n_users: int = 30, seed: int = 0) -> Dataset:
    gen = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        items = gen.choice(np.arange(1, 61), size=int(gen.integers(1, 25)), replace=False)
        rows += [(u, int(i), float(gen.integers(1, 6)), int(gen.integers(0, 50))) for i in items]
    return Dataset(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]),
                   name="synthetic")


def _keys(ds: Dataset) -> pd.Series:
    r = ds.ratings
    return r["user_id"].astype(str) + ":" + r["item_id"].astype(str)


@pytest.mark.parametrize("kind", ["random", "user-random"])
def test_folds_partition_every_rating(kind):
    ds = _data()
    folds = [kfold_split(ds, kind, fold=f, folds=4, rng=5) for f in range(1, 5)]
    tested = pd.concat([_keys(s.test) for s in folds])
    assert len(tested) == ds.n_ratings and tested.is_unique  # each rating in one test fold
    for s in folds:
        check_leakage(s)
        assert s.train.n_ratings + s.test.n_ratings == ds.n_ratings
        assert s.params["fold"] in range(1, 5) and s.params["folds"] == 4
    sizes = [s.test.n_ratings for s in folds]
    assert max(sizes) - min(sizes) <= (1 if kind == "random" else ds.n_users)


def test_user_random_spreads_each_user_over_folds():
    ds = _data()
    folds = [kfold_split(ds, "user-random", fold=f, folds=4, rng=5) for f in range(1, 5)]
    per_user = pd.DataFrame({f: s.test.ratings.groupby("user_id").size() for f, s in
                             enumerate(folds)}).fillna(0)
    spread = per_user.max(axis=1) - per_user.min(axis=1)
    assert (spread <= 1).all()  # a user's ratings are dealt round-robin over the folds


def test_single_rating_users_are_counted_unseen():
    frame = pd.DataFrame({"user_id": [1, 1, 1, 1, 2], "item_id": [1, 2, 3, 4, 1],
                          "rating": 4.0, "timestamp": 0})
    ds = Dataset(frame, name="one")
    folds = [kfold_split(ds, "user-random", fold=f, folds=2, rng=0) for f in (1, 2)]
    assert sum(s.report["test_unseen_users"] for s in folds) == 1  # user 2, in one fold


def test_user_time_rolling_folds():
    ds = _data()
    folds = [kfold_split(ds, "user-time", fold=f, folds=3, rng=None) for f in (1, 2, 3)]
    tested = pd.concat([_keys(s.test) for s in folds])
    assert tested.is_unique
    for s in folds:
        check_leakage(s)  # time-aware: no test rating before a training one of the same user
        assert s.params["time_aware"] and s.params["rolling"]
        assert s.train.n_ratings + s.test.n_ratings + s.params["unused_ratings"] == ds.n_ratings
    # training grows with the fold; the last fold leaves nothing out
    assert folds[0].train.n_ratings < folds[1].train.n_ratings < folds[2].train.n_ratings
    assert folds[2].params["unused_ratings"] == 0
    # a user's first rating (the earliest) is never tested
    first = ds.ratings.sort_values(["user_id", "timestamp", "item_id"]).groupby("user_id").head(1)
    assert not set(_keys(ds.with_ratings(first))) & set(tested)


def test_chunks_by_hand():
    # one user, 6 ratings in time order, K = 2: chunk of the j-th = floor(j * 3 / 6) = 0,0,1,1,2,2
    frame = pd.DataFrame({"user_id": 1, "item_id": range(1, 7), "rating": 4.0,
                          "timestamp": range(6)})
    ds = Dataset(frame, name="six")
    s1 = kfold_split(ds, "user-time", fold=1, folds=2)
    s2 = kfold_split(ds, "user-time", fold=2, folds=2)
    assert sorted(s1.train.ratings["item_id"]) == [1, 2]
    assert sorted(s1.test.ratings["item_id"]) == [3, 4]
    assert sorted(s2.train.ratings["item_id"]) == [1, 2, 3, 4]
    assert sorted(s2.test.ratings["item_id"]) == [5, 6]


def test_same_seed_same_folds_and_validation():
    ds = _data()
    a = make_split(ds, "random", rng=3, fold=2, folds=3, valid_size=0.2)
    b = make_split(ds, "random", rng=3, fold=2, folds=3, valid_size=0.2)
    c = make_split(ds, "random", rng=4, fold=2, folds=3)
    assert a.test.ratings.equals(b.test.ratings) and a.valid.ratings.equals(b.valid.ratings)
    assert not a.test.ratings.equals(c.test.ratings)
    assert a.valid is not None and a.valid.n_ratings > 0
    check_leakage(a)
    assert not set(_keys(a.valid)) & set(_keys(a.test))


def test_fold_is_rebuilt_from_its_record():
    from movierec.pipeline import SplitSpec

    ds = _data()
    split = SplitSpec(kind="user-random", seed=9, options={"fold": 3, "folds": 4}).build(ds=ds)
    again = SplitSpec.from_record(split.describe()).build(ds=ds)
    assert again.test.ratings.equals(split.test.ratings)
    assert again.params["fold"] == 3


def test_bad_folds():
    ds = _data()
    with pytest.raises(SplitError, match="fold must be in 1..3"):
        kfold_split(ds, "random", fold=4, folds=3)
    with pytest.raises(SplitError, match="folds must be an integer >= 2"):
        kfold_split(ds, "random", fold=1, folds=1)
    with pytest.raises(SplitError, match="no K-fold version"):
        kfold_split(ds, "time", fold=1, folds=3)
    with pytest.raises(SplitError, match="both fold= and folds="):
        make_split(ds, "random", fold=1)


def test_fold_specs():
    from movierec.benchmark import fold_specs
    from movierec.pipeline import SplitSpec

    kinds = [s.kind for s in fold_specs(SplitSpec(kind="ml100k-5fold", dataset="ml-100k"))]
    assert kinds == ["u1", "u2", "u3", "u4", "u5"]
    specs = fold_specs(SplitSpec(kind="random", dataset="x", seed=1), 3)
    assert [s.options["fold"] for s in specs] == [1, 2, 3] and {s.seed for s in specs} == {1}
    with pytest.raises(ValueError, match="exactly 5 folds"):
        fold_specs(SplitSpec(kind="ml100k-5fold"), 3)
    with pytest.raises(ValueError, match="no K-fold version"):
        fold_specs(SplitSpec(kind="loo"), 3)
    with pytest.raises(ValueError, match="--folds K"):
        fold_specs(SplitSpec(kind="random"), None)


def test_cross_validate_writes_fold_folders(tmp_path, monkeypatch):
    from movierec import benchmark as B
    from movierec.pipeline import SplitSpec

    ds = _data(40)
    monkeypatch.setattr("movierec.data.load", lambda *a, **k: ds)
    specs = B.fold_specs(SplitSpec(kind="user-random", dataset="synthetic", seed=1), 3)
    results = B.cross_validate(["pop", "bias"], specs, out=tmp_path, progress=False, ks=(5,))
    for i in (1, 2, 3):
        folder = tmp_path / f"fold-{i}"
        assert (folder / "results.json").is_file()
        users = pd.read_parquet(folder / "per_user" / "bias-seed42.parquet")
        assert {"user_id", "ndcg@5", "rmse", "mse", "mae", "n_rated"} <= set(users.columns)
        # per-user MSE: the mean of the user's squared errors, so RMSE over rows is recovered
        rmse = np.sqrt((users["mse"] * users["n_rated"]).sum() / users["n_rated"].sum())
        assert rmse == pytest.approx(results[i - 1].runs[1]["metrics"]["rmse"])
    summary = json.loads((tmp_path / "folds.json").read_text())
    entry = summary["table"]["pop"]["ndcg@5"]
    per_fold = [r.table(5).loc["pop", "ndcg@5"] for r in results]
    assert entry["folds"] == pytest.approx(per_fold)
    assert entry["mean"] == pytest.approx(np.mean(per_fold))
    assert entry["low"] < entry["mean"] < entry["high"]
    table = B.fold_table(results, 5)
    assert table.loc["pop", "folds"] == 3


@pytest.mark.slow
def test_ml100k_five_folds_partition(ml_100k, data_dir):
    from movierec.benchmark import fold_specs
    from movierec.pipeline import SplitSpec

    specs = fold_specs(SplitSpec(kind="ml100k-5fold", dataset="ml-100k"))
    splits = [s.build(ds=ml_100k, data_dir=data_dir) for s in specs]
    tested = pd.concat([_keys(s.test) for s in splits])
    assert len(tested) == ml_100k.n_ratings and tested.is_unique


def test_experiment_file_folds():
    from movierec.experiment import ExperimentError, parse_experiment

    text = """
[dataset]
release = "ml-100k"

[split]
kind = "user-random"
folds = 3
seed = 7

[models.pop]
model = "pop"
"""
    exp = parse_experiment(text, source="exp.toml")
    assert [s.name for s in exp.splits] == ["fold-1", "fold-2", "fold-3"]
    assert [s.options for s in exp.splits] == [{"folds": 3, "fold": i} for i in (1, 2, 3)]
    assert exp.multi_split and {s.seed for s in exp.splits} == {7}
    with pytest.raises(ExperimentError, match="exp.toml:7: split.folds: .*no K-fold version"):
        parse_experiment(text.replace("user-random", "loo"), source="exp.toml")
    with pytest.raises(ExperimentError, match=">= 2"):
        parse_experiment(text.replace("folds = 3", "folds = 1"), source="exp.toml")


def test_cross_validate_only_some_folds_then_all(tmp_path, monkeypatch):
    # `only` runs a fold into its own numbered folder and writes no summary; a later call over
    # every fold reuses that fold's runs (a second process sharing one folder).
    from movierec import benchmark as B
    from movierec.pipeline import SplitSpec

    ds = _data(40)
    monkeypatch.setattr("movierec.data.load", lambda *a, **k: ds)
    specs = B.fold_specs(SplitSpec(kind="user-random", dataset="synthetic", seed=1), 3)
    part = B.cross_validate(["bias"], specs, out=tmp_path, progress=False, ks=(5,), only=[3])
    assert len(part) == 1 and (tmp_path / "fold-3" / "results.json").is_file()
    assert not (tmp_path / "fold-1").exists() and not (tmp_path / "folds.json").exists()
    full = B.cross_validate(["bias"], specs, out=tmp_path, progress=False, ks=(5,))
    assert (tmp_path / "folds.json").is_file() and len(full) == 3
    # fold 3 was read back, not refitted: the very record, its fit time included
    assert full[2].runs[0]["metrics"] == part[0].runs[0]["metrics"]
    assert full[2].runs[0]["fit_seconds"] == part[0].runs[0]["fit_seconds"]
    with pytest.raises(ValueError, match="outside 1..3"):
        B.cross_validate(["bias"], specs, out=tmp_path, only=[4])
