"""Splits: partition, disjointness, time order, cuts, determinism, sizes, leakage, errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from movierec import split as S
from movierec.data.dataset import Dataset
from movierec.errors import SplitError
from movierec.split import (
    SPLIT_KINDS,
    Split,
    check_leakage,
    leave_one_out,
    make_split,
    predefined_split,
    random_split,
    time_split,
    user_random_split,
    user_time_split,
)
from movierec.split._base import _lex_order

COLS = ["user_id", "item_id", "rating", "timestamp"]
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def datasets(draw: st.DrawFn, min_rows: int = 3, max_rows: int = 60) -> Dataset:
    """Small rating frames with unique (user, item) pairs and few timestamps (so, many ties)."""
    n_users = draw(st.integers(1, 8))
    n_items = draw(st.integers(3, 12))
    pairs = draw(
        st.lists(
            st.tuples(st.integers(1, n_users), st.integers(1, n_items)),
            min_size=min_rows,
            max_size=max_rows,
            unique=True,
        )
    )
    n = len(pairs)
    ratings = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
    stamps = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))
    frame = pd.DataFrame(
        [(u, i, float(r), t) for (u, i), r, t in zip(pairs, ratings, stamps, strict=True)],
        columns=COLS,
    )
    return Dataset(frame, name="hypo")


def synthetic(n_users: int = 50, n_items: int = 80, n: int = 2000, seed: int = 0) -> Dataset:
    """A larger random dataset with unique (user, item) pairs and distinct-ish timestamps."""
    g = np.random.default_rng(seed)
    pairs = g.choice(n_users * n_items, size=n, replace=False)
    frame = pd.DataFrame(
        {
            "user_id": pairs // n_items,
            "item_id": pairs % n_items,
            "rating": g.integers(1, 6, n).astype(float),
            "timestamp": g.integers(0, 10**6, n),
        }
    )
    return Dataset(frame, name="synthetic")


def rows(frame: pd.DataFrame) -> list[tuple]:
    """The rows of a ratings frame as a sorted list: a multiset to compare."""
    return sorted(frame[COLS].itertuples(index=False, name=None))


def parts(split: Split) -> list[pd.DataFrame]:
    out = [split.train.ratings, split.test.ratings]
    return out + ([split.valid.ratings] if split.valid is not None else [])


def split_or_reject(ds: Dataset, kind: str, **kw: object) -> Split:
    """Split, rejecting the example where a global time cut is impossible (one timestamp)."""
    try:
        return make_split(ds, kind, **kw)
    except SplitError as exc:
        if kind == "time" and "share one timestamp" in str(exc):
            assume(False)
        raise


KINDS = ["random", "user-random", "user-time", "time", "loo"]


# --- properties on random small datasets -------------------------------------------------------
@FAST
@given(
    ds=datasets(),
    kind=st.sampled_from(KINDS),
    valid=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**32),
)
def test_parts_partition_the_ratings(ds: Dataset, kind: str, valid: float, seed: int) -> None:
    split = split_or_reject(ds, kind, valid_size=valid, rng=seed)
    assert rows(pd.concat(parts(split))) == rows(ds.ratings)
    keys = [set(zip(p.user_id, p.item_id, p.timestamp, strict=True)) for p in parts(split)]
    assert sum(len(k) for k in keys) == len(set().union(*keys))  # pairwise disjoint
    assert (split.valid is not None) == (valid > 0)
    assert split.name == kind
    check_leakage(split)


@FAST
@given(
    ds=datasets(),
    kind=st.sampled_from(["user-time", "loo"]),
    seed=st.integers(0, 99),
    tie_rng=st.booleans(),
)
def test_per_user_time_order(ds: Dataset, kind: str, seed: int, tie_rng: bool) -> None:
    split = make_split(ds, kind, valid_size=0.3, rng=seed if tie_rng else None)
    assert split.params["time_aware"] is True
    ordered = [split.train.ratings, split.valid.ratings, split.test.ratings]
    for i, earlier in enumerate(ordered):
        last = earlier.groupby("user_id")["timestamp"].max()
        for later in ordered[i + 1 :]:
            first = later.groupby("user_id")["timestamp"].min()
            common = last.index.intersection(first.index)
            assert (first[common] >= last[common]).all()
    # every user keeps at least one training rating; users with one rating are all train
    counts = ds.ratings.groupby("user_id").size()
    assert set(split.train.ratings.user_id) == set(counts.index)
    single = counts.index[counts == 1]
    assert not set(single) & set(split.test.ratings.user_id)


@FAST
@given(ds=datasets(), test_size=st.floats(0.05, 0.95), valid=st.sampled_from([0.0, 0.3]))
def test_global_cut(ds: Dataset, test_size: float, valid: float) -> None:
    try:
        split = time_split(ds, test_size=test_size, valid_size=valid)
    except SplitError as exc:
        assume("share one timestamp" not in str(exc))
        raise
    cut = split.params["cut"]
    assert (split.test.ratings.timestamp >= cut).all()
    assert (split.train.ratings.timestamp < cut).all()
    if valid:
        vcut = split.params["valid_cut"]
        assert (split.valid.ratings.timestamp.between(vcut, cut - 1)).all()
        assert (split.train.ratings.timestamp < vcut).all()
    assert len(split.train.ratings) > 0 and len(split.test.ratings) > 0


@FAST
@given(ds=datasets(), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32))
def test_same_seed_same_split(ds: Dataset, kind: str, seed: int) -> None:
    a = split_or_reject(ds, kind, valid_size=0.3, rng=seed)
    b = make_split(ds, kind, valid_size=0.3, rng=seed)
    for pa, pb in zip(parts(a), parts(b), strict=True):
        pd.testing.assert_frame_equal(pa, pb)
    assert a.params == b.params


@pytest.mark.parametrize("kind", ["random", "user-random"])
def test_different_seeds_differ(kind: str) -> None:
    ds = synthetic()
    tests = [rows(make_split(ds, kind, rng=seed).test.ratings) for seed in range(4)]
    assert len({tuple(t) for t in tests}) == 4


def test_user_time_random_ties_depend_on_seed_and_default_is_item_order() -> None:
    frame = pd.DataFrame({"user_id": [1] * 10, "item_id": range(10), "rating": 3.0, "timestamp": 5})
    ds = Dataset(frame)
    assert list(user_time_split(ds, test_n=3).test.ratings.item_id) == [7, 8, 9]
    picks = {tuple(user_time_split(ds, test_n=3, rng=s).test.ratings.item_id) for s in range(5)}
    assert len(picks) > 1


def test_unseeded_split_records_a_seed_that_reproduces_it() -> None:
    ds = synthetic()
    a = random_split(ds)
    assert isinstance(a.params["seed"], int)
    b = random_split(ds, rng=a.params["seed"])
    pd.testing.assert_frame_equal(a.test.ratings, b.test.ratings)


# --- sizes -------------------------------------------------------------------------------------
@FAST
@given(ds=datasets(), test_size=st.floats(0.01, 0.99), seed=st.integers(0, 99))
def test_random_split_size_is_rounded_half_up(ds: Dataset, test_size: float, seed: int) -> None:
    n = ds.n_ratings
    expected = min(max(math.floor(test_size * n + 0.5), 1), n - 1)
    assert random_split(ds, test_size=test_size, rng=seed).test.n_ratings == expected


@FAST
@given(
    ds=datasets(),
    test_size=st.floats(0.01, 0.99),
    min_train=st.integers(1, 3),
    seed=st.integers(0, 99),
)
def test_user_random_counts_per_user(
    ds: Dataset, test_size: float, min_train: int, seed: int
) -> None:
    split = user_random_split(ds, test_size=test_size, min_train=min_train, rng=seed)
    counts = ds.ratings.groupby("user_id").size()
    got = split.test.ratings.groupby("user_id").size().reindex(counts.index, fill_value=0)
    for user, c in counts.items():
        assert got[user] == min(math.floor(test_size * c + 0.5), max(c - min_train, 0))


def test_sizes_close_to_test_size_on_larger_data() -> None:
    ds = synthetic(n_users=100, n_items=200, n=8000)
    for kind in ["random", "user-random", "user-time", "time"]:
        split = make_split(ds, kind, test_size=0.25, valid_size=0.2, rng=3)
        share = split.test.n_ratings / ds.n_ratings
        assert abs(share - 0.25) < 0.02, kind
        valid_share = split.valid.n_ratings / (ds.n_ratings - split.test.n_ratings)
        assert abs(valid_share - 0.2) < 0.02, kind


@FAST
@given(ds=datasets(), test_n=st.integers(1, 4))
def test_user_time_test_n(ds: Dataset, test_n: int) -> None:
    split = user_time_split(ds, test_n=test_n)
    counts = ds.ratings.groupby("user_id").size()
    got = split.test.ratings.groupby("user_id").size().reindex(counts.index, fill_value=0)
    assert (got == np.minimum(test_n, counts - 1)).all()


@FAST
@given(ds=datasets(), valid=st.booleans())
def test_leave_one_out_one_test_row_per_user(ds: Dataset, valid: bool) -> None:
    split = leave_one_out(ds, valid=valid)
    counts = ds.ratings.groupby("user_id").size()
    test = split.test.ratings.groupby("user_id").size().reindex(counts.index, fill_value=0)
    assert (test == (counts >= 2)).all()
    if valid:
        val = split.valid.ratings.groupby("user_id").size().reindex(counts.index, fill_value=0)
        assert (val == (counts >= 3)).all()
    # the test row is the user's latest
    latest = ds.ratings.groupby("user_id")["timestamp"].max()
    t = split.test.ratings.set_index("user_id")["timestamp"]
    assert (t == latest[t.index]).all()


def test_tiny_by_hand(tiny: Dataset) -> None:
    split = leave_one_out(tiny)
    assert rows(split.test.ratings) == [
        (1, 30, 4.0, 300),
        (2, 40, 2.0, 310),
        (3, 50, 4.0, 320),
        (4, 50, 3.0, 230),
    ]
    cut = time_split(tiny, cut=300)
    assert sorted(cut.test.ratings.item_id) == [30, 40, 50]


# --- time cut options and unseen users -----------------------------------------------------------
def test_time_split_iso_date_cut() -> None:
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 2],
            "item_id": [1, 2, 1, 3],
            "rating": 4.0,
            "timestamp": [0, 86_400, 2 * 86_400, 3 * 86_400],
        }
    )
    split = time_split(Dataset(frame), cut="1970-01-03")
    assert split.params["cut"] == 2 * 86_400
    assert list(split.test.ratings.timestamp) == [2 * 86_400, 3 * 86_400]


@pytest.mark.parametrize("cut", [-5, 10**12, "not a date"])
def test_time_split_bad_cut(tiny: Dataset, cut: object) -> None:
    with pytest.raises(SplitError, match="cut"):
        time_split(tiny, cut=cut)  # type: ignore[arg-type]


def test_unseen_users_and_items_are_reported_not_dropped(tiny: Dataset) -> None:
    late = pd.concat([tiny.ratings, pd.DataFrame([(9, 99, 4.0, 1000)], columns=COLS)])
    split = time_split(tiny.with_ratings(late), cut=320)
    assert (9, 99, 4.0, 1000) in rows(split.test.ratings)
    report = split.report
    assert report["test_unseen_users"] == 1
    assert report["test_unseen_items"] == 1
    assert report["test_rows_with_unseen"] == 1
    assert split.describe()["cut"] == 320


def test_parts_keep_side_tables(tiny: Dataset) -> None:
    items = pd.DataFrame({"item_id": [10, 20, 30, 40, 50], "title": list("abcde")})
    ds = Dataset(tiny.ratings, items=items, name="tiny")
    for kind in KINDS:
        split = make_split(ds, kind, valid_size=0.3, rng=1)
        assert all(
            p is not None and p.items is items and p.name == "tiny"
            for p in (split.train, split.valid, split.test)
        )


# --- leakage -----------------------------------------------------------------------------------
def test_check_leakage_finds_shared_rows(tiny: Dataset) -> None:
    r = tiny.ratings
    leaky = Split(train=tiny, test=tiny.with_ratings(r.iloc[[2]]), name="random")
    with pytest.raises(SplitError, match=r"both train and test.*user 1, item 30"):
        check_leakage(leaky)


def test_check_leakage_allows_re_ratings_at_other_times(tiny: Dataset) -> None:
    again = pd.DataFrame([(1, 30, 2.0, 999)], columns=COLS)
    check_leakage(Split(train=tiny, test=tiny.with_ratings(again), name="random"))


def test_check_leakage_per_user_time(tiny: Dataset) -> None:
    r = tiny.ratings
    early = r.timestamp == r.groupby("user_id")["timestamp"].transform("min")
    leaky = Split(
        train=tiny.with_ratings(r[~early]),
        test=tiny.with_ratings(r[early]),
        name="user-time",
        params={"time_aware": True},
    )
    with pytest.raises(SplitError, match="time leak.*test rating earlier than a train"):
        check_leakage(leaky)
    # the same parts are fine when the split does not claim to be time-aware
    check_leakage(Split(train=leaky.train, test=leaky.test, name="random"))


def test_check_leakage_global_cut(tiny: Dataset) -> None:
    r = tiny.ratings
    early, late = tiny.with_ratings(r[r.timestamp < 200]), tiny.with_ratings(r[r.timestamp >= 200])
    params = {"time_aware": True, "cut": 300}
    with pytest.raises(SplitError, match="test has a rating at 200, before the cut 300"):
        check_leakage(Split(train=early, test=late, name="time", params=params))
    params = {"time_aware": True, "cut": 120}
    with pytest.raises(SplitError, match="train has a rating at 130, at/after the cut 120"):
        check_leakage(Split(train=early, test=late, name="time", params=params))
    check_leakage(Split(train=early, test=late, name="time", params={**params, "cut": 200}))


# --- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["random", "user-random", "user-time", "time"])
@pytest.mark.parametrize("test_size", [0, 1, -0.1, 1.5, float("nan")])
def test_test_size_outside_open_unit_interval(tiny: Dataset, kind: str, test_size: float) -> None:
    with pytest.raises(SplitError, match=r"test_size must be in \(0, 1\)"):
        make_split(tiny, kind, test_size=test_size, rng=0)


@pytest.mark.parametrize("valid_size", [1.0, -0.5])
def test_valid_size_outside_unit_interval(tiny: Dataset, valid_size: float) -> None:
    with pytest.raises(SplitError, match=r"valid_size must be in \[0, 1\)"):
        random_split(tiny, valid_size=valid_size, rng=0)


def test_other_bad_arguments(tiny: Dataset) -> None:
    with pytest.raises(SplitError, match="min_train must be an integer >= 1"):
        user_random_split(tiny, min_train=0)
    with pytest.raises(SplitError, match="test_n must be an integer >= 1"):
        user_time_split(tiny, test_n=0)
    with pytest.raises(SplitError, match="at least 2 ratings"):
        random_split(tiny.with_ratings(tiny.ratings.iloc[:1]))


def test_unknown_kind_lists_the_kinds(tiny: Dataset) -> None:
    with pytest.raises(SplitError, match="unknown split kind 'bogus'.*'user-time'.*'ub'"):
        make_split(tiny, "bogus")
    assert SPLIT_KINDS[:5] == KINDS


def test_make_split_matches_direct_calls(tiny: Dataset) -> None:
    a = make_split(tiny, "user-random", test_size=0.4, min_train=2, rng=5)
    b = user_random_split(tiny, test_size=0.4, min_train=2, rng=5)
    pd.testing.assert_frame_equal(a.test.ratings, b.test.ratings)
    assert make_split(tiny, "loo", valid_size=0.1).valid is not None


# --- sorting helper ----------------------------------------------------------------------------
@FAST
@given(
    st.lists(
        st.tuples(st.integers(-3, 3), st.integers(-(2**62), 2**62), st.integers(0, 2)),
        min_size=1,
        max_size=40,
    )
)
def test_lex_order_matches_lexsort(rows_: list[tuple[int, int, int]]) -> None:
    keys = [np.array(col, dtype=np.int64) for col in zip(*rows_, strict=True)]
    expected = np.lexsort(keys[::-1])  # stable: ties by position, like _lex_order
    np.testing.assert_array_equal(_lex_order(keys), expected)


# --- predefined folds and user files -------------------------------------------------------------
def test_predefined_missing_files_name_the_path(tiny: Dataset, tmp_path: Path) -> None:
    with pytest.raises(SplitError, match=str(tmp_path / "u1.base").replace("\\", "\\\\")):
        predefined_split(tiny, "u1", data_dir=tmp_path)
    with pytest.raises(SplitError, match="needs? .*data_dir|pass data_dir"):
        make_split(tiny, "u2")
    with pytest.raises(SplitError, match="fold must be one of"):
        predefined_split(tiny, "u9", data_dir=tmp_path)


def test_predefined_rejects_other_datasets(tiny: Dataset, tmp_path: Path) -> None:
    r = tiny.ratings
    r.iloc[:8].to_csv(tmp_path / "u1.base", sep="\t", header=False, index=False)
    test = pd.concat([r.iloc[8:], pd.DataFrame([(7, 70, 1.0, 5)], columns=COLS)])
    test.to_csv(tmp_path / "u1.test", sep="\t", header=False, index=False)
    with pytest.raises(SplitError, match="not the ML-100K release.*1 of 12 fold rows"):
        predefined_split(tiny, "u1", data_dir=tmp_path)
    test.iloc[:-1].to_csv(tmp_path / "u1.test", sep="\t", header=False, index=False)
    split = predefined_split(tiny, "u1", data_dir=tmp_path, valid_size=0.25, rng=0)
    assert (split.train.n_ratings, split.valid.n_ratings, split.test.n_ratings) == (6, 2, 3)


@pytest.fixture
def ml100k(request: pytest.FixtureRequest) -> Dataset:
    """The conftest ml_100k dataset; skipped while the MovieLens loader is not available."""
    try:
        return request.getfixturevalue("ml_100k")
    except (ImportError, ModuleNotFoundError) as exc:
        pytest.skip(f"ML-100K loader unavailable: {exc}")


@pytest.mark.slow
def test_predefined_u1_on_ml_100k(ml100k: Dataset, data_dir: Path) -> None:
    split = make_split(ml100k, "u1", data_dir=data_dir / "ml-100k")
    assert (split.train.n_ratings, split.test.n_ratings) == (80_000, 20_000)
    expected = pd.read_csv(data_dir / "ml-100k" / "u1.test", sep="\t", header=None, names=COLS)
    assert rows(split.test.ratings) == rows(expected.astype({"rating": float}))
    assert split.train.items is ml100k.items and split.name == "u1"
    ua = predefined_split(ml100k, "ua", data_dir=data_dir)  # parent folder works too
    assert ua.test.n_ratings == 9_430
    assert (ua.test.ratings.groupby("user_id").size() == 10).all()


def test_files_split_uses_the_file_loader(
    tiny: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    r = tiny.ratings
    frames = {"train.csv": r.iloc[:7], "test.csv": r.iloc[7:9], "valid.csv": r.iloc[9:]}
    calls: list[tuple[str, dict]] = []

    def fake_load(path: object, **kw: object) -> Dataset:
        calls.append((Path(str(path)).name, kw))
        return Dataset(frames[Path(str(path)).name], name="file")

    fake = types.ModuleType("movierec.data.files")
    fake.load_ratings_file = fake_load  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "movierec.data.files", fake)
    items = pd.DataFrame({"item_id": [10, 20], "title": ["a", "b"]})
    base = Dataset(r, items=items, name="tiny")
    split = S.files_split(
        tmp_path / "train.csv", tmp_path / "test.csv", tmp_path / "valid.csv", base=base, sep=","
    )
    assert [c[0] for c in calls] == ["train.csv", "test.csv", "valid.csv"]
    assert all(kw == {"sep": ","} for _, kw in calls)
    assert split.name == "files" and split.train.items is items and split.test.name == "tiny"
    assert rows(pd.concat(parts(split))) == rows(r)
    frames["test.csv"] = r.iloc[5:9]  # overlaps train
    with pytest.raises(SplitError, match="both train and test"):
        S.files_split(tmp_path / "train.csv", tmp_path / "test.csv")


def test_files_split_with_the_real_loader(tiny: Dataset, tmp_path: Path) -> None:
    pytest.importorskip("movierec.data.files")
    r = tiny.ratings
    r.iloc[:8].to_csv(tmp_path / "train.tsv", sep="\t", header=False, index=False)
    r.iloc[8:].to_csv(tmp_path / "test.tsv", sep="\t", header=False, index=False)
    split = S.files_split(tmp_path / "train.tsv", tmp_path / "test.tsv", base=tiny, sep="\t")
    assert rows(split.train.ratings) == rows(r.iloc[:8])
    assert rows(split.test.ratings) == rows(r.iloc[8:])
    assert split.params["test_path"] == str(tmp_path / "test.tsv") and split.valid is None
