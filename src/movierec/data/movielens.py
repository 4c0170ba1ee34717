"""Load MovieLens releases by name or folder: one reader per layout family.

Layout families (see `movierec.data.releases`):

- "ml100k": `u.data` (tab-separated ratings), `u.item` (`|`-separated, latin-1, 19 genre flags),
  `u.user`. The genre flag "unknown" is not a genre: an item whose only flag is "unknown" gets an
  empty genres tuple, as "(no genres listed)" does in the CSV releases, so that genre vocabularies
  agree across releases.
- "ml1m": `::`-separated `.dat` files of ml-1m and ml-10m (`ratings.dat`, `movies.dat`, `users.dat`
  for ml-1m, `tags.dat` for ml-10m). Text is UTF-8 where it decodes as UTF-8, else latin-1.
- "csv": `ratings.csv`, `movies.csv`, `tags.csv`, `links.csv` of ml-20m and later (UTF-8, quoted
  fields, CRLF line ends).
- "hetrec": HetRec 2011's MovieLens-2k release, tab-separated `.dat` files with a header line
  (see `movierec.data.hetrec`); its titles have no "(YYYY)": the year is its own field.

`load(..., imdb_dir=DIR)` then adds IMDb's people, runtime and ratings from the user's copy of
IMDb's files (see `movierec.data.imdb`).

Titles are kept exactly as in the file (with their "(1995)"). `year` is the film's year, taken
from the title's "(YYYY)" in every layout (the last parenthesized year, so "(1995) (V)" and
"(2006–2007)" give 1995 and 2006). ML-100K also has a video release date, which is not the
film's year (Return of the Jedi (1983) came out on video in 1997; 190 of its 1,682 movies
differ): it is kept as its own column `release_date` (datetime64, NaT when blank), and gives the
year only to a title without one. ML-1M, ML-10M and the CSV releases have no release date.

A malformed file raises `DataError` naming the file and line (wrong separator or field count,
ids that are not int32 integers, ratings that are not finite or outside the release's rating
scale, timestamps after 2100, bytes that are not UTF-8 where UTF-8 is required, a ratings.csv
header other than userId,movieId,rating,timestamp); an empty ratings file is an error too.
Duplicated ratings and ids unknown to the side tables follow `movierec.data.dataset`'s policy.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data.dataset import Dataset
from movierec.data.download import cached_folder, default_cache_dir, fetch, verify_folder
from movierec.data.files import (
    FieldKind,
    iter_lines,
    load_ratings_file,
    read_delimited,
    row_locator,
    warn_future,
)
from movierec.data.releases import RATINGS_FILE, RELEASES, Release, release_for_folder
from movierec.errors import DataError

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "MOVIEREC_DATA_DIR"

GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
#: Occupation codes of users.dat, as listed in the ML-1M README.
OCCUPATIONS_1M = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)
NO_GENRES = "(no genres listed)"
# The last "(YYYY...)" group of a title, before any "(V)" or "(TV)" style suffixes.
_TITLE_YEAR = re.compile(r"\((\d{4})[^()]*\)(?:\s*\([A-Za-z]{1,3}\))*\s*$")
_MONTHS = {m: n for n, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
                                       "sep", "oct", "nov", "dec"), start=1)}
_RATING_KINDS: tuple[FieldKind, ...] = ("int", "int", "float", "int")
_RATING_NAMES = ("user_id", "item_id", "rating", "timestamp")
_CSV_RATINGS_HEADER = ("userId", "movieId", "rating", "timestamp")
_INT_RANGE = {32: (-(2**31), 2**31 - 1), 64: (-(2**63), 2**63 - 1)}


# --- resolution ----------------------------------------------------------------------------------
def load(
    name_or_path: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    verify: bool = False,
    progress: bool = True,
    base_url: str | None = None,
    imdb_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load a MovieLens release by name, a release folder, or a ratings file.

    A release name is looked up in `data_dir`, then in $MOVIEREC_DATA_DIR (a subfolder named as
    GroupLens names the archive folder: ml-100k, ml-latest-small, ml-10M100K), then in the
    cache, and is downloaded into the cache as a last resort.

    Args:
        name_or_path: a release name ("ml-100k"; see `movierec.data.releases()`), a folder of
            official files (layout detected from its files), or a ratings file of your own.
        data_dir: folder holding release subfolders; looked at first.
        download: download a release that is not found locally (default True).
        cache_dir: cache folder (default: $MOVIEREC_CACHE, else ~/.cache/movierec).
        verify: check each file's sha256 against the recorded values (where recorded).
        progress: show a download progress bar on a terminal.
        base_url: download server (default: $MOVIEREC_BASE_URL, else GroupLens).
        imdb_dir: folder of IMDb's non-commercial TSV files that you downloaded; when given,
            the item table gains directors, writers, actors, runtime, imdb_rating and
            imdb_votes (see `movierec.data.imdb.enrich`; the match report is logged and kept
            in `items.attrs["imdb_match"]`).

    Raises:
        DataError: unknown name, nothing found and `download=False`, or malformed files.
    """
    ds = _load(name_or_path, data_dir=data_dir, download=download, cache_dir=cache_dir,
               verify=verify, progress=progress, base_url=base_url)
    if imdb_dir is None:
        return ds
    from movierec.data.imdb import enrich

    return enrich(ds, imdb_dir).dataset


