r"""Synthetic files in the layout of IMDb's non-commercial TSVs, for tests and the benchmark.

`write_imdb` writes the five files from rows a test spells out; `write_imdb_like` writes files of
IMDb's full size (title.basics about 11M rows) with random content around a few given titles.
Both write the official layout: gzipped, tab-separated, a header line, no quoting and `\N` for a
missing value. Everything is generated: no IMDb content is copied.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from movierec.random import as_generator

HEADERS = {
    "title.basics.tsv.gz": ("tconst", "titleType", "primaryTitle", "originalTitle", "isAdult",
                            "startYear", "endYear", "runtimeMinutes", "genres"),
    "title.principals.tsv.gz": ("tconst", "ordering", "nconst", "category", "job", "characters"),
    "title.crew.tsv.gz": ("tconst", "directors", "writers"),
    "title.ratings.tsv.gz": ("tconst", "averageRating", "numVotes"),
    "name.basics.tsv.gz": ("nconst", "primaryName", "birthYear", "deathYear",
                           "primaryProfession", "knownForTitles"),
}
Row = Sequence[object]


def _field(v: object) -> str:
    return "\\N" if v is None else str(v)


def _write_lines(path: Path, header: Sequence[str], lines: Iterable[str], gz: bool) -> None:
    fh: IO[str] = (gzip.open(path, "wt", encoding="utf-8", newline="\n", compresslevel=1)
                   if gz else open(path, "w", encoding="utf-8", newline="\n"))
    with fh:
        fh.write("\t".join(header) + "\n")
        for line in lines:
            fh.write(line)


def write_imdb(
    folder: str | os.PathLike[str],
    *,
    basics: Sequence[Row],
    principals: Sequence[Row] = (),
    crew: Sequence[Row] = (),
    ratings: Sequence[Row] = (),
    names: Sequence[Row] = (),
    gz: bool = True,
) -> Path:
    r"""Write the five IMDb files from explicit rows; None becomes `\N`.

    Rows hold the fields of each file's header (see `HEADERS`), e.g. a title.basics row
    ("tt0000001", "movie", "Title", "Title", 0, 1995, None, 90, "Drama").

    Args:
        folder: folder to create.
        basics: rows of title.basics.
        principals: rows of title.principals.
        crew: rows of title.crew.
        ratings: rows of title.ratings.
        names: rows of name.basics.
        gz: gzip the files (as IMDb ships them); else plain `.tsv`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for (name, header), rows in zip(HEADERS.items(), (basics, principals, crew, ratings, names),
                                    strict=True):
        for row in rows:
            if len(row) != len(header):
                raise ValueError(f"{name}: a row needs {len(header)} fields, got {row!r}")
        path = folder / (name if gz else name.removesuffix(".gz"))
        _write_lines(path, header, ("\t".join(_field(v) for v in row) + "\n" for row in rows),
                     gz)
    return folder


