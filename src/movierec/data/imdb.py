r"""Enrich a Dataset's movies from IMDb's official non-commercial TSV files.

IMDb publishes `title.basics`, `title.principals`, `title.crew`, `title.ratings` and `name.basics`
as gzipped, tab-separated files with a header line, no quoting (a title may hold `"` as it is)
and `\N` for a missing value. Their license allows personal and non-commercial use only, so
movierec never downloads them: get them yourself from
https://developer.imdb.com/non-commercial-datasets/ and pass the folder (`imdb_dir=`, CLI
`--imdb-dir`). The plain `.tsv` files are read too.

The files are large (title.basics about 11M rows, title.principals about 90M): each is streamed
with pyarrow in blocks and only the rows of the dataset's movies are kept.

**Join.** A release with IMDb ids — `links.csv`'s imdbId (ml-20m and later, ml-latest-small) or
HetRec's imdbID — joins by id. ML-100K and ML-1M have none and join by normalized title and year:
the title's leading or trailing article ("Shawshank Redemption, The"), case, accents and
punctuation are ignored; a title's parenthesized alternative ("City of Lost Children, The (Cité
des enfants perdus, La)") is a second key; on IMDb's side both primaryTitle and originalTitle
count, among titleType movie, tvMovie and video, with startYear equal to the MovieLens year. A
movie whose keys find two or more IMDb titles is *ambiguous* and stays unmatched: nothing is
guessed. `MatchReport` counts and lists matched, ambiguous and unmatched movies.

**Columns added** to the item table: imdb_id (int), directors and writers (title.crew), actors
(title.principals' category actor/actress, ordered by its `ordering`, i.e. billing), each with
the IMDb ids beside them (director_ids, writer_ids, actor_ids: "nm0000151"), runtime (minutes),
imdb_rating and imdb_votes (float, NaN when unknown). A column the release already has (HetRec's
directors, actors, imdb_id) is kept as the release gives it. IMDb's files have no countries:
only HetRec's item table has `countries`.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from movierec.data.dataset import Dataset
from movierec.errors import DataError

logger = logging.getLogger(__name__)

IMDB_DATASETS_URL = "https://developer.imdb.com/non-commercial-datasets/"
#: The IMDb files used, by role, and the columns each must have (its header line).
FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "basics": ("title.basics.tsv.gz", ("tconst", "titleType", "primaryTitle", "originalTitle",
                                       "isAdult", "startYear", "endYear", "runtimeMinutes",
                                       "genres")),
    "principals": ("title.principals.tsv.gz", ("tconst", "ordering", "nconst", "category", "job",
                                               "characters")),
    "crew": ("title.crew.tsv.gz", ("tconst", "directors", "writers")),
    "ratings": ("title.ratings.tsv.gz", ("tconst", "averageRating", "numVotes")),
    "names": ("name.basics.tsv.gz", ("nconst", "primaryName", "birthYear", "deathYear",
                                     "primaryProfession", "knownForTitles")),
}
TITLE_TYPES = ("movie", "tvMovie", "video")
ACTOR_CATEGORIES = ("actor", "actress")
#: The columns `enrich` adds (where the item table lacks them).
NEW_COLUMNS = ("imdb_id", "directors", "director_ids", "writers", "writer_ids", "actors",
               "actor_ids", "runtime", "imdb_rating", "imdb_votes")
_PEOPLE = ("directors", "writers", "actors")
_ARTICLES = r"the|a|an|les|la|le|il|el|los|las|der|die|das"
_TRAILING_ARTICLE = re.compile(rf"^(.*),\s*({_ARTICLES}|l')$", re.IGNORECASE)
_LEADING_ARTICLE = re.compile(rf"^(?:(?:{_ARTICLES})\s+|l')", re.IGNORECASE)
_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})[^()]*\)(?:\s*\([A-Za-z]{1,3}\))*\s*$")
_PAREN = re.compile(r"\(([^()]*)\)")
_BLOCK = 4 << 20  # 4 MB: as fast as 16 MB here, and 2.5x less pool memory


# --- title normalization ------------------------------------------------------------------------
def normalize_title(title: str) -> str:
    """A title reduced for matching: no article, case, accents or punctuation.

    "Shawshank Redemption, The" and "The Shawshank Redemption" both give "shawshank redemption";
    "Amélie" gives "amelie"; "Se7en" stays "se7en".
    """
    text = unicodedata.normalize("NFKD", title)
    text = "".join(c for c in text if not unicodedata.combining(c)).strip()
    text = text.replace("&", " and ")
    m = _TRAILING_ARTICLE.match(text)
    if m:
        text = m.group(1)
    text = _LEADING_ARTICLE.sub("", text.lower(), count=1)
    text = re.sub(r"[^\w\s]|_", " ", text)
    return " ".join(text.split())


def title_keys(title: str) -> tuple[str, ...]:
    """Normalized keys of a MovieLens title: the title, and each parenthesized alternative.

    "City of Lost Children, The (Cité des enfants perdus, La) (1995)" gives
    ("city of lost children", "cite des enfants perdus").
    """
    base = _YEAR_SUFFIX.sub("", title)
    alternatives = [re.sub(r"^a\.?k\.?a\.?\s*", "", a.strip(), flags=re.IGNORECASE)
                    for a in _PAREN.findall(base)]
    main = _PAREN.sub("", base)
    keys = [normalize_title(t) for t in (main, *alternatives)]
    return tuple(dict.fromkeys(k for k in keys if k))


# --- match report -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MatchReport:
    """How the dataset's movies were matched to IMDb titles.

    Attributes:
        method: "imdb_id" (links.csv imdbId or HetRec's imdbID) or "title_year".
        items: number of movies in the item table.
        matched: item_id -> IMDb tconst ("tt0114709").
        ambiguous: item_id -> the two or more tconsts its title and year found (left unmatched).
        unmatched: item_ids that found no IMDb title (no id, an id not in title.basics, or no
            title and year match).
        seconds: time the enrichment took.
    """

    method: str
    items: int
    matched: dict[int, str] = field(default_factory=dict)
    ambiguous: dict[int, tuple[str, ...]] = field(default_factory=dict)
    unmatched: tuple[int, ...] = ()
    seconds: float = 0.0

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        """Counts and lists (the first `limit` of each, all when None), JSON-ready."""
        def cut(values: list[Any]) -> list[Any]:
            return values if limit is None else values[:limit]

        return {
            "method": self.method, "items": self.items, "matched": len(self.matched),
            "ambiguous": len(self.ambiguous), "unmatched": len(self.unmatched),
            "matched_items": cut([[int(i), t] for i, t in sorted(self.matched.items())]),
            "ambiguous_items": cut([[int(i), list(t)] for i, t in sorted(self.ambiguous.items())]),
            "unmatched_items": cut(sorted(int(i) for i in self.unmatched)),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Enriched:
    """The result of `enrich`: the new Dataset, its match report and each new column's coverage."""

    dataset: Dataset
    report: MatchReport
    coverage: dict[str, float]


# --- streaming ----------------------------------------------------------------------------------
def find_file(imdb_dir: str | os.PathLike[str], role: str) -> Path:
    """Path of an IMDb file (`.tsv.gz`, else `.tsv`) in `imdb_dir`.

    Raises:
        DataError: the file is not there; the message says why movierec does not download it.
    """
    folder = Path(imdb_dir).expanduser()
    name = FILES[role][0]
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder / name}: IMDb file not found. movierec never downloads IMDb's "
                    "files (their license allows personal, non-commercial use only): download "
                    f"{', '.join(f for f, _ in FILES.values())} yourself from "
                    f"{IMDB_DATASETS_URL} into {folder}")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a plain or gzipped file, decoded as UTF-8 with replacement."""
    lineno = 0
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
            for raw in fh:
                lineno += 1
                yield lineno, raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}:{lineno + 1}: the file is damaged ({exc})") from None


def _check_header(path: Path, expected: tuple[str, ...]) -> None:
    first = next(_lines(path), (1, ""))[1]
    found = tuple(first.lstrip("\ufeff").split("\t"))
    if found != expected:
        raise DataError(f"{path}:1: header {first[:160]!r} is not IMDb's "
                        f"{chr(9).join(expected)!r}")


def _locate_bad_line(path: Path, n_fields: int) -> None:
    """Raise DataError at the first line without `n_fields` tab-separated fields."""
    for lineno, line in _lines(path):
        if line and line.count("\t") + 1 != n_fields:
            raise DataError(f"{path}:{lineno}: expected {n_fields} tab-separated fields, found "
                            f"{line.count(chr(9)) + 1}: {line[:120]!r}")


def stream(
    path: Path,
    columns: tuple[str, ...],
    keep: tuple[str, ...],
    mask: Callable[[pa.RecordBatch], pa.Array],
    *,
    block_size: int = _BLOCK,
) -> pa.Table:
    r"""The rows of an IMDb TSV for which `mask` is true, read block by block.

    Args:
        path: the file (gzipped or not).
        columns: the columns its header must name, in order.
        keep: the columns to read (as strings; `\N` is null).
        mask: a boolean array over a record batch of `keep`.
        block_size: bytes per block.

    Raises:
        DataError: a wrong header, a line with another number of fields, or a damaged gzip
            stream; the message names the file and line.
    """
    _check_header(path, columns)
    read = pacsv.ReadOptions(block_size=block_size, skip_rows=1, column_names=list(columns))
    parse = pacsv.ParseOptions(delimiter="\t", quote_char=False, double_quote=False,
                               escape_char=False)
    convert = pacsv.ConvertOptions(include_columns=list(keep),
                                   column_types={c: pa.string() for c in keep},
                                   null_values=["\\N"], strings_can_be_null=True)
    pieces = []
    try:
        with pacsv.open_csv(pa.input_stream(str(path)), read_options=read, parse_options=parse,
                            convert_options=convert) as reader:
            schema = reader.schema
            for batch in reader:
                pieces.append(batch.filter(mask(batch)))
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        _locate_bad_line(path, len(columns))
        raise DataError(f"{path}: could not be read: {exc}") from exc
    return pa.Table.from_batches(pieces, schema=schema)


def _numbers(table: pa.Table, column: str, path: Path, key: str) -> np.ndarray:
    """A string column of kept rows as float64 (NaN for null); a bad value names its line."""
    values = table.column(column).to_pylist()
    out = np.full(len(values), np.nan)
    for j, v in enumerate(values):
        if v is None:
            continue
        try:
            out[j] = float(v)
        except ValueError:
            ident = table.column(key)[j].as_py()
            line = next((n for n, text in _lines(path) if text.startswith(f"{ident}\t")), None)
            raise DataError(f"{path}:{line}: {column} {v!r} of {ident} is not a number"
                            ) from None
    return out


def _isin(batch: pa.RecordBatch, column: str, values: pa.Array) -> pa.Array:
    return pc.fill_null(pc.is_in(batch.column(column), value_set=values), False)


# --- join ---------------------------------------------------------------------------------------
def _imdb_ids(ds: Dataset, items: pd.DataFrame) -> pd.Series | None:
    """item_id -> IMDb id (int) from the item table (HetRec) or links (CSV releases), or None."""
    for table in (items, ds.links):
        if table is not None and "imdb_id" in table.columns:
            ids = pd.Series(pd.array(table["imdb_id"], dtype="Int64").to_numpy(
                dtype=np.float64, na_value=np.nan), index=table["item_id"].to_numpy())
            return ids
    return None


def _tconst(n: float) -> str:
    return f"tt{int(n):07d}"


def _match_by_id(ids: pd.Series, items: pd.DataFrame, basics: Path
                 ) -> tuple[MatchReport, pa.Table]:
    wanted = {int(i): _tconst(n) for i, n in ids.items() if np.isfinite(n)}
    values = pa.array(sorted(set(wanted.values())), type=pa.string())
    table = stream(basics, FILES["basics"][1], ("tconst", "runtimeMinutes"),
                   lambda b: _isin(b, "tconst", values))
    found = set(table.column("tconst").to_pylist())
    item_ids = items["item_id"].tolist()
    matched = {i: wanted[i] for i in item_ids if wanted.get(i) in found}
    unmatched = tuple(i for i in item_ids if i not in matched)
    return MatchReport("imdb_id", len(item_ids), matched, {}, unmatched), table


def _match_by_title(items: pd.DataFrame, basics: Path) -> tuple[MatchReport, pa.Table]:
    keys: dict[int, tuple[tuple[str, ...], int]] = {}
    for i, title, year in zip(items["item_id"].tolist(), items["title"].tolist(),
                              items["year"].tolist(), strict=True):
        if isinstance(title, str) and year == year and year is not None:
            keys[int(i)] = (title_keys(title), int(year))
    years = pa.array(sorted({str(y) for _, y in keys.values()}), type=pa.string())
    types = pa.array(TITLE_TYPES, type=pa.string())
    table = stream(basics, FILES["basics"][1],
                   ("tconst", "titleType", "primaryTitle", "originalTitle", "startYear",
                    "runtimeMinutes"),
                   lambda b: pc.and_(_isin(b, "titleType", types), _isin(b, "startYear", years)))
    index: dict[tuple[str, int], set[str]] = {}
    for tconst, primary, original, year in zip(
            *(table.column(c).to_pylist() for c in ("tconst", "primaryTitle", "originalTitle",
                                                    "startYear")), strict=True):
        for title in {primary, original} - {None}:
            index.setdefault((normalize_title(title), int(year)), set()).add(tconst)
    matched, ambiguous = {}, {}
    for i, (ks, year) in keys.items():
        found = set().union(*(index.get((k, year), set()) for k in ks)) if ks else set()
        if len(found) == 1:
            matched[i] = found.pop()
        elif found:
            ambiguous[i] = tuple(sorted(found))
    item_ids = items["item_id"].tolist()
    unmatched = tuple(i for i in item_ids if i not in matched and i not in ambiguous)
    return MatchReport("title_year", len(item_ids), matched, ambiguous, unmatched), table


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v for v in value.split(",") if v) if value else ()


def _people(imdb_dir: str | os.PathLike[str], tconsts: pa.Array
            ) -> tuple[dict[str, dict[str, tuple[str, ...]]], dict[str, str]]:
    """Map tconst -> {"directors", "writers", "actors"} nconsts, and nconst -> name."""
    crew = stream(find_file(imdb_dir, "crew"), FILES["crew"][1], FILES["crew"][1],
                  lambda b: _isin(b, "tconst", tconsts))
    people: dict[str, dict[str, tuple[str, ...]]] = {}
    for t, d, w in zip(*(crew.column(c).to_pylist() for c in FILES["crew"][1]), strict=True):
        people.setdefault(t, {})
        people[t]["directors"], people[t]["writers"] = _split(d), _split(w)
    path = find_file(imdb_dir, "principals")
    cats = pa.array(ACTOR_CATEGORIES, type=pa.string())
    principals = stream(path, FILES["principals"][1], ("tconst", "ordering", "nconst",
                                                       "category"),
                        lambda b: pc.and_(_isin(b, "tconst", tconsts),
                                          _isin(b, "category", cats)))
    order = _numbers(principals, "ordering", path, "tconst").tolist()
    billed = sorted(zip(principals.column("tconst").to_pylist(), order,
                        principals.column("nconst").to_pylist(), strict=True),
                    key=lambda row: (row[0], row[1]))  # ties keep file order (a stable sort)
    actors: dict[str, list[str]] = {}
    for t, _, n in billed:
        if n is not None:
            actors.setdefault(t, []).append(n)
    for t, ns in actors.items():
        people.setdefault(t, {})["actors"] = tuple(ns)
    wanted = sorted({n for roles in people.values() for ns in roles.values() for n in ns})
    nconsts = pa.array(wanted, type=pa.string())
    names_table = stream(find_file(imdb_dir, "names"), FILES["names"][1],
                         ("nconst", "primaryName"), lambda b: _isin(b, "nconst", nconsts))
    names = dict(zip(names_table.column("nconst").to_pylist(),
                     names_table.column("primaryName").to_pylist(), strict=True))
    return people, names


def coverage(items: pd.DataFrame | None, columns: tuple[str, ...] = NEW_COLUMNS
             ) -> dict[str, float]:
    """Share of the item table's movies with a value in each of `columns` that it has.

    A tuple column counts a movie when the tuple is not empty; others when not null.
    """
    if items is None or len(items) == 0:
        return {}
    out = {}
    for col in columns:
        if col not in items.columns:
            continue
        values = items[col]
        if values.dtype == object:
            known = values.map(lambda v: len(v) > 0 if isinstance(v, tuple) else v is not None)
        else:
            known = values.notna()
        out[col] = float(np.mean(known.to_numpy(dtype=bool)))
    return out


def enrich(ds: Dataset, imdb_dir: str | os.PathLike[str], *, max_actors: int | None = None
           ) -> Enriched:
    """Add IMDb's people, runtime and rating to the item table of `ds`.

    See the module docstring for the join and the columns.

    Args:
        ds: a loaded Dataset with an item table.
        imdb_dir: folder with title.basics, title.principals, title.crew, title.ratings and
            name.basics (`.tsv.gz` or `.tsv`) that you downloaded from IMDb.
        max_actors: keep at most this many actors per movie, in billing order (default: all
            that title.principals lists).

    Returns:
        Enriched(dataset, report, coverage): a new Dataset (the ratings are the same), the
        match report and the share of movies with a value in each new column.

    Raises:
        DataError: `ds` has no item table, a file is missing (movierec never downloads them) or
            damaged (the message names the file and line).
    """
    start = time.perf_counter()
    if ds.items is None:
        raise DataError(f"{ds.name}: no item table (titles or IMDb ids) to join IMDb's files to")
    if max_actors is not None and max_actors < 0:
        raise ValueError(f"max_actors must be >= 0 or None, got {max_actors}")
    paths = {role: find_file(imdb_dir, role) for role in FILES}  # all present before any work
    items = ds.items.reset_index(drop=True)
    ids = _imdb_ids(ds, items)
    if ids is not None:
        report, basics = _match_by_id(ids, items, paths["basics"])
    else:
        report, basics = _match_by_title(items, paths["basics"])
    tconsts = pa.array(sorted(set(report.matched.values())), type=pa.string())
    ratings = stream(paths["ratings"], FILES["ratings"][1], FILES["ratings"][1],
                     lambda b: _isin(b, "tconst", tconsts))
    people, names = _people(imdb_dir, tconsts)
    runtime = dict(zip(basics.column("tconst").to_pylist(),
                       _numbers(basics, "runtimeMinutes", paths["basics"], "tconst"),
                       strict=True))
    rating_of = dict(zip(ratings.column("tconst").to_pylist(), zip(
        _numbers(ratings, "averageRating", paths["ratings"], "tconst"),
        _numbers(ratings, "numVotes", paths["ratings"], "tconst"), strict=True), strict=True))
    tcs = [report.matched.get(int(i)) for i in items["item_id"].tolist()]
    new: dict[str, Any] = {
        "imdb_id": pd.array([int(t[2:]) if t else None for t in tcs], dtype="Int64"),
        "runtime": [runtime.get(t, np.nan) if t else np.nan for t in tcs],
        "imdb_rating": [rating_of.get(t, (np.nan, np.nan))[0] if t else np.nan for t in tcs],
        "imdb_votes": [rating_of.get(t, (np.nan, np.nan))[1] if t else np.nan for t in tcs],
    }
    for role in _PEOPLE:
        lists = [people.get(t, {}).get(role, ()) if t else () for t in tcs]
        if role == "actors" and max_actors is not None:
            lists = [ns[:max_actors] for ns in lists]
        new[f"{role[:-1]}_ids"] = pd.Series(lists, dtype=object)
        new[role] = pd.Series([tuple(names.get(n, n) for n in ns) for ns in lists],
                              dtype=object)
    for col in NEW_COLUMNS:
        if col not in items.columns:  # what the release gives (HetRec's people) is kept
            items[col] = new[col]
    report = replace(report, seconds=time.perf_counter() - start)
    items.attrs["imdb_match"] = report.to_dict(limit=0)
    cov = coverage(items)
    logger.info("%s: IMDb join by %s: %d of %d movies matched, %d ambiguous, %d unmatched "
                "(%.1f s)", ds.name, report.method, len(report.matched), report.items,
                len(report.ambiguous), len(report.unmatched), report.seconds)
    return Enriched(replace(ds, items=items), report, cov)
