"""Small synthetic release folders in the official MovieLens layouts, for tests and examples.

`write_release` writes small folders that imitate the formats' awkward parts — latin-1 text with
a colon in a title (ml-1m), half-star ratings and `::` tags (ml-10m), quoted titles with commas,
`(no genres listed)`, empty tmdbId and CRLF line ends (csv).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from movierec.random import as_generator

SyntheticLayout = Literal["ml100k", "ml1m", "ml10m", "csv"]
LAYOUTS: tuple[str, ...] = ("ml100k", "ml1m", "ml10m", "csv")

GENRES = ("Action", "Comedy", "Drama", "Sci-Fi", "Thriller", "Children's", "Romance")
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
#: Titles with the awkward characters each layout must survive (ids 1-4).
SPECIAL_TITLES = {
    1: "Amélie: Une Histoire Synthétique (2001)",  # colon and a non-ASCII é
    2: "Synthetic Movie, The (1999)",  # a comma: quoted in CSV
    3: "Untitled Synthetic Project",  # no year
    4: "Ratio: 2:1 (1990)",  # several colons
}
_T0 = 946_684_800  # 2000-01-01


def make_ratings(
    n_users: int = 30,
    n_items: int = 40,
    n_ratings: int = 400,
    *,
    rng: int | np.random.Generator | None = None,
    half_stars: bool = False,
) -> pd.DataFrame:
    """Random distinct (user, item) ratings with 1-based ids, sorted by user then time.

    Args:
        n_users: number of user ids (1..n_users); not every id need rate.
        n_items: number of item ids (1..n_items).
        n_ratings: number of ratings, at most n_users * n_items.
        rng: seed or generator.
        half_stars: ratings in 0.5 steps from 0.5 to 5.0 instead of integers 1-5.
    """
    if n_ratings > n_users * n_items:
        raise ValueError(f"n_ratings={n_ratings} exceeds n_users * n_items = {n_users * n_items}")
    gen = as_generator(rng)
    cells = gen.choice(n_users * n_items, size=n_ratings, replace=False)
    ratings = (gen.integers(1, 11, size=n_ratings) / 2.0 if half_stars
               else gen.integers(1, 6, size=n_ratings).astype(np.float64))
    frame = pd.DataFrame({
        "user_id": (cells // n_items + 1).astype(np.int64),
        "item_id": (cells % n_items + 1).astype(np.int64),
        "rating": ratings,
        "timestamp": _T0 + gen.integers(0, 3 * 365 * 86_400, size=n_ratings),
    })
    return frame.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)


def _title(i: int) -> str:
    return SPECIAL_TITLES.get(i, f"Synthetic Film {i} ({1950 + i % 70})")


def _genres(i: int, gen: np.random.Generator) -> list[str]:
    k = int(gen.integers(1, 4))
    return sorted(gen.choice(GENRES, size=k, replace=False).tolist(), key=GENRES.index)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def write_release(
    layout: SyntheticLayout,
    folder: str | os.PathLike[str],
    *,
    n_users: int = 30,
    n_items: int = 40,
    n_ratings: int = 400,
    rng: int | np.random.Generator | None = 0,
) -> Path:
    """Write a synthetic release folder in an official layout; return the folder.

    The ratings are `make_ratings(n_users, n_items, n_ratings, rng=rng, half_stars=...)` (half
    stars for ml10m and csv), so a test can rebuild them with the same seed.

    Args:
        layout: "ml100k" (u.data, u.item, u.user), "ml1m" (ratings/movies/users.dat, latin-1),
            "ml10m" (ratings/movies/tags.dat, no users.dat) or "csv" (ratings, movies, tags,
            links .csv with CRLF).
        folder: folder to create (parents too).
        n_users: number of users.
        n_items: number of items (at least 5, for the special titles).
        n_ratings: number of ratings.
        rng: seed or generator (same seed, same files).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    if n_items < 5:
        raise ValueError(f"n_items must be >= 5, got {n_items}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gen = as_generator(rng)
    ratings = make_ratings(n_users, n_items, n_ratings, rng=gen,
                           half_stars=layout in ("ml10m", "csv"))
    genres = {i: _genres(i, gen) for i in range(1, n_items + 1)}
    writers = {"ml100k": _write_ml100k, "ml1m": _write_ml1m, "ml10m": _write_ml10m,
               "csv": _write_csv}
    writers[layout](folder, ratings, genres, n_users, gen)
    return folder


def _rating_lines(ratings: pd.DataFrame, sep: str) -> str:
    return "".join(f"{u}{sep}{i}{sep}{_fmt(r)}{sep}{t}\n" for u, i, r, t in
                   ratings.itertuples(index=False))


def _write_ml100k(folder: Path, ratings: pd.DataFrame, genres: dict[int, list[str]],
                  n_users: int, gen: np.random.Generator) -> None:
    (folder / "u.data").write_text(_rating_lines(ratings, "\t"), encoding="ascii")
    lines = []
    for i, gs in genres.items():
        flags = ["1" if g in gs else "0" for g in GENRES_100K]
        date = "" if i == 3 else f"01-Jan-{_title(i)[-5:-1]}"
        if i == 3:
            flags = ["1"] + ["0"] * (len(GENRES_100K) - 1)  # only "unknown"
        lines.append("|".join([str(i), _title(i), date, "", f"http://example.org/{i}", *flags]))
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    occupations = ("writer", "engineer", "student", "other")
    users = [f"{u}|{int(gen.integers(15, 70))}|{'MF'[u % 2]}|{occupations[u % 4]}|{10000 + u}"
             for u in range(1, n_users + 1)]
    (folder / "u.user").write_text("\n".join(users) + "\n", encoding="ascii")


def _movies_dat(genres: dict[int, list[str]]) -> str:
    return "".join(f"{i}::{_title(i)}::{'|'.join(gs)}\n" for i, gs in genres.items())


def _write_ml1m(folder: Path, ratings: pd.DataFrame, genres: dict[int, list[str]],
                n_users: int, gen: np.random.Generator) -> None:
    (folder / "ratings.dat").write_text(_rating_lines(ratings, "::"), encoding="ascii")
    (folder / "movies.dat").write_bytes(_movies_dat(genres).encode("latin-1"))
    ages = (1, 18, 25, 35, 45, 50, 56)
    users = [f"{u}::{'MF'[u % 2]}::{ages[u % 7]}::{u % 21}::{55000 + u}"
             for u in range(1, n_users + 1)]
    (folder / "users.dat").write_text("\n".join(users) + "\n", encoding="ascii")


def _write_ml10m(folder: Path, ratings: pd.DataFrame, genres: dict[int, list[str]],
                 n_users: int, gen: np.random.Generator) -> None:
    (folder / "ratings.dat").write_text(_rating_lines(ratings, "::"), encoding="ascii")
    (folder / "movies.dat").write_text(_movies_dat(genres), encoding="utf-8")
    rows = ratings.head(10)
    tags = [f"{u}::{i}::{'note: twist ending' if k == 0 else f'tag{k}'}::{t + 1}"
            for k, (u, i, _, t) in enumerate(rows.itertuples(index=False))]
    (folder / "tags.dat").write_text("\n".join(tags) + "\n", encoding="utf-8")


def _csv_text(header: list[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")  # as GroupLens ships them
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _write_csv(folder: Path, ratings: pd.DataFrame, genres: dict[int, list[str]],
               n_users: int, gen: np.random.Generator) -> None:
    rows = [[u, i, f"{r:.1f}", t] for u, i, r, t in ratings.itertuples(index=False)]
    (folder / "ratings.csv").write_text(
        _csv_text(["userId", "movieId", "rating", "timestamp"], rows), encoding="utf-8",
        newline="")
    movies = [[i, _title(i), "(no genres listed)" if i == 5 else "|".join(gs)]
              for i, gs in genres.items()]
    (folder / "movies.csv").write_text(_csv_text(["movieId", "title", "genres"], movies),
                                       encoding="utf-8", newline="")
    tags = [[u, i, "funny, sort of" if k == 0 else f"tag{k}", t + 1]
            for k, (u, i, _, t) in enumerate(ratings.head(10).itertuples(index=False))]
    (folder / "tags.csv").write_text(_csv_text(["userId", "movieId", "tag", "timestamp"], tags),
                                     encoding="utf-8", newline="")
    links = [[i, f"{100000 + i:07d}", "" if i == 2 else 5000 + i] for i in genres]
    (folder / "links.csv").write_text(_csv_text(["movieId", "imdbId", "tmdbId"], links),
                                      encoding="utf-8", newline="")