def _load(
    name_or_path: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None,
    download: bool,
    cache_dir: str | os.PathLike[str] | None,
    verify: bool,
    progress: bool,
    base_url: str | None,
) -> Dataset:
    if isinstance(name_or_path, str) and name_or_path in RELEASES:
        release = RELEASES[name_or_path]
        folder = resolve(release, data_dir=data_dir, download=download, cache_dir=cache_dir,
                         progress=progress, base_url=base_url)
        if verify:
            verify_folder(release, folder)
        return read_folder(folder, release.layout, name=release.name,
                           rating_scale=release.rating_scale)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        known = release_for_folder(path.name)
        if verify and known is not None:
            verify_folder(known, path)
        return read_folder(path, name=known.name if known else path.name,
                           rating_scale=known.rating_scale if known else None)
    if path.is_file():
        return load_ratings_file(path)
    raise DataError(f"{str(name_or_path)!r} is neither a known release ({', '.join(RELEASES)}) "
                    "nor an existing folder or file")


def resolve(
    release: Release,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    base_url: str | None = None,
) -> Path:
    """Find a release's folder locally (data_dir, $MOVIEREC_DATA_DIR, cache) or download it."""
    searched: list[str] = []
    bases = [Path(d).expanduser() for d in (data_dir, os.environ.get(DATA_DIR_ENV)) if d]
    ratings = RATINGS_FILE[release.layout]
    for base in bases:
        for sub in dict.fromkeys((release.folder, release.name)):
            candidate = base / sub
            searched.append(str(candidate))
            if (candidate / ratings).is_file():
                return candidate
    cached = cached_folder(release, cache_dir)
    searched.append(str(default_cache_dir(cache_dir) / release.folder))
    if cached is not None:
        return cached
    if not download:
        raise DataError(
            f"{release.name} not found; looked in: {'; '.join(searched)}. Put the extracted "
            f"'{release.folder}' folder under a directory and set {DATA_DIR_ENV} to it (or pass "
            "data_dir=...), or allow download=True."
        )
    return fetch(release, cache_dir, base_url=base_url, progress=progress)


def detect_layout(folder: str | os.PathLike[str]) -> str:
    """The layout family of a release folder, from the ratings file it holds.

    Raises:
        DataError: none of u.data, ratings.dat, ratings.csv is there.
    """
    folder = Path(folder)
    for layout, ratings in RATINGS_FILE.items():
        if (folder / ratings).is_file():
            return layout
    found = sorted(p.name for p in folder.iterdir())[:10] if folder.is_dir() else []
    raise DataError(f"{folder}: not a MovieLens release folder (no u.data, ratings.dat, "
                    f"ratings.csv or user_ratedmovies-timestamps.dat); found {found}")


