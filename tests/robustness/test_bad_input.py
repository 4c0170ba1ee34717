"""Each kind of bad input gets a DataError naming the file and the line; no Dataset comes back.

The bring-your-own reader, each release layout, and each of the 8 releases by name (from a
synthetic copy in a data folder, never downloaded) are fed one defect at a time.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from movierec.data import load
from movierec.data.files import load_ratings_file
from movierec.data.movielens import read_folder
from movierec.data.releases import RELEASES
from movierec.data.synthetic import write_release
from movierec.errors import DataError

HEADER = "userId,movieId,rating,timestamp"
GOOD = ["1,10,4.0,978300760", "1,20,3.5,978300761", "2,10,5.0,978300762"]


def _csv(tmp_path: Path, bad: str | bytes, *, blank_before: bool = False) -> Path:
    """A ratings CSV whose line 3 (4 with a blank line before it) is `bad`."""
    lines = [HEADER.encode(), GOOD[0].encode()]
    if blank_before:
        lines.append(b"")
    lines += [bad.encode() if isinstance(bad, str) else bad, *(g.encode() for g in GOOD[1:])]
    path = tmp_path / "ratings.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize(("bad", "message"), [
    ("1;30;4.0;978300760", r"expected 4 fields separated by ','"),  # wrong separator
    ("1,30,4.0", r"expected 4 fields"),  # a missing column
    ("1,30,4.0,978300760,extra", r"expected 4 fields"),  # an extra column
    (b"1,3\xff0,4.0,978300760", r"not valid utf-8"),  # bytes that are not UTF-8
    (b"1,30,4.0,97830\xff0760", r"timestamp b'97830\\xff0760' is not valid utf-8"),
    ("1,30,4.0\x00,978300760", r"rating '4\.0\\x00' is not a number"),
    ("1,30,nan,978300760", r"rating 'nan' is not a finite number"),
    ("1,30,inf,978300760", r"rating 'inf' is not a finite number"),
    ("1,30,-inf,978300760", r"rating '-inf' is not a finite number"),
    ("1,30,1e400,978300760", r"rating '1e400' is not a finite number"),
    ("1,30,,978300760", r"rating '' is not a number"),
    ("1.5,30,4.0,978300760", r"user_id '1\.5' is not an integer"),
    ("1,abc,4.0,978300760", r"item_id 'abc' is not an integer"),
    ("1,+30,4.0,978300760", r"item_id '\+30' is not an integer"),
    ("1,\x1c30,4.0,978300760", r"item_id '\\x1c30' is not an integer"),  # found by atheris
    ("99999999999,30,4.0,978300760", r"user_id 99999999999 does not fit in int32"),
    ("1,99999999999999999999999,4,978300760", r"item_id '9+' is out of range"),
    ("1,30,4.0,1537799250000", r"timestamp 1537799250000 is after 2100-01-01"),
    ("1,30,4.0,yesterday", r"timestamp 'yesterday' is neither unix seconds nor a date"),
    ("1,30,4.0,9999-12-31", r"timestamp 253402214400 is after 2100-01-01"),
])
def test_bad_line_of_a_ratings_file(tmp_path: Path, bad: str | bytes, message: str) -> None:
    path = _csv(tmp_path, bad)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:3: {message}"):
        load_ratings_file(path)


@pytest.mark.parametrize(("rating", "scale"), [("-2", (0.5, 5.0)), ("7", (1.0, 5.0)),
                                               ("0.25", (0.5, 5.0))])
def test_ratings_outside_the_scale_name_their_line(tmp_path: Path, rating: str,
                                                   scale: tuple[float, float]) -> None:
    path = _csv(tmp_path, f"1,30,{rating},978300760", blank_before=True)
    with pytest.raises(DataError, match=rf"ratings\.csv:4: rating {rating} is outside the rating "
                                        rf"scale {scale[0]:g}\.\.{scale[1]:g}"):
        load_ratings_file(path, rating_scale=scale)


def test_negative_ratings_are_kept_without_a_scale(tmp_path: Path) -> None:
    ds = load_ratings_file(_csv(tmp_path, "1,30,-1,978300760"))  # like/dislike as +1/-1
    assert ds.ratings["rating"].min() == -1.0 and ds.rating_scale == (-1.0, 5.0)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "the file is empty"),
    (b"\n\r\n\n", "the file is empty"),
    (f"{HEADER}\n".encode(), "no ratings"),
    (HEADER.encode(), "no ratings"),
    (b"\x00\x01\x02\x03", "could not detect the separator"),
    (b"1\n2\n", "could not detect the separator"),
])
def test_unusable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "ratings.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: {message}"):
        load_ratings_file(path)


def test_unusable_separator_and_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD[0])
    for sep in ("", "\n", '"'):
        with pytest.raises(DataError, match="unusable separator"):
            load_ratings_file(path, sep=sep)
    with pytest.raises(DataError, match="'user_id' is given for two columns"):
        load_ratings_file(path, columns={"userId": "user_id", "movieId": "user_id"})


def test_line_ends_of_every_kind(tmp_path: Path) -> None:
    for end in (b"\n", b"\r\n", b"\r"):
        path = tmp_path / "r.csv"
        path.write_bytes(end.join([b"1,10,4", b"2,10,5", b"3,x,1"]) + end)
        with pytest.raises(DataError, match=r"r\.csv:3: item_id 'x'"):
            load_ratings_file(path)


@pytest.mark.parametrize(("stamp", "expected"), [
    ("1537799250.7", 1537799250),  # fractions of a second are dropped, not taken as ns
    ("2018-09-24T14:27:30Z", 1537799250),
    ("2018-09-24T16:27:30+02:00", 1537799250),
])
def test_timestamps_are_unix_seconds(tmp_path: Path, stamp: str, expected: int) -> None:
    path = tmp_path / "r.csv"
    path.write_text(f"user,item,rating,time\n1,10,4,{stamp}\n")
    assert load_ratings_file(path).ratings["timestamp"].tolist() == [expected]


def test_parquet_with_unusable_columns(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "r.parquet"
    pd.DataFrame({"userId": [1, 2], "movieId": [3, 4], "rating": ["4", "x"]}).to_parquet(path)
    with pytest.raises(DataError, match=r"r\.parquet: row 0: column rating must be numeric"):
        load_ratings_file(path)
    pd.DataFrame({"userId": [1, 2], "movieId": [3, 4], "rating": [4.0, float("nan")]}
                 ).to_parquet(path)
    with pytest.raises(DataError, match=r"r\.parquet: row 1: rating nan is not a finite number"):
        load_ratings_file(path)


# --- release folders -----------------------------------------------------------------------------
def _release(tmp_path: Path, layout: str) -> Path:
    return write_release(layout, tmp_path / layout, n_users=6, n_items=8, n_ratings=20,  # type: ignore[arg-type]
                         rng=0)


def _set_line(path: Path, lineno: int, text: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[lineno - 1] = text
    path.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize(("layout", "file", "lineno", "text", "message"), [
    ("ml100k", "u.data", 3, b"1,2,3,4", r"expected 4 fields separated by '\\t'"),
    ("ml100k", "u.data", 3, b"1\t2\t6\t978300760", r"rating 6 is outside the rating scale 1\.\.5"),
    ("ml100k", "u.data", 2, b"1\t2\t0\t978300760", r"rating 0 is outside the rating scale"),
    ("ml100k", "u.item", 2, b"99999999999|T|||u" + b"|0" * 19, r"movie id 99999999999 does not"),
    ("ml100k", "u.user", 2, b"2|x|M|writer|1", r"age 'x' is not an integer"),
    ("ml1m", "ratings.dat", 5, b"1::2::3", r"expected 4 fields separated by '::'"),
    ("ml1m", "ratings.dat", 5, b"1::2::nan::978300760", r"rating 'nan' is not a finite"),
    ("ml1m", "movies.dat", 2, b"two::T (1990)::Drama", r"movie id 'two' is not an integer"),
    ("ml1m", "users.dat", 2, b"2::M::25::99::1", r"occupation code 99 is not in 0-20"),
    ("ml1m", "users.dat", 2, b"2::M::25::1::1\xe9", r"not valid utf-8"),
    ("ml10m", "ratings.dat", 4, b"1::2::4.5::99999999999999", r"timestamp 99999999999999 is af"),
    ("ml10m", "tags.dat", 2, b"1::2::tag::1e5", r"timestamp '1e5' is not an integer"),
    ("csv", "ratings.csv", 1, b"movieId,userId,rating,timestamp", r"header 'movieId,userId"),
    ("csv", "ratings.csv", 3, b"1,2,4.5,978300760,9", r"expected 4 fields"),
    ("csv", "movies.csv", 3, b'7,"Unclosed title,Drama', r"expected 3 fields"),
    ("csv", "movies.csv", 2, b"99999999999,T,Drama", r"movieId 99999999999 does not fit"),
    ("csv", "links.csv", 2, b"1,1.5,", r"imdbId '1\.5' is not an integer"),
    ("csv", "tags.csv", 2, b"1,1,tag,", r"timestamp '' is not an integer"),
])
def test_bad_line_of_a_release(tmp_path: Path, layout: str, file: str, lineno: int, text: bytes,
                               message: str) -> None:
    folder = _release(tmp_path, layout)
    _set_line(folder / file, lineno, text)
    scale = (1.0, 5.0) if layout in ("ml100k", "ml1m") else (0.5, 5.0)
    with pytest.raises(DataError, match=rf"{re.escape(str(folder / file))}:{lineno}: {message}"):
        read_folder(folder, rating_scale=scale)


@pytest.mark.parametrize("layout", ["ml100k", "ml1m", "ml10m", "csv"])
def test_empty_ratings_file_of_a_release(tmp_path: Path, layout: str) -> None:
    folder = _release(tmp_path, layout)
    ratings = next(folder / f for f in ("u.data", "ratings.dat", "ratings.csv")
                   if (folder / f).is_file())
    ratings.write_text("userId,movieId,rating,timestamp\n" if layout == "csv" else "")
    with pytest.raises(DataError, match=rf"{re.escape(str(ratings))}: (the file is empty|no "
                                        "ratings)"):
        read_folder(folder)


_LAYOUT_OF = {"ml100k": "ml100k", "ml1m": "ml1m", "csv": "csv"}


@pytest.mark.parametrize("name", list(RELEASES))
def test_every_release_by_name_refuses_a_bad_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  name: str) -> None:
    release = RELEASES[name]
    monkeypatch.delenv("MOVIEREC_DATA_DIR", raising=False)
    folder = tmp_path / "data" / release.folder
    if release.layout == "hetrec":
        from movierec.data.synthetic._hetrec import write_hetrec

        write_hetrec(folder, n_users=6, n_items=8, n_ratings=20, rng=0)
    else:
        layout = "ml10m" if name == "ml-10m" else _LAYOUT_OF[release.layout]
        write_release(layout, folder, n_users=6, n_items=8, n_ratings=20, rng=0)  # type: ignore[arg-type]
    kwargs = {"data_dir": tmp_path / "data", "download": False,
              "cache_dir": tmp_path / "cache"}
    ds = load(name, **kwargs)  # the synthetic copy loads, with the release's scale
    assert ds.n_ratings == 20 and ds.rating_scale == release.rating_scale
    ratings = folder / release.ratings_file
    sep = {"ml100k": b"\t", "ml1m": b"::", "csv": b",", "hetrec": b"\t"}[release.layout]
    _set_line(ratings, 3, sep.join([b"1", b"2", b"9", b"978300760"]))
    with pytest.raises(DataError, match=rf"{re.escape(str(ratings))}:3: rating 9 is outside"):
        load(name, **kwargs)
    assert not (tmp_path / "cache").exists()  # nothing downloaded, nothing written


def test_a_folder_that_is_not_a_release(tmp_path: Path) -> None:
    folder = _release(tmp_path, "ml100k")
    shutil.move(folder / "u.data", folder / "u.data.bak")
    with pytest.raises(DataError, match="not a MovieLens release folder"):
        read_folder(folder)
