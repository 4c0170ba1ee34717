r"""Reader of HetRec 2011's MovieLens-2k release (`hetrec-ml-2k`, layout "hetrec").

The release's README (hetrec2011-movielens-readme.txt) describes every file as "one entry per
line ... tab separated": each file starts with a header line naming its fields, fields are never
quoted (titles hold `"` characters as they are), and text is ISO-8859-1 (latin-1). A file that
decodes as UTF-8 is read as UTF-8 (the same bytes for ASCII text), otherwise as latin-1.

Files read (the others — `user_ratedmovies.dat` and `user_taggedmovies.dat`, the same data with
dates split into fields, and `movie_tags.dat`, tag counts per movie — repeat what these hold):

- `user_ratedmovies-timestamps.dat`: userID, movieID, rating (0.5-5 in half stars), timestamp in
  **milliseconds** (converted to unix seconds).
- `movies.dat`: id, title (without a year, e.g. "Toy story"), imdbID ("0114709"), spanishTitle,
  imdbPictureURL, year, rtID, then the Rotten Tomatoes figures rtAllCriticsRating,
  rtAllCriticsNumReviews, rtAllCriticsNumFresh, rtAllCriticsNumRotten, rtAllCriticsScore, the
  same five for rtTopCritics, rtAudienceRating, rtAudienceNumRatings, rtAudienceScore, and
  rtPictureURL. A missing figure (`\N` or empty) is NaN.
- `movie_genres.dat` (movieID, genre), `movie_directors.dat` (movieID, directorID,
  directorName), `movie_actors.dat` (movieID, actorID, actorName, ranking: the order of the
  IMDb cast page), `movie_countries.dat` (movieID, country), `movie_locations.dat` (movieID,
  location1..location4, trailing ones absent), `tags.dat` (id, value) and
  `user_taggedmovies-timestamps.dat` (userID, movieID, tagID, timestamp in milliseconds).

The item table has item_id, title, year, genres like every release, plus imdb_id (int),
spanish_title, directors and director_ids, actors and actor_ids (ordered by ranking), countries,
locations ("Canada/British Columbia/Vancouver"), rt_id and the Rotten Tomatoes figures in snake
case (rt_all_critics_rating, ..., rt_audience_score). A damaged file raises DataError naming the
file and line.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data.files import read_delimited
from movierec.errors import DataError

RATINGS_FILE = "user_ratedmovies-timestamps.dat"
RATINGS_HEADER = ("userID", "movieID", "rating", "timestamp")
MOVIES_HEADER = (
    "id", "title", "imdbID", "spanishTitle", "imdbPictureURL", "year", "rtID",
    "rtAllCriticsRating", "rtAllCriticsNumReviews", "rtAllCriticsNumFresh",
    "rtAllCriticsNumRotten", "rtAllCriticsScore", "rtTopCriticsRating", "rtTopCriticsNumReviews",
    "rtTopCriticsNumFresh", "rtTopCriticsNumRotten", "rtTopCriticsScore", "rtAudienceRating",
    "rtAudienceNumRatings", "rtAudienceScore", "rtPictureURL",
)
#: Header of each side file, as the README lists its fields.
SIDE_HEADERS = {
    "movie_genres.dat": ("movieID", "genre"),
    "movie_directors.dat": ("movieID", "directorID", "directorName"),
    "movie_actors.dat": ("movieID", "actorID", "actorName", "ranking"),
    "movie_countries.dat": ("movieID", "country"),
    "movie_locations.dat": ("movieID", "location1", "location2", "location3", "location4"),
    "tags.dat": ("id", "value"),
    "user_taggedmovies-timestamps.dat": ("userID", "movieID", "tagID", "timestamp"),
}
_RT_FIELDS = MOVIES_HEADER[7:20]
_NULLS = ("", "\\N")
TAB = "\t"


def snake(name: str) -> str:
    """A camelCase name in snake_case ("rtAllCriticsNumReviews" -> "rt_all_critics_num_reviews")."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _decode(path: Path) -> list[str]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return [ln.rstrip("\r") for ln in text.split("\n")]


