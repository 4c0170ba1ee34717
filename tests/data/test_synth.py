"""`write_release_like` and `movierec data synth`: release-size synthetic folders in the csv
layout, and the fast ratings.csv reader that loads them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from movierec.cli import app
from movierec.data import load
from movierec.data.describe import describe
from movierec.data.synthetic import (
    CSV_GENRES,
    MIN_USER_RATINGS,
    RELEASE_SHAPES,
    write_release_like,
)
from movierec.errors import DataError

runner = CliRunner()
SMALL = {"users": 60, "items": 80, "ratings": 3000, "block_users": 16, "chunk_users": 32,
         "progress": False}
FILES = ("ratings.csv", "movies.csv", "tags.csv", "links.csv", "README.txt")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small synthetic release (seed 3) and what write_release_like reported."""
    folder = tmp_path_factory.mktemp("synth") / "release"
    return write_release_like(folder, rng=3, **SMALL)


def _ratings(folder) -> pd.DataFrame:
    return pd.read_csv(folder / "ratings.csv")


def test_counts_are_exact_and_every_user_rates_twenty(small):
    r = _ratings(small.path)
    assert (small.users, small.items, small.ratings) == (60, 80, 3000)
    assert len(r) == 3000 and r["userId"].nunique() == 60 and r["movieId"].nunique() == 80
    assert sorted(r["userId"].unique()) == list(range(1, 61))
    assert r.groupby("userId").size().min() >= MIN_USER_RATINGS
    assert not r.duplicated(["userId", "movieId"]).any()


def test_values_and_order_follow_the_release_format(small):
    text = (small.path / "ratings.csv").read_text()
    assert text.startswith("userId,movieId,rating,timestamp\n") and "\r" not in text
    assert all(line.split(",")[2] in {f"{k / 2:.1f}" for k in range(1, 11)}
               for line in text.splitlines()[1:])
    r = _ratings(small.path)
    key = r["userId"].to_numpy(np.int64) << 32 | r["movieId"].to_numpy(np.int64)
    assert (np.diff(key) > 0).all()  # by userId, then movieId, as GroupLens sorts
    start, end = pd.Timestamp("1995-01-09", tz="UTC"), pd.Timestamp(RELEASE_SHAPES["ml-25m"].end,
                                                                      tz="UTC")
    stamps = pd.to_datetime(r["timestamp"], unit="s", utc=True)
    assert stamps.min() >= start and stamps.max() <= end
    assert r["rating"].nunique() >= 8  # not one constant value


def test_side_tables_cover_the_catalogue(small):
    r = _ratings(small.path)
    movies = pd.read_csv(small.path / "movies.csv")
    links = pd.read_csv(small.path / "links.csv", dtype={"imdbId": str})
    assert len(movies) == small.movies > small.items  # some listed movies have no rating
    assert set(r["movieId"]) <= set(movies["movieId"]) and movies["movieId"].is_unique
    assert movies["movieId"].max() > len(movies)  # sparse ids, as in the releases
    labels = {g for gs in movies["genres"] for g in gs.split("|")}
    assert labels <= set(CSV_GENRES) | {"(no genres listed)"}
    assert movies["title"].str.contains(r"\(\d{4}\)$").mean() > 0.9
    assert list(links["movieId"]) == list(movies["movieId"])
    assert links["imdbId"].str.len().min() >= 7
    tags = pd.read_csv(small.path / "tags.csv")
    pairs = set(zip(r["userId"], r["movieId"], strict=True))
    assert len(tags) and set(zip(tags["userId"], tags["movieId"], strict=True)) <= pairs
    assert "SYNTHETIC" in (small.path / "README.txt").read_text()


def test_popularity_and_activity_are_skewed(tmp_path):
    made = write_release_like(tmp_path / "r", users=400, items=1000, ratings=40_000, rng=0,
                              progress=False)
    r = _ratings(made.path)
    counts = r["movieId"].value_counts().to_numpy()  # sorted, most rated first
    assert counts[:10].sum() / len(r) > 0.08  # the top 1 % of movies: over 8x a uniform share
    assert np.median(counts) < counts.mean() / 2
    activity = r.groupby("userId").size()
    assert activity.max() > 4 * activity.median()