def write_imdb_like(
    folder: str | os.PathLike[str],
    *,
    n_titles: int = 11_000_000,
    n_principals: int = 90_000_000,
    n_names: int = 14_000_000,
    n_rated: int = 1_500_000,
    keep: Sequence[int] = (),
    rng: int | np.random.Generator | None = 0,
    chunk: int = 1_000_000,
) -> Path:
    """Write random IMDb files of the given sizes; titles `keep` (IMDb ids) are among them.

    Title ids run from 1 to n_titles (plus those of `keep` above that); 8 % are movies, the
    rest tvEpisode/short/video. Principals are spread evenly over the titles, orderings 1, 2, ...
    per title; name ids run from 1 to n_names.

    Args:
        folder: folder to create.
        n_titles: rows of title.basics and title.crew (IMDb 2025: about 11.5M).
        n_principals: rows of title.principals (IMDb 2025: about 90M).
        n_names: rows of name.basics (IMDb 2025: about 14.5M).
        n_rated: rows of title.ratings (IMDb 2025: about 1.5M).
        keep: IMDb ids (ints) that must be titles of type movie.
        rng: seed or generator.
        chunk: rows generated at a time.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gen = as_generator(rng)
    extra = np.array(sorted({int(k) for k in keep if int(k) > n_titles}), dtype=np.int64)
    ids = np.concatenate([np.arange(1, n_titles + 1, dtype=np.int64), extra])
    must = np.zeros(len(ids), dtype=bool)
    must[np.searchsorted(ids, np.array(sorted({int(k) for k in keep}), dtype=np.int64))] = True
    types = np.array(["movie", "tvEpisode", "short", "video", "tvSeries"])
    _write_lines(folder / "title.basics.tsv.gz", HEADERS["title.basics.tsv.gz"],
                 _basics_lines(ids, must, types, gen, chunk), gz=True)
    _write_lines(folder / "title.crew.tsv.gz", HEADERS["title.crew.tsv.gz"],
                 _crew_lines(ids, n_names, gen, chunk), gz=True)
    rated = np.sort(np.concatenate([ids[must], gen.choice(ids, size=min(n_rated, len(ids)),
                                                          replace=False)]))
    rated = np.unique(rated)
    _write_lines(folder / "title.ratings.tsv.gz", HEADERS["title.ratings.tsv.gz"],
                 (f"tt{t:07d}\t{r / 10:.1f}\t{v}\n" for t, r, v in zip(
                     rated.tolist(), gen.integers(10, 100, len(rated)).tolist(),
                     gen.integers(5, 100_000, len(rated)).tolist(), strict=True)), gz=True)
    _write_lines(folder / "title.principals.tsv.gz", HEADERS["title.principals.tsv.gz"],
                 _principal_lines(ids, n_principals, n_names, gen, chunk), gz=True)
    _write_lines(folder / "name.basics.tsv.gz", HEADERS["name.basics.tsv.gz"],
                 (f"nm{n:07d}\tPerson {n}\t19{n % 100:02d}\t\\N\tactor\ttt0000001\n"
                  for n in range(1, n_names + 1)), gz=True)
    return folder


def _basics_lines(ids: np.ndarray, must: np.ndarray, types: np.ndarray,
                  gen: np.random.Generator, chunk: int) -> Iterable[str]:
    for lo in range(0, len(ids), chunk):
        part = ids[lo:lo + chunk]
        kind = types[np.where(gen.random(len(part)) < 0.08, 0, gen.integers(1, 5, len(part)))]
        kind[must[lo:lo + chunk]] = "movie"
        years = gen.integers(1900, 2026, len(part))
        runtime = gen.integers(1, 200, len(part))
        yield "".join(f"tt{t:07d}\t{k}\tTitle {t}\tTitle {t}\t0\t{y}\t\\N\t{r}\tDrama\n"
                      for t, k, y, r in zip(part.tolist(), kind.tolist(), years.tolist(),
                                            runtime.tolist(), strict=True))


def _crew_lines(ids: np.ndarray, n_names: int, gen: np.random.Generator, chunk: int
                ) -> Iterable[str]:
    for lo in range(0, len(ids), chunk):
        part = ids[lo:lo + chunk]
        d = gen.integers(1, n_names + 1, len(part)).tolist()
        w = gen.integers(1, n_names + 1, len(part)).tolist()
        yield "".join(f"tt{t:07d}\tnm{a:07d}\tnm{b:07d},nm{a:07d}\n"
                      for t, a, b in zip(part.tolist(), d, w, strict=True))


def _principal_lines(ids: np.ndarray, n_principals: int, n_names: int,
                     gen: np.random.Generator, chunk: int) -> Iterable[str]:
    # Row r belongs to title ids[r * len(ids) // n_principals]: sorted by title like IMDb's file.
    cats = np.array(["actor", "actress", "director", "writer", "producer", "self"])
    prev, order = -1, 0
    for lo in range(0, n_principals, chunk):
        rows = np.arange(lo, min(lo + chunk, n_principals), dtype=np.int64)
        titles = ids[rows * len(ids) // n_principals].tolist()
        people = gen.integers(1, n_names + 1, len(rows)).tolist()
        kinds = cats[gen.integers(0, len(cats), len(rows))].tolist()
        out = []
        for t, p, c in zip(titles, people, kinds, strict=True):
            order = order + 1 if t == prev else 1
            prev = t
            out.append(f"tt{t:07d}\t{order}\tnm{p:07d}\t{c}\t\\N\t\\N\n")
        yield "".join(out)
