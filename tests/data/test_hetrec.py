"""HetRec 2011 MovieLens-2k: its layout read from a synthetic folder, the release entry, errors."""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from movierec.data import load
from movierec.data.download import MARKER, extract, fetch
from movierec.data.hetrec import snake
from movierec.data.movielens import detect_layout
from movierec.data.releases import get_release
from movierec.data.synthetic import make_ratings
from movierec.data.synthetic._hetrec import HETREC_TITLES, write_hetrec
from movierec.errors import DataError

FOLDER = "hetrec2011-movielens-2k-v2"


@pytest.fixture
def hetrec(tmp_path: Path) -> Path:
    return write_hetrec(tmp_path / FOLDER, n_users=20, n_items=30, n_ratings=200, rng=3)


def _set_line(path: Path, lineno: int, text: str) -> None:
    lines = path.read_bytes().decode("latin-1").split("\n")
    lines[lineno - 1] = text
    path.write_bytes("\n".join(lines).encode("latin-1"))


def test_release_entry() -> None:
    rel = get_release("hetrec-ml-2k")
    assert rel.url() == ("https://files.grouplens.org/datasets/hetrec2011/"
                         "hetrec2011-movielens-2k-v2.zip")
    assert rel.url("http://127.0.0.1:1/m/") == "http://127.0.0.1:1/m/hetrec2011-movielens-2k-v2.zip"
    assert rel.layout == "hetrec" and rel.rating_scale == (0.5, 5.0) and rel.flat
    assert rel.ratings_file == "user_ratedmovies-timestamps.dat"
    assert rel.md5 is None and rel.sha256 is None and not rel.published_md5
    assert "Cantador" in rel.citation and "Harper" in rel.citation


def test_ratings_round_trip_in_seconds(hetrec: Path) -> None:
    assert detect_layout(hetrec) == "hetrec"
    ds = load(hetrec)
    # the folder names the release; its README.txt says it is synthetic
    assert ds.name == "hetrec-ml-2k-synthetic"
    want = make_ratings(20, 30, 200, rng=np.random.default_rng(3), half_stars=True)
    np.testing.assert_array_equal(ds.ratings["user_id"], want["user_id"])
    np.testing.assert_array_equal(ds.ratings["rating"], want["rating"].astype(np.float32))
    # the file holds milliseconds (the README's example: 1162160236000)
    np.testing.assert_array_equal(ds.ratings["timestamp"], want["timestamp"])
    assert ds.rating_scale == (0.5, 5.0)


def test_items_people_and_scores(hetrec: Path) -> None:
    raw = (hetrec / "movies.dat").read_bytes()
    assert "Amélie".encode("latin-1") in raw and "Amélie".encode() not in raw  # latin-1 bytes
    items = load(hetrec).items.set_index("item_id")
    for i, title in HETREC_TITLES.items():
        assert items.loc[i, "title"] == title  # é decoded; the '"' kept (no quoting)
    assert items.loc[1, "year"] == 1951 and items.loc[1, "imdb_id"] == 100001
    assert items.loc[1, "genres"] == ("Action", "Comedy")
    assert items.loc[1, "directors"] == ("Directör 1",) and items.loc[1, "director_ids"] == (
        "dir_1",)
    # written in ranking order 3, 1, 2: read in ranking order
    assert items.loc[5, "actors"] == ("Actor 5-1", "Actor 5-2", "Actor 5-3")
    assert items.loc[5, "actor_ids"] == ("act_5_1", "act_5_2", "act_5_3")
    assert items.loc[1, "countries"] == ("France",)
    assert items.loc[1, "locations"] == ("France/Île-de-France/Paris",)
    assert items.loc[2, "rt_all_critics_num_reviews"] == 122
    assert items.loc[4, "rt_audience_num_ratings"] == 4000
    assert items.loc[3, "directors"] == () and items.loc[3, "countries"] == ()
    assert np.isnan(items.loc[3, "rt_audience_score"])  # \N
    assert snake("rtTopCriticsNumFresh") == "rt_top_critics_num_fresh"


