"""Readers of every layout family on synthetic releases, and their error messages."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.data.movielens import OCCUPATIONS_1M, detect_layout, load, read_folder
from movierec.data.synthetic import SPECIAL_TITLES, make_ratings, write_release
from movierec.errors import DataError


@pytest.mark.parametrize("layout", ["ml100k", "ml1m", "ml10m", "csv"])
def test_ratings_round_trip(tmp_path, layout):
    folder = write_release(layout, tmp_path / layout, n_users=20, n_items=30, n_ratings=200,
                           rng=7)
    ds = load(folder)
    want = make_ratings(20, 30, 200, rng=7, half_stars=layout in ("ml10m", "csv"))
    got = ds.ratings
    assert ds.n_ratings == 200
    np.testing.assert_array_equal(got["user_id"], want["user_id"])
    np.testing.assert_array_equal(got["item_id"], want["item_id"])
    np.testing.assert_array_equal(got["rating"], want["rating"].astype(np.float32))
    np.testing.assert_array_equal(got["timestamp"], want["timestamp"])
    items = ds.items.set_index("item_id")
    assert len(items) == 30
    for i, title in SPECIAL_TITLES.items():
        assert items.loc[i, "title"] == title  # colon, é, comma survive every layout
    assert items.loc[1, "year"] == 2001 and np.isnan(items.loc[3, "year"])
    assert all(isinstance(g, tuple) for g in items["genres"])


def test_ml1m_users_and_codes(tmp_path):
    ds = load(write_release("ml1m", tmp_path / "ml-1m", rng=0))
    assert ds.name == "ml-1m" and ds.rating_scale == (1.0, 5.0)  # folder name -> release
    users = ds.users.set_index("user_id")
    assert users.loc[1, "age"] == 18 and users.loc[1, "gender"] == "F"  # age kept as code
    assert users.loc[1, "occupation"] == OCCUPATIONS_1M[1] == "academic/educator"
    assert users.loc[20, "occupation"] == "writer"
    assert ds.tags is None and ds.links is None
    assert "Children's" in ds.genres


def test_ml10m_layout(tmp_path):
    folder = write_release("ml10m", tmp_path / "ml-10M100K", rng=0)
    assert detect_layout(folder) == "ml1m"
    ds = load(folder)
    assert ds.name == "ml-10m" and ds.rating_scale == (0.5, 5.0)
    assert ds.users is None
    assert ds.tags["tag"].iloc[0] == "note: twist ending"  # ':' inside a `::` field
    assert {0.5, 4.5} <= set(ds.ratings["rating"].tolist())


def test_csv_layout(tmp_path):
    ds = load(write_release("csv", tmp_path / "ml-25m", rng=0))
    assert ds.name == "ml-25m"
    assert ds.items.set_index("item_id").loc[5, "genres"] == ()  # (no genres listed)
    assert ds.tags["tag"].iloc[0] == "funny, sort of"
    links = ds.links.set_index("item_id")
    assert links["tmdb_id"].isna().sum() == 1 and links.loc[1, "imdb_id"] == 100001


def test_release_name_found_in_data_dir(tmp_path, monkeypatch):
    write_release("ml10m", tmp_path / "ml-10M100K", rng=0)
    monkeypatch.delenv("MOVIEREC_DATA_DIR", raising=False)
    ds = load("ml-10m", data_dir=tmp_path, download=False, cache_dir=tmp_path / "cache")
    assert ds.name == "ml-10m" and ds.n_ratings == 400
    monkeypatch.setenv("MOVIEREC_DATA_DIR", str(tmp_path))
    assert load("ml-10m", download=False, cache_dir=tmp_path / "cache").n_ratings == 400


def test_non_integer_user_id_names_file_and_line(tmp_path):
    folder = write_release("ml1m", tmp_path / "ml-1m", rng=0)
    path = folder / "ratings.dat"
    lines = path.read_text().splitlines()
    lines[16] = "x17::1::5::978300760"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"ratings\.dat:17: user_id 'x17' is not an integer"):
        load(folder)


def test_wrong_field_count_names_file_and_line(tmp_path):
    folder = write_release("ml100k", tmp_path / "ml-100k", rng=0)
    path = folder / "u.data"
    lines = path.read_text().splitlines()
    lines[4] = "1\t2\t3"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"u\.data:5: expected 4 fields .* found 3"):
        load(folder)


def test_bad_movies_line(tmp_path):
    folder = write_release("ml1m", tmp_path / "ml-1m", rng=0)
    with open(folder / "movies.dat", "ab") as fh:
        fh.write(b"999 no separators\n")
    with pytest.raises(DataError, match=r"movies\.dat:41: expected 'MovieID::Title::Genres'"):
        load(folder)


def test_bad_u_item_line(tmp_path):
    folder = write_release("ml100k", tmp_path / "ml-100k", rng=0)
    with open(folder / "u.item", "ab") as fh:
        fh.write(b"41|Short|01-Jan-1990\n")
    with pytest.raises(DataError, match=r"u\.item:41: expected 24"):
        load(folder)


def test_bad_csv_rating(tmp_path):
    folder = write_release("csv", tmp_path / "ml-20m", rng=0)
    path = folder / "ratings.csv"
    text = path.read_bytes().split(b"\r\n")
    text[3] = b"1,2,four,978300760"
    path.write_bytes(b"\r\n".join(text))
    with pytest.raises(DataError, match=r"ratings\.csv:4: rating 'four' is not a number"):
        load(folder)


def test_not_a_release(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(DataError, match="not a MovieLens release folder"):
        read_folder(tmp_path / "junk")
    with pytest.raises(DataError, match="neither a known release"):
        load("ml-404k")
