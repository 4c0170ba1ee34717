r"""A small synthetic folder in HetRec 2011's MovieLens-2k layout, for tests and examples.

Every file the reader takes, with its header line, tab-separated and latin-1 encoded; a non-ASCII
title ("Amélie"), a title with a `"`, `\N` for missing Rotten Tomatoes figures, actors listed out
of ranking order, half-star ratings and timestamps in milliseconds, as the release has them.
Everything is generated: no HetRec content is copied.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data.synthetic._small import make_ratings
from movierec.random import as_generator

#: Titles with awkward characters (ids 1-3); HetRec titles carry no "(YYYY)".
HETREC_TITLES = {1: "Amélie synthétique", 2: 'The "Quoted" Synthetic Film', 3: "Ratio: 2:1"}
#: imdbID of item i (7 digits, zero-padded as in the release).
HETREC_IMDB = "{:07d}"
_COUNTRIES = ("USA", "France", "UK", "Japan")


def hetrec_title(i: int) -> str:
    """Title of synthetic item `i`."""
    return HETREC_TITLES.get(i, f"Synthetic Film {i}")


def hetrec_year(i: int) -> int:
    """Year of synthetic item `i`."""
    return 1950 + i % 60


def _write(path: Path, header: str, lines: list[str]) -> None:
    path.write_bytes(("\n".join([header, *lines]) + "\n").encode("latin-1"))


def write_hetrec(
    folder: str | os.PathLike[str],
    *,
    n_users: int = 20,
    n_items: int = 30,
    n_ratings: int = 200,
    rng: int | np.random.Generator | None = 0,
) -> Path:
    r"""Write a synthetic HetRec 2011 MovieLens-2k folder; return it.

    The ratings are `make_ratings(n_users, n_items, n_ratings, rng=rng, half_stars=True)` with
    timestamps written in milliseconds. Item i has imdbID `i + 100000` (zero-padded), director
    `dir_{i % 5}`, actors `act_{i}_{r}` with ranking r = 1..3 written in the order 3, 1, 2;
    item 3 has no director, actor, country or Rotten Tomatoes figure (`\N`).

    Args:
        folder: folder to create (parents too).
        n_users: number of users.
        n_items: number of items (at least 4).
        n_ratings: number of ratings.
        rng: seed or generator (same seed, same files).
    """
    if n_items < 4:
        raise ValueError(f"n_items must be >= 4, got {n_items}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gen = as_generator(rng)
    ratings = make_ratings(n_users, n_items, n_ratings, rng=gen, half_stars=True)
    _write_ratings(folder, ratings)
    items = range(1, n_items + 1)
    rt_na = "\t".join(["\\N"] * 13)
    movies = []
    for i in items:
        rt = rt_na if i == 3 else "\t".join(
            str(v) for v in (7.5, 120 + i, 100, 20, 83, 7.0, 30, 25, 5, 80, 3.5, 1000 * i, 75))
        movies.append(f"{i}\t{hetrec_title(i)}\t{HETREC_IMDB.format(100000 + i)}\t"
                      f"{hetrec_title(i)} (es)\thttp://example.org/{i}.jpg\t{hetrec_year(i)}\t"
                      f"rt_{i}\t{rt}\thttp://example.org/rt{i}.jpg")
    _write(folder / "movies.dat",
           "id\ttitle\timdbID\tspanishTitle\timdbPictureURL\tyear\trtID\trtAllCriticsRating\t"
           "rtAllCriticsNumReviews\trtAllCriticsNumFresh\trtAllCriticsNumRotten\t"
           "rtAllCriticsScore\trtTopCriticsRating\trtTopCriticsNumReviews\trtTopCriticsNumFresh\t"
           "rtTopCriticsNumRotten\trtTopCriticsScore\trtAudienceRating\trtAudienceNumRatings\t"
           "rtAudienceScore\trtPictureURL", movies)
    genres = ("Action", "Comedy", "Drama", "Sci-Fi")
    _write(folder / "movie_genres.dat", "movieID\tgenre",
           [f"{i}\t{g}" for i in items for g in genres[: 1 + i % 3]])
    _write(folder / "movie_directors.dat", "movieID\tdirectorID\tdirectorName",
           [f"{i}\tdir_{i % 5}\tDirectör {i % 5}" for i in items if i != 3])
    _write(folder / "movie_actors.dat", "movieID\tactorID\tactorName\tranking",
           [f"{i}\tact_{i}_{r}\tActor {i}-{r}\t{r}" for i in items if i != 3 for r in (3, 1, 2)])
    _write(folder / "movie_countries.dat", "movieID\tcountry",
           [f"{i}\t{_COUNTRIES[i % 4]}" for i in items if i != 3])
    _write(folder / "movie_locations.dat",
           "movieID\tlocation1\tlocation2\tlocation3\tlocation4",
           ["1\tFrance\tÎle-de-France\tParis", "2\tCanada"])
    tag_rows = ratings.head(8)
    _write(folder / "tags.dat", "id\tvalue", ["1\tfunny", "2\tcafé", "3\ttwist ending"])
    _write(folder / "user_taggedmovies-timestamps.dat", "userID\tmovieID\ttagID\ttimestamp",
           [f"{u}\t{i}\t{1 + k % 3}\t{(t + 1) * 1000}"
            for k, (u, i, _, t) in enumerate(tag_rows.itertuples(index=False))])
    (folder / "README.txt").write_text("SYNTHETIC DATA in the hetrec2011-movielens-2k layout\n",
                                       encoding="ascii")
    return folder


def _write_ratings(folder: Path, ratings: pd.DataFrame) -> None:
    lines = [f"{u}\t{i}\t{r:g}\t{t * 1000}" for u, i, r, t in ratings.itertuples(index=False)]
    _write(folder / "user_ratedmovies-timestamps.dat", "userID\tmovieID\trating\ttimestamp", lines)
