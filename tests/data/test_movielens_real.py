"""The real ml-100k and ml-latest-small copies (from the `data_dir` fixture): counts and quirks."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.data import load
from movierec.data.movielens import load as ml_load

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def latest_small(data_dir):
    return ml_load("ml-latest-small", data_dir=data_dir, download=False)


def test_ml100k_counts(ml_100k):
    assert (ml_100k.n_ratings, ml_100k.n_users, ml_100k.n_items) == (100_000, 943, 1_682)
    assert ml_100k.name == "ml-100k" and ml_100k.rating_scale == (1.0, 5.0)
    assert set(np.unique(ml_100k.ratings["rating"])) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert not ml_100k.ratings.duplicated(["user_id", "item_id"]).any()
    assert ml_100k.ratings["user_id"].dtype == np.int32


def test_ml100k_items(ml_100k):
    items = ml_100k.items.set_index("item_id")
    assert len(items) == 1_682
    # 19 flags in the file; "unknown" means no genre and becomes an empty tuple.
    assert len(ml_100k.genres) == 18 and "unknown" not in ml_100k.genres
    assert items.loc[267, "genres"] == () and items.loc[1373, "genres"] == ()
    assert items.loc[1, "genres"] == ("Animation", "Children's", "Comedy")
    assert items.loc[1, "title"] == "Toy Story (1995)" and items.loc[1, "year"] == 1995
    assert np.isnan(items.loc[267, "year"])  # the "unknown" movie has no date nor title year
    assert items.loc[543, "title"] == "Misérables, Les (1995)"  # latin-1 decoded


def test_ml100k_users(ml_100k):
    users = ml_100k.users
    assert len(users) == 943 and list(users.columns) == ["user_id", "age", "gender",
                                                         "occupation", "zip"]
    assert set(users["gender"]) == {"M", "F"}
    assert users.set_index("user_id").loc[1, "occupation"] == "technician"
    assert ml_100k.tags is None and ml_100k.links is None


def test_ml_latest_small(latest_small):
    ds = latest_small
    assert (ds.n_ratings, ds.n_users, ds.n_items) == (100_836, 610, 9_724)
    assert len(ds.items) == 9_742 and len(ds.tags) == 3_683 and len(ds.links) == 9_742
    assert ds.rating_scale == (0.5, 5.0)
    items = ds.items.set_index("item_id")
    assert items.loc[29, "title"] == ("City of Lost Children, The "
                                     "(Cité des enfants perdus, La) (1995)")
    assert items.loc[29, "year"] == 1995
    assert (items["genres"].map(len) == 0).sum() > 0  # "(no genres listed)" -> ()
    assert "(no genres listed)" not in ds.genres
    assert ds.links["tmdb_id"].isna().sum() == 8 and ds.links["imdb_id"].notna().all()
    assert str(ds.links["tmdb_id"].dtype) == "Int64"
    assert ds.tags["user_id"].nunique() == 58


def test_verify_real_files(data_dir):
    ds = load("ml-100k", data_dir=data_dir, download=False, verify=True)
    assert ds.n_ratings == 100_000
    ds = load(data_dir / "ml-latest-small", verify=True)
    assert ds.name == "ml-latest-small" and ds.rating_scale == (0.5, 5.0)


def test_data_dir_from_env(data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("MOVIEREC_DATA_DIR", str(data_dir))
    ds = load("ml-100k", download=False, cache_dir=tmp_path)
    assert ds.n_ratings == 100_000
    assert list(tmp_path.iterdir()) == []  # nothing cached or downloaded