def _rows(path: Path, header: tuple[str, ...], *, min_fields: int | None = None
          ) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the data lines of a tab-separated HetRec file.

    Raises:
        DataError: the header differs from `header`, or a line has the wrong number of fields.
    """
    lines = _decode(path)
    first = lines[0].lstrip("\ufeff") if lines else ""
    _check_header(path, first, header)
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        ok = (min_fields <= len(fields) <= len(header) if min_fields is not None
              else len(fields) == len(header))
        if not ok:
            want = (f"{min_fields} to {len(header)}" if min_fields is not None
                    else str(len(header)))
            raise DataError(f"{path}:{lineno}: expected {want} tab-separated fields, found "
                            f"{len(fields)}: {line[:120]!r}")
        rows.append((lineno, fields))
    return rows


def _int(value: str, path: Path, lineno: int, field: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise DataError(f"{path}:{lineno}: {field} {value!r} is not an integer") from None
    if not -(2**31) <= number < 2**31:
        raise DataError(f"{path}:{lineno}: {field} {number} does not fit in int32")
    return number


def _float(value: str, path: Path, lineno: int, field: str) -> float:
    if value.strip() in _NULLS:
        return float("nan")
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"{path}:{lineno}: {field} {value!r} is not a number") from None
    if not np.isfinite(number):
        raise DataError(f"{path}:{lineno}: {field} {value!r} is not a finite number")
    return number


def _per_movie(path: Path) -> dict[int, list[tuple[int, list[str]]]]:
    """Lines of a side file grouped by movie id (file order kept)."""
    header = SIDE_HEADERS[path.name]
    out: dict[int, list[tuple[int, list[str]]]] = defaultdict(list)
    if not path.is_file():
        return out
    min_fields = 2 if path.name == "movie_locations.dat" else None
    for lineno, fields in _rows(path, header, min_fields=min_fields):
        out[_int(fields[0], path, lineno, header[0])].append((lineno, fields))
    return out


def read_ratings(path: Path) -> pd.DataFrame:
    """user_ratedmovies-timestamps.dat as user_id, item_id, rating, timestamp (seconds)."""
    _rows_header_only(path, RATINGS_HEADER)
    frame = read_delimited(path, sep="\t", kinds=("int", "int", "float", "int"),
                           names=("user_id", "item_id", "rating", "timestamp"), header=True,
                           encoding="latin-1")
    # The README's example timestamp, 1162160236000, is in milliseconds.
    frame["timestamp"] = frame["timestamp"].to_numpy() // 1000
    return frame


def _rows_header_only(path: Path, header: tuple[str, ...]) -> None:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with open(path, "rb") as fh:
        first = fh.readline().decode("latin-1").rstrip("\r\n").lstrip("\ufeff")
    _check_header(path, first, header)


def _check_header(path: Path, first: str, header: tuple[str, ...]) -> None:
    if tuple(f.strip() for f in first.split("\t")) != header:
        raise DataError(f"{path}:1: header {first[:120]!r} is not the README's "
                        f"{TAB.join(header)!r}")


def _people(path: Path, id_col: int, name_col: int, rank_col: int | None = None
            ) -> dict[int, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Map movie id -> (names, ids), by ranking when `rank_col` is given (ties: file order)."""
    out = {}
    for movie, rows in _per_movie(path).items():
        if rank_col is not None:
            ranked = [(_int(f[rank_col], path, ln, SIDE_HEADERS[path.name][rank_col]), k, f)
                      for k, (ln, f) in enumerate(rows)]
            rows = [(0, f) for _, _, f in sorted(ranked, key=lambda t: (t[0], t[1]))]
        out[movie] = (tuple(f[name_col].strip() for _, f in rows),
                      tuple(f[id_col].strip() for _, f in rows))
    return out