def test_tags_from_tag_ids(hetrec: Path) -> None:
    tags = load(hetrec).tags
    assert tags["tag"].tolist()[:3] == ["funny", "café", "twist ending"]
    assert len(tags) == 8 and tags["timestamp"].max() < 4_102_444_800


def test_found_by_name_offline(tmp_path: Path, hetrec: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOVIEREC_DATA_DIR", raising=False)
    kwargs = {"download": False, "cache_dir": tmp_path / "cache"}
    ds = load("hetrec-ml-2k", data_dir=tmp_path, **kwargs)
    assert ds.n_ratings == 200
    monkeypatch.setenv("MOVIEREC_DATA_DIR", str(tmp_path))
    assert load("hetrec-ml-2k", **kwargs).n_ratings == 200
    monkeypatch.delenv("MOVIEREC_DATA_DIR")
    with pytest.raises(DataError, match="hetrec-ml-2k not found.*hetrec2011-movielens-2k-v2"):
        load("hetrec-ml-2k", data_dir=tmp_path / "elsewhere", **kwargs)
    assert not (tmp_path / "cache").exists()


def _flat_zip(folder: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f.name)  # no folder inside, as the HetRec archive


def test_flat_archive_downloaded_unverified_with_a_warning(tmp_path, hetrec, http_server,
                                                           caplog) -> None:
    _flat_zip(hetrec, http_server.root / "hetrec2011-movielens-2k-v2.zip")
    with caplog.at_level(logging.WARNING, logger="movierec.data.download"):
        folder = fetch("hetrec-ml-2k", tmp_path / "cache", base_url=http_server.base_url,
                       progress=False)
    assert folder == tmp_path / "cache" / FOLDER and (folder / MARKER).is_file()
    assert (folder / "movies.dat").is_file()
    assert http_server.requests == ["/hetrec2011-movielens-2k-v2.zip"]  # no .md5 asked for
    assert re.search(r"unverified \(its sha256 is [0-9a-f]{64}\)", caplog.text)
    ds = load("hetrec-ml-2k", cache_dir=tmp_path / "cache", data_dir=tmp_path / "none")
    assert ds.n_ratings == 200 and http_server.requests == ["/hetrec2011-movielens-2k-v2.zip"]


def test_flat_extract_also_takes_an_archive_with_its_folder(tmp_path, hetrec) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(hetrec.iterdir()):
            zf.write(f, f"{FOLDER}/{f.name}")
    out = extract(archive, tmp_path / "x", FOLDER, flat=True)
    assert (out / "movies.dat").is_file() and not (out / FOLDER).exists()


@pytest.mark.parametrize(("name", "lineno", "text", "message"), [
    ("movie_actors.dat", 5, "2\tact_2_1\tActor 2-1",
     r"movie_actors\.dat:5: expected 4 tab-separated fields, found 3"),
    ("movie_actors.dat", 3, "1\tact_1_1\tActor 1-1\tfirst",
     r"movie_actors\.dat:3: ranking 'first' is not an integer"),
    ("movies.dat", 4, "3\tRatio\t0100003\tx\turl\t19x0" + "\t\\N" * 15,
     r"movies\.dat:4: year '19x0' is not an integer"),
    ("movies.dat", 2, "1\tA\t0100001\tx\turl\t1990\trt\tgood" + "\t1" * 13,
     r"movies\.dat:2: rtAllCriticsRating 'good' is not a number"),
    ("user_ratedmovies-timestamps.dat", 3, "1\t2\t9\t978300760000",
     r"user_ratedmovies-timestamps\.dat:3: rating 9 is outside"),
    ("user_ratedmovies-timestamps.dat", 1, "userID,movieID,rating,timestamp",
     r"user_ratedmovies-timestamps\.dat:1: header .* is not the README's"),
    ("movie_genres.dat", 1, "movie\tgenre", r"movie_genres\.dat:1: header"),
])
def test_damaged_file_names_file_and_line(hetrec: Path, name: str, lineno: int, text: str,
                                          message: str) -> None:
    _set_line(hetrec / name, lineno, text)
    with pytest.raises(DataError, match=message):
        load(hetrec)