def _is_synthetic(folder: Path) -> bool:
    """Whether the folder was written by `movierec data synth` (its README.txt says so)."""
    try:
        with open(folder / "README.txt", "rb") as fh:
            return fh.read(64).startswith(b"SYNTHETIC DATA")
    except OSError:
        return False


def read_folder(
    folder: str | os.PathLike[str],
    layout: str | None = None,
    *,
    name: str | None = None,
    rating_scale: tuple[float, float] | None = None,
) -> Dataset:
    """Read a release folder of the given (or detected) layout into a Dataset."""
    folder = Path(folder)
    layout = layout or detect_layout(folder)
    from movierec.data.hetrec import read_hetrec

    readers = {"ml100k": _read_ml100k, "ml1m": _read_ml1m, "csv": _read_csv,
               "hetrec": read_hetrec}
    if layout not in readers:
        raise DataError(f"unknown layout {layout!r}; expected one of {list(readers)}")
    tables = readers[layout](folder)
    ratings = tables.pop("ratings")
    assert ratings is not None  # every reader returns its ratings table
    path = folder / RATINGS_FILE[layout]
    if len(ratings) == 0:
        raise DataError(f"{path}: no ratings (only a header or blank lines)")
    where = row_locator(path, header=layout in ("csv", "hetrec"))
    name = name or folder.name
    if _is_synthetic(folder) and "synthetic" not in name:
        name += "-synthetic"  # so results on it can never pass for MovieLens results
    ds = Dataset(ratings, **tables, name=name, rating_scale=rating_scale,
                 source=str(path), locate=where)
    warn_future(ds, where)
    return ds


# --- helpers -------------------------------------------------------------------------------------
def _text_lines(path: Path) -> list[str]:
    """Lines of a text file: UTF-8 when it decodes as UTF-8, else latin-1; CR stripped."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return [ln.rstrip("\r") for ln in text.split("\n")]


def _year_from_title(titles: pd.Series) -> pd.Series:
    return pd.to_numeric(titles.str.extract(_TITLE_YEAR, expand=False), errors="coerce"
                         ).astype(np.float64)


def _items_frame(ids: list[int], titles: list[str], genres: list[tuple[str, ...]],
                 release_dates: pd.Series | None = None) -> pd.DataFrame:
    """The item table; the film's year from the title, else from the release date."""
    title_s = pd.Series(titles, dtype="str").str.strip()
    year = _year_from_title(title_s)
    if release_dates is not None:
        year = year.fillna(pd.Series(release_dates.dt.year, dtype=np.float64))
    frame = pd.DataFrame({"item_id": np.asarray(ids, dtype=np.int32), "title": title_s,
                          "year": year.to_numpy(np.float64)})
    frame["genres"] = pd.Series(genres, dtype=object)
    if release_dates is not None:
        frame["release_date"] = release_dates.to_numpy()
    return frame


def _release_date(text: str, path: Path, lineno: int) -> tuple[int, int, int] | None:
    """ML-100K's "01-Jan-1995" as (year, month, day); None when blank."""
    text = text.strip()
    if not text:
        return None
    parts = text.split("-")
    month = _MONTHS.get(parts[1].lower(), 0) if len(parts) == 3 else 0
    if not (month and parts[0].isdigit() and parts[2].isdigit() and 1 <= int(parts[0]) <= 31):
        raise DataError(f"{path}:{lineno}: release date {text!r} is not DD-Mon-YYYY "
                        "(e.g. 01-Jan-1995)")
    return int(parts[2]), month, int(parts[0])


