"""The film's year comes from the title, not ML-100K's video release date (issue 17)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movierec.data.movielens import GENRES_100K, load
from movierec.errors import DataError

_FLAGS = "|".join(["0"] * (len(GENRES_100K) - 1) + ["1"])  # Western


def _u_item(folder, rows):
    """A u.item in the official layout: id|title|release date|video date|url|19 flags."""
    lines = [f"{i}|{title}|{date}||http://example.org/{i}|{_FLAGS}" for i, title, date in rows]
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))


def _release(tmp_path, rows):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("".join(f"1\t{i}\t4\t881250949\n" for i, _, _ in rows))
    _u_item(folder, rows)
    return folder


def test_ml100k_year_is_the_films_not_the_video_release(tmp_path):
    folder = _release(tmp_path, [
        (1, "Return of the Jedi (1983)", "14-Mar-1997"),
        (2, "Toy Story (1995)", "01-Jan-1995"),
        (3, "No Year In Title", "05-Jul-1990"),  # the date is all there is
        (4, "unknown", ""),
        (5, "Land Before Time III: The Giving (1995) (V)", "01-Jan-1996"),
    ])
    items = load(folder).items.set_index("item_id")
    assert items["year"].tolist()[:3] == [1983.0, 1995.0, 1990.0]
    assert np.isnan(items.loc[4, "year"])
    assert items.loc[5, "year"] == 1995.0  # the "(V)" after the year does not hide it
    assert str(items["release_date"].dtype) == "datetime64[ns]"
    assert items.loc[1, "release_date"] == pd.Timestamp("1997-03-14")
    assert pd.isna(items.loc[4, "release_date"])
    assert items.loc[1, "title"] == "Return of the Jedi (1983)"  # title untouched


def test_year_filters_use_the_films_year(tmp_path):
    folder = _release(tmp_path, [(1, "Return of the Jedi (1983)", "14-Mar-1997"),
                                 (2, "Scream (1996)", "20-Dec-1996")])
    ds = load(folder).filter(max_year=1990)
    assert ds.ratings["item_id"].tolist() == [1]


def test_bad_release_date_names_file_and_line(tmp_path):
    folder = _release(tmp_path, [(1, "A (1990)", "01-Jan-1990"), (2, "B (1991)", "1991/01/01")])
    with pytest.raises(DataError, match=r"u\.item:2: release date '1991/01/01' is not "
                                        r"DD-Mon-YYYY"):
        load(folder)


@pytest.mark.slow
def test_real_ml100k_years(ml_100k):
    items = ml_100k.items.set_index("item_id")
    assert items.loc[181, "title"] == "Return of the Jedi (1983)"
    assert items.loc[181, "year"] == 1983
    assert items.loc[181, "release_date"] == pd.Timestamp("1997-03-14")
    assert items.loc[23, "year"] == 1976  # Taxi Driver, on video in 1996
    dated = items.dropna(subset=["release_date"])
    assert int((dated["year"] != dated["release_date"].dt.year).sum()) == 190
    assert items["year"].isna().sum() == 1  # only "unknown" (item 267) has neither


@pytest.mark.slow
def test_real_ml_latest_small_years(data_dir):
    ds = load("ml-latest-small", data_dir=data_dir, download=False)
    items = ds.items.set_index("item_id")
    assert "release_date" not in items.columns  # the CSV releases have no release date
    assert items.loc[1, "year"] == 1995  # Toy Story (1995)
    assert items.loc[171749, "year"] == 2006  # "Death Note: Desu nôto (2006–2007)"
    assert items["year"].isna().sum() == 12  # titles without a year, e.g. "Babylon 5"
