"""IMDb enrichment: title normalization, both joins counted by hand, columns, errors, CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from movierec.cli import app
from movierec.data import load
from movierec.data.imdb import IMDB_DATASETS_URL, enrich, normalize_title, title_keys
from movierec.data.synthetic import write_release
from movierec.data.synthetic._hetrec import write_hetrec
from movierec.data.synthetic._imdb import write_imdb
from movierec.errors import DataError

N = None
# ML-100K-style synthetic titles (see movierec.data.synthetic.SPECIAL_TITLES):
# 1 "Amélie: Une Histoire Synthétique (2001)", 2 "Synthetic Movie, The (1999)",
# 3 "Untitled Synthetic Project" (no year), 4 "Ratio: 2:1 (1990)", i "Synthetic Film i (1950+i)".
BASICS = [
    ("tt0100001", "movie", "Amelie: Une histoire synthetique", "Amélie: Une Histoire Synthétique",
     0, 2001, N, 122, "Comedy"),
    ("tt0100002", "movie", "The Synthetic Movie", 'The "Synthetic" Movie', 0, 1999, N, N,
     "Drama"),
    ("tt0100004", "movie", "Ratio 2-1", "Ratio 2-1", 0, 1990, N, 90, "Drama"),
    ("tt0100044", "video", "Ratio: 2:1", "Ratio: 2:1", 0, 1990, N, 30, "Drama"),
    ("tt0100005", "tvEpisode", "Synthetic Film 5", "Synthetic Film 5", 0, 1955, N, 30, N),
    ("tt0100006", "movie", "Synthetic Film 6", "Synthetic Film 6", 0, 1957, N, 95, N),
    ("tt0100007", "tvMovie", "Synthetic Film 7", "Synthetic Film 7", 0, 1957, N, 70, N),
    ("tt0100008", "short", "Synthetic Film 8", "Synthetic Film 8", 0, 1958, N, 9, N),
]
PRINCIPALS = [
    ("tt0100001", 3, "nm0000003", "director", N, N),
    ("tt0100001", 2, "nm0000001", "actress", N, '["Amélie"]'),
    ("tt0100001", 1, "nm0000002", "actor", N, N),
    ("tt0100007", 1, "nm0000005", "actress", N, N),
]
CREW = [("tt0100001", "nm0000003", "nm0000003,nm0000004"), ("tt0100002", N, N),
        ("tt0100007", "nm0000006", N)]
RATINGS = [("tt0100001", 8.3, 700000), ("tt0100007", 6.1, 1200)]
NAMES = [("nm0000001", "Audrey Synth", 1976, N, "actress", N),
         ("nm0000002", "Mathieu Synth", N, N, "actor", N),
         ("nm0000003", "Jean-Pierre Synth", N, N, "director", "tt0100001"),
         ("nm0000005", "Zoë Synth", N, N, N, N),
         ("nm0000006", "Some Director", N, N, N, N)]


@pytest.fixture
def imdb(tmp_path: Path) -> Path:
    return write_imdb(tmp_path / "imdb", basics=BASICS, principals=PRINCIPALS, crew=CREW,
                      ratings=RATINGS, names=NAMES)


@pytest.fixture
def ml100k(tmp_path: Path) -> Path:
    return write_release("ml100k", tmp_path / "ml-100k", n_users=10, n_items=8, n_ratings=60,
                         rng=0)


def test_normalize_title() -> None:
    assert normalize_title("Shawshank Redemption, The") == "shawshank redemption"
    assert normalize_title("The Shawshank Redemption") == "shawshank redemption"
    assert normalize_title("Amélie") == normalize_title("AMELIE") == "amelie"
    assert normalize_title("Ratio: 2:1") == "ratio 2 1" == normalize_title("Ratio 2-1")
    assert normalize_title("Homme et une femme, Un") == "homme et une femme un"  # not an article
    assert normalize_title("Dr. Strangelove & Co") == "dr strangelove and co"
    assert title_keys("City of Lost Children, The (Cité des enfants perdus, La) (1995)") == (
        "city of lost children", "cite des enfants perdus")
    assert title_keys("Untitled (a.k.a. Other Name) (1990)") == ("untitled", "other name")


def test_title_join_counted_by_hand(ml100k: Path, imdb: Path) -> None:
    ds = load(ml100k)
    e = enrich(ds, imdb)
    r = e.report
    # 1: accents and case; 2: trailing article, originalTitle with a '"';
    # 4: "Ratio 2-1" (movie) and "Ratio: 2:1" (video) both fit 1990: ambiguous, not guessed;
    # 3: no year; 5: only a tvEpisode; 6: year 1957 is not 1956; 7: tvMovie of 1957;
    # 8: a short is not among the title types.
    assert r.method == "title_year" and r.items == 8
    assert r.matched == {1: "tt0100001", 2: "tt0100002", 7: "tt0100007"}
    assert r.ambiguous == {4: ("tt0100004", "tt0100044")}
    assert r.unmatched == (3, 5, 6, 8)
    d = r.to_dict()
    assert (d["matched"], d["ambiguous"], d["unmatched"]) == (3, 1, 4)
    items = e.dataset.items.set_index("item_id")
    assert items.loc[1, "actors"] == ("Mathieu Synth", "Audrey Synth")  # by ordering, actors only
    assert items.loc[1, "actor_ids"] == ("nm0000002", "nm0000001")
    assert items.loc[1, "directors"] == ("Jean-Pierre Synth",)
    assert items.loc[1, "writers"] == ("Jean-Pierre Synth", "nm0000004")  # no name: its id
    assert items.loc[1, "runtime"] == 122 and items.loc[1, "imdb_rating"] == pytest.approx(8.3)
    assert items.loc[1, "imdb_votes"] == 700000 and items.loc[1, "imdb_id"] == 100001
    assert items.loc[7, "actors"] == ("Zoë Synth",) and items.loc[7, "directors"] == (
        "Some Director",)
    assert np.isnan(items.loc[2, "runtime"]) and items.loc[2, "directors"] == ()  # \N
    assert items.loc[4, "actors"] == () and np.isnan(items.loc[4, "imdb_rating"])
    assert "countries" not in items.columns  # IMDb's files have none
    assert e.coverage["imdb_id"] == pytest.approx(3 / 8)
    assert e.coverage["actors"] == pytest.approx(2 / 8)
    assert e.coverage["runtime"] == pytest.approx(2 / 8)
    assert e.dataset.ratings.equals(ds.ratings)
    assert ds.items is not None and "actors" not in ds.items.columns  # ds unchanged


def test_id_join_through_links(tmp_path: Path, imdb: Path) -> None:
    # links.csv gives item i the imdbId 100000 + i
    ds = load(write_release("csv", tmp_path / "ml-latest-small", n_users=10, n_items=10,
                            n_ratings=60, rng=0), imdb_dir=imdb)
    report = ds.items.attrs["imdb_match"]
    # every basics row counts, whatever its type or year: 1, 2, 4, 5, 6, 7, 8 are there
    assert report["method"] == "imdb_id"
    assert (report["matched"], report["ambiguous"], report["unmatched"]) == (7, 0, 3)
    items = ds.items.set_index("item_id")
    assert items.loc[5, "runtime"] == 30 and items.loc[4, "runtime"] == 90
    assert items.loc[3, "actors"] == () and items.loc[1, "actors"] == ("Mathieu Synth",
                                                                      "Audrey Synth")


def test_hetrec_keeps_its_people_and_gains_writers(tmp_path: Path, imdb: Path) -> None:
    folder = write_hetrec(tmp_path / "hetrec2011-movielens-2k-v2", n_items=8, n_ratings=60)
    e = enrich(load(folder), imdb)
    assert e.report.method == "imdb_id" and len(e.report.matched) == 7
    items = e.dataset.items.set_index("item_id")
    assert items.loc[1, "directors"] == ("Directör 1",)  # HetRec's, not IMDb's
    assert items.loc[1, "writers"] == ("Jean-Pierre Synth", "nm0000004")
    assert items.loc[1, "countries"] == ("France",)


def test_missing_file_says_why_it_is_not_downloaded(ml100k: Path, imdb: Path) -> None:
    (imdb / "title.crew.tsv.gz").unlink()
    with pytest.raises(DataError, match=rf"title\.crew\.tsv\.gz: IMDb file not found.*never "
                                        rf"downloads.*{IMDB_DATASETS_URL}"):
        enrich(load(ml100k), imdb)


def _rewrite(path: Path, lineno: int, text: str) -> None:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    lines[lineno - 1] = text
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines))


@pytest.mark.parametrize(("name", "lineno", "text", "message"), [
    ("title.basics.tsv.gz", 4, "tt0100004\tmovie\tRatio 2-1\t0\t1990\t\\N\t90\tDrama",
     r"title\.basics\.tsv\.gz:4: expected 9 tab-separated fields, found 8"),
    ("title.ratings.tsv.gz", 2, "tt0100001\teight\t700000",
     r"title\.ratings\.tsv\.gz:2: averageRating 'eight' of tt0100001 is not a number"),
    ("title.principals.tsv.gz", 1, "tconst\tordering\tnconst",
     r"title\.principals\.tsv\.gz:1: header .* is not IMDb's"),
])
def test_damaged_file_names_file_and_line(ml100k: Path, imdb: Path, name: str, lineno: int,
                                          text: str, message: str) -> None:
    _rewrite(imdb / name, lineno, text)
    with pytest.raises(DataError, match=message):
        enrich(load(ml100k), imdb)


def test_truncated_gzip_is_a_data_error(ml100k: Path, imdb: Path) -> None:
    path = imdb / "name.basics.tsv.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError, match=r"name\.basics\.tsv\.gz"):
        enrich(load(ml100k), imdb)


def test_plain_tsv_files_are_read(tmp_path: Path, ml100k: Path) -> None:
    folder = write_imdb(tmp_path / "plain", basics=BASICS, principals=PRINCIPALS, crew=CREW,
                        ratings=RATINGS, names=NAMES, gz=False)
    assert (folder / "title.basics.tsv").is_file()
    assert len(enrich(load(ml100k), folder).report.matched) == 3


def test_cli_describe_prints_match_report_and_coverage(ml100k: Path, imdb: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["data", "describe", str(ml100k), "--imdb-dir", str(imdb),
                                 "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    match = stats["imdb"]["match"]
    assert (match["matched"], match["ambiguous"], match["unmatched"]) == (3, 1, 4)
    assert match["ambiguous_items"] == [[4, ["tt0100004", "tt0100044"]]]
    assert stats["imdb"]["coverage"]["actors"] == pytest.approx(0.25)
    assert stats["item_features"]["directors"] == pytest.approx(0.25)
    table = runner.invoke(app, ["data", "describe", str(ml100k), "--imdb-dir", str(imdb)])
    assert table.exit_code == 0 and "IMDb match (title_year)" in table.output


def test_imdb_dir_reaches_train_benchmark_tune_and_experiment_files(ml100k: Path, imdb: Path,
                                                                tmp_path: Path) -> None:
    """--imdb-dir on train/benchmark and [dataset] imdb_dir enrich the data that is split."""
    from movierec.experiment import load_data, load_experiment
    from movierec.pipeline import SplitSpec

    split = SplitSpec(dataset=str(ml100k), imdb_dir=imdb, seed=0).build()
    items = split.train.items.set_index("item_id")
    assert list(items.loc[1, "directors"]) == ["Jean-Pierre Synth"]
    assert list(items.loc[1, "actors"]) == ["Mathieu Synth", "Audrey Synth"]
    runner = CliRunner()
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", "--dataset", str(ml100k), "--imdb-dir", str(imdb),
                                 "--model", "pop", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    for command in (["train", "--model", "pop", "--out", str(tmp_path / "m2")],
                    ["benchmark", "--models", "pop"],
                    ["tune", "--model", "bias", "--trials", "1", "--out", str(tmp_path / "t")]):
        # the folder is really read
        result = runner.invoke(app, [*command, "--dataset", str(ml100k), "--imdb-dir",
                                     str(tmp_path / "nowhere"), "--no-progress"])
        assert result.exit_code != 0 and "nowhere" in result.output, result.output
    exp = tmp_path / "e.toml"
    exp.write_text(f'[dataset]\npath = "{ml100k}"\nimdb_dir = "{imdb.name}"\n'
                   '[split]\nkind = "user-random"\n[models.pop]\n')
    ds = load_data(load_experiment(exp))
    assert list(ds.items.set_index("item_id").loc[1, "directors"]) == ["Jean-Pierre Synth"]
    # `movierec run --imdb-dir` overrides the file's folder: a missing one is really read.
    result = runner.invoke(app, ["run", str(exp), "--imdb-dir", str(tmp_path / "nowhere"),
                                 "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code != 0 and "nowhere" in result.output, result.output
    plain = tmp_path / "plain.toml"
    plain.write_text(f'[dataset]\npath = "{ml100k}"\n[split]\nkind = "user-random"\n'
                     '[models.pop]\n')
    result = runner.invoke(app, ["run", str(plain), "--imdb-dir", str(imdb),
                                 "--out", str(tmp_path / "run2"), "--no-progress"])
    assert result.exit_code == 0, result.output