def _dates_series(dates: list[tuple[int, int, int] | None]) -> pd.Series:
    """datetime64[ns] dates (NaT for None or an impossible day such as 31-Feb)."""
    frame = pd.DataFrame([d or (np.nan, np.nan, np.nan) for d in dates],
                         columns=["year", "month", "day"], dtype=np.float64)
    if len(frame) == 0:
        return pd.Series([], dtype="datetime64[ns]")
    return pd.Series(pd.to_datetime(frame, errors="coerce"), dtype="datetime64[ns]")


def _int(value: str, path: Path, lineno: int, field: str, bits: int = 32) -> int:
    try:
        number = int(value)
    except ValueError:
        raise DataError(f"{path}:{lineno}: {field} {value!r} is not an integer") from None
    lo, hi = _INT_RANGE[bits]
    if not lo <= number <= hi:
        raise DataError(f"{path}:{lineno}: {field} {number} does not fit in int{bits}")
    return number


def _int32_ids(frame: pd.DataFrame, column: str, path: Path, header: bool = False
               ) -> pd.DataFrame:
    """`frame` with `column` as int32; a value out of range is an error naming its line."""
    values = frame[column].to_numpy()
    lo, hi = _INT_RANGE[32]
    bad = (values < lo) | (values > hi)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{row_locator(path, header=header)(row)}: {column} {values[row]} does "
                        "not fit in int32")
    frame[column] = values.astype(np.int32)
    return frame


def _split_genres(text: str) -> tuple[str, ...]:
    if not text or text == NO_GENRES:
        return ()
    return tuple(text.split("|"))


# --- ml-100k -------------------------------------------------------------------------------------
def _read_ml100k(folder: Path) -> dict[str, pd.DataFrame | None]:
    ratings = read_delimited(folder / "u.data", sep="\t", kinds=_RATING_KINDS,
                             names=_RATING_NAMES)
    items = _read_u_item(folder / "u.item") if (folder / "u.item").is_file() else None
    users = None
    if (folder / "u.user").is_file():
        users = read_delimited(folder / "u.user", sep="|",
                               kinds=("int", "int", "str", "str", "str"),
                               names=("user_id", "age", "gender", "occupation", "zip"))
        users = _int32_ids(users, "user_id", folder / "u.user")
    return {"ratings": ratings, "items": items, "users": users}


def _read_u_item(path: Path) -> pd.DataFrame:
    n_fields = 5 + len(GENRES_100K)
    ids, titles, dates, genres = [], [], [], []
    for lineno, line in enumerate(_text_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != n_fields:
            raise DataError(f"{path}:{lineno}: expected {n_fields} '|'-separated fields, "
                            f"found {len(fields)}")
        ids.append(_int(fields[0], path, lineno, "movie id"))
        titles.append(fields[1])
        dates.append(_release_date(fields[2], path, lineno))
        flags = fields[5:]
        if any(f not in ("0", "1") for f in flags):
            raise DataError(f"{path}:{lineno}: genre flags must be 0 or 1, found {flags}")
        # "unknown" is the absence of a genre, not a genre (see the module docstring).
        genres.append(tuple(g for g, f in zip(GENRES_100K, flags, strict=True)
                            if f == "1" and g != "unknown"))
    return _items_frame(ids, titles, genres, _dates_series(dates))


# --- ml-1m / ml-10m ------------------------------------------------------------------------------
def _read_ml1m(folder: Path) -> dict[str, pd.DataFrame | None]:
    ratings = read_delimited(folder / "ratings.dat", sep="::", kinds=_RATING_KINDS,
                             names=_RATING_NAMES)
    items = _read_movies_dat(folder / "movies.dat") if (folder / "movies.dat").is_file() else None
    users = _read_users_dat(folder / "users.dat") if (folder / "users.dat").is_file() else None
    tags = _read_tags_dat(folder / "tags.dat") if (folder / "tags.dat").is_file() else None
    return {"ratings": ratings, "items": items, "users": users, "tags": tags}


def _read_movies_dat(path: Path) -> pd.DataFrame:
    ids, titles, genres = [], [], []
    for lineno, line in enumerate(_text_lines(path), start=1):
        if not line.strip():
            continue
        # Titles may contain ':' (even '::'), so split off the first and the last field only.
        head, sep1, rest = line.partition("::")
        title, sep2, genre_text = rest.rpartition("::")
        if not (sep1 and sep2):
            raise DataError(f"{path}:{lineno}: expected 'MovieID::Title::Genres', "
                            f"found {line[:120]!r}")
        ids.append(_int(head, path, lineno, "movie id"))
        titles.append(title)
        genres.append(_split_genres(genre_text.strip()))
    return _items_frame(ids, titles, genres)


def _read_users_dat(path: Path) -> pd.DataFrame:
    users = read_delimited(path, sep="::", kinds=("int", "str", "int", "int", "str"),
                           names=("user_id", "gender", "age", "occupation", "zip"))
    codes = users["occupation"].to_numpy()
    bad = (codes < 0) | (codes >= len(OCCUPATIONS_1M))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{row_locator(path, header=False)(row)}: occupation code {codes[row]} "
                        "is not in 0-20")
    users["occupation"] = np.asarray(OCCUPATIONS_1M, dtype=object)[codes]
    users = _int32_ids(users, "user_id", path)
    return users[["user_id", "age", "gender", "occupation", "zip"]]