def test_same_seed_same_bytes_other_seed_other_data(small, tmp_path):
    again = write_release_like(tmp_path / "again", rng=3, **SMALL)
    for name in FILES:
        assert (again.path / name).read_bytes() == (small.path / name).read_bytes(), name
    other = write_release_like(tmp_path / "other", rng=4, **SMALL)
    assert (other.path / "ratings.csv").read_bytes() != (small.path / "ratings.csv").read_bytes()


@pytest.mark.parametrize("chunk_users", [1, 16, 48, 1000])
def test_chunk_size_does_not_change_the_output(small, tmp_path, chunk_users):
    made = write_release_like(tmp_path / "r", rng=3, **{**SMALL, "chunk_users": chunk_users})
    for name in ("ratings.csv", "tags.csv"):
        assert (made.path / name).read_bytes() == (small.path / name).read_bytes(), name


def test_loads_as_a_release_with_compact_columns(small):
    ds = load(small.path)
    assert (ds.n_ratings, ds.n_users, ds.n_items) == (3000, 60, 80)
    assert ds.ratings.dtypes.to_dict() == {"user_id": np.int32, "item_id": np.int32,
                                           "rating": np.float32, "timestamp": np.int64}
    assert ds.items is not None and len(ds.items) == small.movies
    assert ds.tags is not None and len(ds.tags) == small.tags and ds.links is not None
    m = ds.matrix()
    assert m.shape == (60, 80) and m.nnz == 3000
    assert m.sum() == pytest.approx(float(_ratings(small.path)["rating"].sum()))
    assert describe(ds)["ratings"] == 3000


def test_named_like_a_release_it_loads_and_passes_verify(tmp_path, caplog):
    made = write_release_like(tmp_path / "ml-25m", rng=1, **SMALL)
    ds = load("ml-25m", data_dir=tmp_path, download=False, verify=True)
    assert ds.n_ratings == made.ratings and ds.rating_scale == (0.5, 5.0)
    assert "not verified" in caplog.text  # no per-file checksums are pinned for ml-25m


@pytest.mark.parametrize(("sizes", "message"), [
    ({"users": 10, "items": 100, "ratings": 150}, "ratings must be in 200..1,000"),
    ({"users": 10, "items": 30, "ratings": 301}, "ratings must be in 200..300"),
    ({"users": 10, "items": 19, "ratings": 190}, "items must be >= 20"),
    ({"users": 0, "items": 30, "ratings": 100}, "users must be a positive integer"),
    ({"users": True, "items": 30, "ratings": 100}, "users must be a positive integer"),
    ({"users": 10, "items": 30, "ratings": 200, "layout": "ml-1m"}, "layout must be one of"),
    ({"users": 10, "items": 30, "ratings": 200, "chunk_users": 0}, "chunk_users must be"),
])
def test_impossible_sizes_are_refused(tmp_path, sizes, message):
    with pytest.raises(ValueError, match=message):
        write_release_like(tmp_path / "r", progress=False, **sizes)
    assert not (tmp_path / "r").exists()


def test_existing_folder_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    write_release_like(out, **SMALL)  # an empty folder is fine
    (out / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not empty"):
        write_release_like(out, **SMALL)
    assert (out / "mine.txt").read_text() == "keep"
    write_release_like(out, overwrite=True, **SMALL)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)