def read_items(folder: Path) -> pd.DataFrame:
    """The item table of a HetRec folder: movies.dat joined to its side files."""
    path = folder / "movies.dat"
    records = []
    for lineno, f in _rows(path, MOVIES_HEADER):
        imdb = f[2].strip()
        year = f[5].strip()
        rec: dict[str, object] = {
            "item_id": _int(f[0], path, lineno, "id"),
            "title": f[1].strip(),
            "year": float("nan") if year in _NULLS else float(_int(year, path, lineno, "year")),
            "imdb_id": pd.NA if imdb in _NULLS else _int(imdb, path, lineno, "imdbID"),
            "spanish_title": f[3].strip(),
            "rt_id": None if f[6].strip() in _NULLS else f[6].strip(),
        }
        for j, name in enumerate(_RT_FIELDS, start=7):
            rec[snake(name)] = _float(f[j], path, lineno, name)
        records.append(rec)
    items = pd.DataFrame.from_records(records, columns=[
        "item_id", "title", "year", "imdb_id", "spanish_title", "rt_id",
        *(snake(n) for n in _RT_FIELDS)])
    items["item_id"] = items["item_id"].astype(np.int32)
    items["year"] = items["year"].astype(np.float64)
    items["imdb_id"] = items["imdb_id"].astype("Int64")
    ids = items["item_id"].tolist()
    genres = _per_movie(folder / "movie_genres.dat")
    directors = _people(folder / "movie_directors.dat", 1, 2)
    actors = _people(folder / "movie_actors.dat", 1, 2, rank_col=3)
    countries = _per_movie(folder / "movie_countries.dat")
    locations = _per_movie(folder / "movie_locations.dat")
    empty: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    columns = {
        "genres": [tuple(f[1].strip() for _, f in genres.get(i, ()) if f[1].strip())
                   for i in ids],
        "directors": [directors.get(i, empty)[0] for i in ids],
        "director_ids": [directors.get(i, empty)[1] for i in ids],
        "actors": [actors.get(i, empty)[0] for i in ids],
        "actor_ids": [actors.get(i, empty)[1] for i in ids],
        "countries": [tuple(f[1].strip() for _, f in countries.get(i, ()) if f[1].strip())
                      for i in ids],
        "locations": [tuple("/".join(p.strip() for p in f[1:] if p.strip())
                            for _, f in locations.get(i, ()) if any(p.strip() for p in f[1:]))
                      for i in ids],
    }
    for name, values in columns.items():
        items[name] = pd.Series(values, dtype=object, index=items.index)
    return items[["item_id", "title", "year", "genres", "imdb_id", "directors", "director_ids",
                  "actors", "actor_ids", "countries", "locations", "spanish_title", "rt_id",
                  *(snake(n) for n in _RT_FIELDS)]]


def read_tags(folder: Path) -> pd.DataFrame | None:
    """user_taggedmovies-timestamps.dat with tag text from tags.dat, timestamps in seconds."""
    path = folder / "user_taggedmovies-timestamps.dat"
    if not path.is_file():
        return None
    names = {}
    tags_path = folder / "tags.dat"
    if tags_path.is_file():
        for lineno, f in _rows(tags_path, SIDE_HEADERS["tags.dat"]):
            names[_int(f[0], tags_path, lineno, "id")] = f[1].strip()
    users, items, tags, stamps = [], [], [], []
    header = SIDE_HEADERS[path.name]
    for lineno, f in _rows(path, header):
        users.append(_int(f[0], path, lineno, "userID"))
        items.append(_int(f[1], path, lineno, "movieID"))
        tag_id = _int(f[2], path, lineno, "tagID")
        if names and tag_id not in names:
            raise DataError(f"{path}:{lineno}: tagID {tag_id} is not in {tags_path.name}")
        tags.append(names.get(tag_id, str(tag_id)))
        try:
            stamp = int(f[3])
        except ValueError:
            raise DataError(f"{path}:{lineno}: timestamp {f[3]!r} is not an integer") from None
        stamps.append(stamp // 1000)
    return pd.DataFrame({"user_id": np.asarray(users, dtype=np.int32),
                         "item_id": np.asarray(items, dtype=np.int32),
                         "tag": pd.Series(tags, dtype="str"),
                         "timestamp": np.asarray(stamps, dtype=np.int64)})


def read_hetrec(folder: Path) -> dict[str, pd.DataFrame | None]:
    """Ratings, items and tags of a HetRec 2011 MovieLens-2k folder."""
    folder = Path(folder)
    items = read_items(folder) if (folder / "movies.dat").is_file() else None
    return {"ratings": read_ratings(folder / RATINGS_FILE), "items": items,
            "tags": read_tags(folder)}