def _read_tags_dat(path: Path) -> pd.DataFrame:
    users, items, tags, stamps = [], [], [], []
    for lineno, line in enumerate(_text_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split("::", 2)
        tag, sep, stamp = parts[-1].rpartition("::") if len(parts) == 3 else ("", "", "")
        if not sep:
            raise DataError(f"{path}:{lineno}: expected 'UserID::MovieID::Tag::Timestamp', "
                            f"found {line[:120]!r}")
        users.append(_int(parts[0], path, lineno, "user id"))
        items.append(_int(parts[1], path, lineno, "movie id"))
        tags.append(tag)
        stamps.append(_int(stamp, path, lineno, "timestamp", bits=64))
    return pd.DataFrame({"user_id": np.asarray(users, dtype=np.int32),
                         "item_id": np.asarray(items, dtype=np.int32),
                         "tag": pd.Series(tags, dtype="str"),
                         "timestamp": np.asarray(stamps, dtype=np.int64)})


# --- csv (ml-20m and later) ----------------------------------------------------------------------
def _read_csv_frame(path: Path, dtype: dict[str, object], columns: dict[str, str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=dtype, keep_default_na=False,
                            na_values={c: [""] for c, t in dtype.items() if t == "Int64"},
                            encoding="utf-8")
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError) as exc:
        # pandas names neither the line nor the value: find them.
        _locate_csv_error(path, dtype)
        raise DataError(f"{path}: could not be parsed: {exc}") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}:1: header lacks {missing}; found {list(frame.columns)}")
    return frame[list(columns)].rename(columns=columns)


def _locate_csv_error(path: Path, dtype: dict[str, object]) -> None:
    """Raise DataError naming the first line of a CSV side table that pandas cannot read."""
    for lineno, raw in iter_lines(path):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{path}:{lineno}: not valid utf-8 text: {raw[:80]!r}") from None
    bits = {"int32": 32, "int64": 64, "Int64": 64}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
            if not header:
                raise DataError(f"{path}: the file is empty")
            checks = [(j, name, str(dtype[name])) for j, name in enumerate(header)
                      if str(dtype.get(name)) in bits]
            end = reader.line_num
            for record in reader:
                # A quoted field may span lines: name the line where the record starts.
                start, end = end + 1, reader.line_num
                if not record:
                    continue
                if len(record) != len(header):
                    raise DataError(f"{path}:{start}: expected {len(header)} fields, found "
                                    f"{len(record)}" + (" (an unclosed quote?)" if end > start
                                                        else ""))
                for j, name, kind in checks:
                    value = record[j]
                    if kind == "Int64" and value == "":
                        continue
                    _int(value, path, start, name, bits[kind])
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num}: {exc}") from None