def test_an_interrupted_run_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    import movierec.data.synthetic._release as synthetic

    calls = []

    def failing_block(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real_block(*args, **kwargs)

    real_block = synthetic._block
    monkeypatch.setattr(synthetic, "_block", failing_block)
    with pytest.raises(KeyboardInterrupt):
        write_release_like(tmp_path / "r", **SMALL)
    assert list(tmp_path.iterdir()) == []


# --- the fast ratings.csv reader keeps the line-naming errors -----------------------------------
def _release_with(tmp_path, lines: list[str], name: str = "ml-25m", eol: str = "\n"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "ratings.csv").write_text(eol.join(["userId,movieId,rating,timestamp", *lines])
                                        + eol, newline="")
    return folder


@pytest.mark.parametrize(("bad", "message"), [
    ("2147483648,5,4.0,1000000000", "ratings.csv:3: user_id 2147483648 does not fit in int32"),
    ("2,5,nan,1000000000", "ratings.csv:3: rating"),
    ("2,5,inf,1000000000", "ratings.csv:3: rating 'inf' is not a finite number"),
    ("2,5,,1000000000", "ratings.csv:3: rating"),
    ("2,5,5.00000001,1000000000", "ratings.csv:3: rating 5 is outside the rating scale"),
    ("2,x,4.0,1000000000", "ratings.csv:3: item_id 'x' is not an integer"),
])
def test_bad_ratings_line_is_named(tmp_path, bad, message):
    folder = _release_with(tmp_path, ["1,5,4.0,1000000000", bad])
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        load(folder)


def test_crlf_and_lf_files_load_alike(tmp_path):
    lines = ["1,5,4.0,1000000000", "1,7,0.5,1000000001", "2,5,3.5,1000000002"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    lf = load(_release_with(tmp_path / "a", lines))
    crlf = load(_release_with(tmp_path / "b", lines, eol="\r\n"))
    assert lf.fingerprint == crlf.fingerprint and lf.n_ratings == 3


# --- CLI ----------------------------------------------------------------------------------------
def test_cli_help_explains_every_option():
    result = runner.invoke(app, ["data", "synth", "--help"])
    assert result.exit_code == 0
    for option in ("--out", "--layout", "--users", "--items", "--ratings", "--seed", "--force",
                   "--no-progress"):
        assert option in result.output


def test_cli_writes_a_loadable_release(tmp_path):
    out = tmp_path / "synth"
    args = ["data", "synth", "--out", str(out), "--users", "30", "--items", "40", "--ratings",
            "900", "--seed", "5", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "900 ratings by 30 users on 40 movies" in result.output
    assert load(out).n_ratings == 900
    result = runner.invoke(app, ["data", "describe", str(out)])
    assert result.exit_code == 0 and "900" in result.output
    assert runner.invoke(app, args).exit_code == 2  # exists now
    before = (out / "ratings.csv").read_bytes()
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert (out / "ratings.csv").read_bytes() == before  # same seed, same bytes


@pytest.mark.parametrize(("extra", "message"), [
    (["--users", "10", "--items", "30", "--ratings", "100"], "ratings must be in 200..300"),
    (["--users", "10", "--items", "30", "--ratings", "1000"], "ratings must be in 200..300"),
    (["--users", "-1"], "users must be a positive integer"),
    (["--layout", "ml-100k"], "layout must be one of"),
])
def test_cli_bad_numbers_exit_2_with_one_line(tmp_path, extra, message):
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "r"), *extra])
    assert result.exit_code == 2
    assert "error:" in result.output and message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()


def test_cli_not_a_number_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "r"), "--users", "x"])
    assert result.exit_code == 2 and "--users" in result.output


def test_a_synthetic_folder_named_like_a_release_says_so(tmp_path) -> None:
    folder = tmp_path / "ml-25m"
    write_release_like(folder, users=30, items=40, ratings=700, rng=1, progress=False)
    ds = load(folder)
    assert ds.name == "ml-25m-synthetic"
    (folder / "README.txt").write_text("notes\n")
    assert load(folder).name == "ml-25m"


def test_the_former_module_still_imports_with_a_warning() -> None:
    import movierec.data.synthetic as synthetic

    with pytest.warns(DeprecationWarning, match=r"movierec.data.synth is deprecated; import "
                                                r"write_release_like from movierec.data.synthetic"):
        from movierec.data.synth import write_release_like as old
    assert old is synthetic.write_release_like is write_release_like
    with pytest.warns(DeprecationWarning):
        from movierec.data.synth import RELEASE_SHAPES as shapes
    assert shapes is RELEASE_SHAPES
    import movierec.data.synth as shim

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        shim.nope  # noqa: B018
