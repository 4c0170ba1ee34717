"""The documented policies: duplicated ratings, unknown ids, timestamps in the future.

- a (user, item) pair rated twice keeps its latest rating (by timestamp, the later row on
  ties), with one warning naming the kept and the dropped line;
- ratings of ids missing from the side tables are kept; side-table rows repeating an id keep the
  first row;
- timestamps after now are kept with a warning; from 2100 on they are refused.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movierec.data.dataset import Dataset
from movierec.data.files import load_ratings_file
from movierec.data.movielens import read_folder
from movierec.data.synthetic import write_release
from movierec.errors import DataError

COLS = ["user_id", "item_id", "rating", "timestamp"]


def _expected_latest(rows: list[tuple[int, int, float, int]]) -> dict[tuple[int, int], float]:
    """The rule, written the slow obvious way: a later row wins unless it is older."""
    best: dict[tuple[int, int], tuple[int, float]] = {}
    for u, i, r, t in rows:
        if (u, i) not in best or t >= best[(u, i)][0]:
            best[(u, i)] = (t, r)
    return {k: v[1] for k, v in best.items()}


rows_strategy = st.lists(
    st.tuples(st.integers(1, 4), st.integers(1, 4), st.sampled_from([1.0, 2.5, 4.0, 5.0]),
              st.integers(0, 5)),
    min_size=1, max_size=30)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy)
def test_duplicates_keep_the_latest_rating(tmp_path: Path, rows: list) -> None:
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating,timestamp\n"
                    + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows))
    for ds in (load_ratings_file(path), Dataset(pd.DataFrame(rows, columns=COLS))):
        got = {(int(u), int(i)): float(r) for u, i, r in
               ds.ratings[["user_id", "item_id", "rating"]].itertuples(index=False)}
        assert got == _expected_latest(rows)
        assert not ds.ratings.duplicated(["user_id", "item_id"]).any()
        # matrix() sees one value per cell (it used to add the duplicates up)
        assert float(ds.matrix().max()) <= 5.0


def test_duplicate_warning_names_the_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                           ) -> None:
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating,timestamp\n1,10,4,200\n2,10,3,100\n\n1,10,2,100\n")
    with caplog.at_level(logging.WARNING, logger="movierec.data.dataset"):
        ds = load_ratings_file(path)
    assert ds.ratings.values.tolist() == [[1, 10, 4.0, 200], [2, 10, 3.0, 100]]
    assert "1 (user_id, item_id) pair(s)" in caplog.text
    assert f"kept {path}:2, dropped {path}:5" in caplog.text


def test_release_with_duplicates_and_unknown_ids(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    folder = write_release("ml1m", tmp_path / "ml-1m", n_users=6, n_items=8, n_ratings=20, rng=0)
    with open(folder / "ratings.dat", "a") as fh:
        fh.write("1::999::5::2000000000\n")  # an item that movies.dat does not list
        first = (folder / "ratings.dat").read_text().splitlines()[0].split("::")
        fh.write(f"{first[0]}::{first[1]}::1::{int(first[3]) + 1}\n")  # a later re-rating
    with open(folder / "movies.dat", "a") as fh:
        fh.write("1::Another Title (2001)::Drama\n")  # item 1 listed twice
    with caplog.at_level(logging.WARNING):
        ds = read_folder(folder)
    r = ds.ratings.set_index(["user_id", "item_id"])["rating"]
    assert r.loc[(1, 999)] == 5.0 and 999 not in set(ds.items["item_id"])
    assert r.loc[(int(first[0]), int(first[1]))] == 1.0 and ds.n_ratings == 21
    assert ds.items["item_id"].is_unique
    assert ds.items.set_index("item_id").loc[1, "title"] != "Another Title (2001)"
    assert "the item table has 1 row(s)" in caplog.text


def test_future_timestamps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "r.tsv"
    soon = int(time.time()) + 365 * 86_400
    path.write_text(f"1\t10\t4\t100\n1\t20\t3\t{soon}\n")
    with caplog.at_level(logging.WARNING, logger="movierec.data.files"):
        ds = load_ratings_file(path)
    assert ds.ratings["timestamp"].tolist() == [100, soon]
    assert f"dated in the future, e.g. {path}:2" in caplog.text
    path.write_text("1\t10\t4\t100\n1\t20\t3\t4102444800\n")  # 2100-01-01
    with pytest.raises(DataError, match=r"r\.tsv:2: timestamp 4102444800 is after 2100"):
        load_ratings_file(path)


@pytest.mark.parametrize(("column", "value", "message"), [
    ("user_id", 2**31, "does not fit in int32"),
    ("item_id", 1.5, "is not an integer"),
    ("rating", float("inf"), "is not a finite number"),
    ("timestamp", 1e13, "is after 2100-01-01"),
    ("timestamp", -1e30, "is out of range"),
])
def test_frames_get_the_same_checks_with_row_numbers(column: str, value: object,
                                                     message: str) -> None:
    frame = pd.DataFrame([(1, 10, 4.0, 100), (2, 20, 3.0, 200)], columns=COLS)
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = value
    frame[column] = pd.to_numeric(frame[column])
    with pytest.raises(DataError, match=rf"mine: row 1: {column} .*{message}"):
        Dataset(frame, name="mine")


def test_rating_scale_is_enforced_and_checked() -> None:
    frame = pd.DataFrame([(1, 10, 4.0, 100), (2, 20, 5.5, 200)], columns=COLS)
    with pytest.raises(DataError, match=r"row 1: rating 5\.5 is outside the rating scale 1\.\.5"):
        Dataset(frame, rating_scale=(1, 5))
    for bad in ((5, 1), (1, float("nan")), ("a", "b"), (1,)):
        with pytest.raises(DataError, match="rating_scale must be"):
            Dataset(frame, rating_scale=bad)  # type: ignore[arg-type]
