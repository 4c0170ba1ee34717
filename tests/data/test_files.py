"""Bring-your-own rating files: separators, headers, column mapping, parquet, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movierec.data import load, load_file
from movierec.data.files import load_ratings_file, sniff_separator
from movierec.errors import DataError

ROWS = [(1, 10, 4.0, 100), (1, 20, 3.5, 200), (2, 10, 5.0, 300), (3, 30, 1.0, 400)]


def _check(ds, *, timestamps=True):
    r = ds.ratings
    assert r["user_id"].tolist() == [1, 1, 2, 3]
    assert r["item_id"].tolist() == [10, 20, 10, 30]
    assert r["rating"].tolist() == [4.0, 3.5, 5.0, 1.0]
    if timestamps:
        assert r["timestamp"].tolist() == [100, 200, 300, 400]
    assert r["user_id"].dtype == np.int32 and r["rating"].dtype == np.float32


def _write(path, sep, header=None):
    lines = [sep.join(header)] if header else []
    lines += [sep.join(str(v) for v in row) for row in ROWS]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("sep", "suffix"), [("\t", "tsv"), (",", "csv"), ("::", "dat"),
                                             ("|", "txt"), (";", "txt"), (" ", "txt")])
def test_sniffed_separator_without_header(tmp_path, sep, suffix):
    ds = load_ratings_file(_write(tmp_path / f"r.{suffix}", sep))
    _check(ds)
    assert ds.name == "r"


def test_csv_with_movielens_header(tmp_path):
    path = _write(tmp_path / "ratings.csv", ",", ["userId", "movieId", "rating", "timestamp"])
    _check(load_file(path))  # the package-level alias
    _check(load(path))  # a file path given to load() goes here too


def test_header_in_another_order_is_recognized(tmp_path):
    path = tmp_path / "r.csv"
    frame = pd.DataFrame(ROWS, columns=["user", "item", "score", "time"])[
        ["time", "item", "user", "score"]]
    frame.to_csv(path, index=False)
    _check(load_ratings_file(path))


def test_columns_by_name_and_position(tmp_path):
    path = tmp_path / "r.csv"
    frame = pd.DataFrame(ROWS, columns=["who", "what", "stars", "when"])
    frame.insert(0, "junk", "x,y")  # a quoted field with a comma, not used
    frame.to_csv(path, index=False)
    _check(load_ratings_file(path, columns={"who": "user_id", "what": "item_id",
                                            "stars": "rating", "when": "timestamp"}))
    frame.to_csv(tmp_path / "nohdr.csv", index=False, header=False)
    ds = load_ratings_file(tmp_path / "nohdr.csv", header=False,
                           columns={1: "user_id", 2: "item_id", 3: "rating"})
    _check(ds, timestamps=False)
    assert (ds.ratings["timestamp"] == 0).all()


def test_implicit_two_columns_get_rating_one(tmp_path):
    path = tmp_path / "clicks.tsv"
    path.write_text("1\t10\n2\t20\n")
    ds = load_ratings_file(path, rating_scale=(1.0, 1.0))
    assert ds.ratings["rating"].tolist() == [1.0, 1.0] and ds.rating_scale == (1.0, 1.0)


def test_parquet(tmp_path):
    path = tmp_path / "r.parquet"
    pd.DataFrame(ROWS, columns=["userId", "movieId", "rating", "timestamp"]).to_parquet(path)
    _check(load_ratings_file(path, name="mine"))
    assert load_ratings_file(path, name="mine").name == "mine"


def test_date_timestamps(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating,date\n1,10,4,1970-01-01T00:01:40Z\n2,10,5,1970-01-02\n")
    ds = load_ratings_file(path)
    assert ds.ratings["timestamp"].tolist() == [100, 86_400]


def test_errors_name_file_and_line(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_text("1\t10\t4\t100\n2\t20\t5\t200\n3\tabc\t5\t300\n")
    with pytest.raises(DataError, match=r"r\.tsv:3: item_id 'abc' is not an integer"):
        load_ratings_file(path)
    path.write_text("userId,movieId,rating\n1,10,4\n2,20\n")
    with pytest.raises(DataError, match=r"r\.tsv:3: expected 3 fields"):
        load_ratings_file(path, sep=",")
    path.write_text("1,10,4\n2,20,\n")
    with pytest.raises(DataError, match=r"r\.tsv:2: rating '' is not a number"):
        load_ratings_file(path, sep=",")


def test_unusable_inputs(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_ratings_file(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_ratings_file(tmp_path / "empty.csv")
    with pytest.raises(DataError, match="could not detect the separator"):
        sniff_separator(["abc", "defg"])
    (tmp_path / "r.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match="no column 'user'"):
        load_ratings_file(tmp_path / "r.csv", columns={"user": "user_id", "b": "item_id"})