def _check_csv_header(path: Path, expected: tuple[str, ...]) -> None:
    first = next((raw for _, raw in iter_lines(path)), b"")
    found = tuple(f.strip() for f in first.decode("utf-8", errors="replace").lstrip("\ufeff")
                  .split(","))
    if found != expected:
        raise DataError(f"{path}:1: header {','.join(found)[:120]!r} is not "
                        f"{','.join(expected)!r}")


def _read_ratings_csv(path: Path) -> pd.DataFrame:
    """A release's ratings.csv, parsed by pyarrow in batches into int32 ids and float32 ratings.

    ML-25M thus takes about its final size in memory (0.5 GB), not twice it.

    A file this fast path cannot take as it is (an id beyond int32, a rating that float32 does
    not hold exactly, an empty or non-finite field, a line that does not parse) is read again by
    `read_delimited`, whose checks and errors name the file and line.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # A row the fast path takes has at least "1,1,1,1" and a line end: at most size / 7 rows.
    # np.empty only reserves the memory; the pages the rows never reach are never touched.
    bound = path.stat().st_size // 7 + 1
    dtypes = {"user_id": np.int32, "item_id": np.int32, "rating": np.float32,
              "timestamp": np.int64}
    columns = {name: np.empty(bound, dtype=dtype) for name, dtype in dtypes.items()}
    types = {"user_id": pa.int32(), "item_id": pa.int32(), "rating": pa.float64(),
             "timestamp": pa.int64()}
    n = 0
    try:
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(column_names=list(_RATING_NAMES), skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=",", quote_char='"'),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False))
        for batch in reader:
            rating = batch.column(2).to_numpy(zero_copy_only=False)
            if (n + batch.num_rows > bound or any(c.null_count for c in batch.columns)
                    or not np.isfinite(rating).all()
                    or not (rating.astype(np.float32) == rating).all()):
                raise ValueError("not for the fast path")
            for j, name in enumerate(_RATING_NAMES):
                columns[name][n:n + batch.num_rows] = batch.column(j).to_numpy(
                    zero_copy_only=False)
            n += batch.num_rows
    except (pa.ArrowInvalid, ValueError, UnicodeDecodeError, OverflowError):
        return read_delimited(path, sep=",", kinds=_RATING_KINDS, names=_RATING_NAMES,
                              header=True)
    return pd.DataFrame({name: col[:n] for name, col in columns.items()}, copy=False)


def _read_csv(folder: Path) -> dict[str, pd.DataFrame | None]:
    _check_csv_header(folder / "ratings.csv", _CSV_RATINGS_HEADER)
    ratings = _read_ratings_csv(folder / "ratings.csv")
    items = tags = links = None
    if (folder / "movies.csv").is_file():
        movies = _read_csv_frame(folder / "movies.csv",
                                 {"movieId": "int32", "title": str, "genres": str},
                                 {"movieId": "item_id", "title": "title", "genres": "genres"})
        genres = [_split_genres(g) for g in movies["genres"].tolist()]
        items = _items_frame(movies["item_id"].tolist(), movies["title"].tolist(), genres)
    if (folder / "tags.csv").is_file():
        tags = _read_csv_frame(folder / "tags.csv",
                               {"userId": "int32", "movieId": "int32", "tag": str,
                                "timestamp": "int64"},
                               {"userId": "user_id", "movieId": "item_id", "tag": "tag",
                                "timestamp": "timestamp"})
    if (folder / "links.csv").is_file():
        links = _read_csv_frame(folder / "links.csv",
                                {"movieId": "int32", "imdbId": "Int64", "tmdbId": "Int64"},
                                {"movieId": "item_id", "imdbId": "imdb_id", "tmdbId": "tmdb_id"})
    return {"ratings": ratings, "items": items, "tags": tags, "links": links}
