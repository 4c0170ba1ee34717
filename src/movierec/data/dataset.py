"""The immutable Dataset: ratings plus whatever side tables a release has.

Policies for awkward data, applied once here so that every loader and every frame agree:

- **Duplicated (user, item) pairs** (re-ratings): the latest rating by timestamp is kept (the
  later row when timestamps tie); the others are dropped with one warning naming two of the
  rows. Official MovieLens releases have none.
- **Unknown ids**: ratings may name items (users) that the item (user) table lacks; they are
  kept, and such items simply have no title, year or genres. Side-table rows with the same id
  twice keep the first row (with a warning).
- **Values**: ids are integers that fit int32; ratings are finite numbers inside `rating_scale`
  when one is given (any finite value otherwise, negative included); timestamps are integer
  unix seconds before 2100-01-01 (later values are almost always milliseconds).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.data.vocab import Vocabulary
from movierec.errors import DataError

logger = logging.getLogger(__name__)

RATING_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
RATING_DTYPES = {"user_id": np.int32, "item_id": np.int32, "rating": np.float32,
                 "timestamp": np.int64}
#: 2100-01-01 in unix seconds: a later timestamp is not seconds (milliseconds, microseconds).
TIMESTAMP_LIMIT = 4_102_444_800
#: Maps a 0-based row of a ratings frame to where it came from ("ratings.csv:12").
Locator = Callable[[int], str]


def _default_locator(source: str) -> Locator:
    return lambda row: f"{source}: row {row}"


def _first(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad)[0])


def _check_whole(col: str, values: np.ndarray, where: Locator) -> None:
    """DataError at the first float value of `values` that is not a finite whole number."""
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            row = _first(bad)
            why = "is not an integer" if np.isfinite(values[row]) else "is empty or not finite"
            raise DataError(f"{where(row)}: {col} {float(values[row])} {why}")


def _check_ids(col: str, values: np.ndarray, where: Locator) -> np.ndarray:
    _check_whole(col, values, where)
    if values.dtype.kind not in "iuf":
        raise DataError(f"{where(0)}: column {col} must be integer, found {values.dtype}")
    info = np.iinfo(np.int32)
    bad = (values < info.min) | (values > info.max)
    if bad.any():
        row = _first(bad)
        raise DataError(f"{where(row)}: {col} {values[row]} does not fit in int32 "
                        f"({info.min}..{info.max})")
    return values.astype(np.int32)


def _check_ratings(values: np.ndarray, scale: tuple[float, float] | None,
                   where: Locator) -> np.ndarray:
    if values.dtype.kind not in "biuf":
        raise DataError(f"{where(0)}: column rating must be numeric, found {values.dtype}")
    values = values.astype(np.float64, copy=False)
    bad = ~np.isfinite(values)
    if bad.any():
        row = _first(bad)
        raise DataError(f"{where(row)}: rating {float(values[row])} is not a finite number")
    if scale is not None:
        bad = (values < scale[0]) | (values > scale[1])
        if bad.any():
            row = _first(bad)
            raise DataError(f"{where(row)}: rating {float(values[row]):g} is outside the rating "
                            f"scale {scale[0]:g}..{scale[1]:g}")
    return values.astype(np.float32)


def _check_timestamps(values: np.ndarray, where: Locator) -> np.ndarray:
    _check_whole("timestamp", values, where)
    if values.dtype.kind not in "iuf":
        raise DataError(f"{where(0)}: column timestamp must be integer unix seconds, found "
                        f"{values.dtype}")
    bad = values >= TIMESTAMP_LIMIT
    if bad.any():
        row = _first(bad)
        raise DataError(f"{where(row)}: timestamp {values[row]:.0f} is after 2100-01-01; "
                        "timestamps must be unix seconds (milliseconds?)")
    bad = values < -(2**62)  # so far in the past that int64 arithmetic would overflow
    if bad.any():
        row = _first(bad)
        raise DataError(f"{where(row)}: timestamp {values[row]:.0f} is out of range")
    return values.astype(np.int64)


def _coerce_ratings(frame: pd.DataFrame, source: str, scale: tuple[float, float] | None = None,
                    where: Locator | None = None) -> pd.DataFrame:
    """Check columns and values of a ratings frame and return it with the canonical dtypes."""
    missing = [c for c in ("user_id", "item_id", "rating") if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: ratings lack column(s) {missing}; found {list(frame.columns)}")
    where = where or _default_locator(source)
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for col in ("user_id", "item_id"):
        out[col] = _check_ids(col, frame[col].to_numpy(), where)
    out["rating"] = _check_ratings(frame["rating"].to_numpy(), scale, where)
    out["timestamp"] = (_check_timestamps(frame["timestamp"].to_numpy(), where)
                        if "timestamp" in frame.columns else np.zeros(len(frame), dtype=np.int64))
    return _latest_only(out, where)


def _strictly_increasing(users: np.ndarray, items: np.ndarray, step: int = 1 << 20) -> bool:
    """Whether the (user, item) rows strictly increase.

    Checked in slices, so that 25M rows take no more than a few MB of temporaries.
    """
    for lo in range(0, len(users) - 1, step):
        u = users[lo:lo + step + 1].astype(np.int64)
        i = items[lo:lo + step + 1].astype(np.int64)
        du, di = np.diff(u), np.diff(i)
        if not ((du > 0) | ((du == 0) & (di > 0))).all():
            return False
    return True


def _latest_only(ratings: pd.DataFrame, where: Locator) -> pd.DataFrame:
    """Keep one row per (user, item): the latest by timestamp, the later row on ties."""
    n = len(ratings)
    if n < 2:
        return ratings
    if _strictly_increasing(ratings["user_id"].to_numpy(), ratings["item_id"].to_numpy()):
        return ratings  # sorted by (user, item) without repeats, as the releases are: O(n)
    users = ratings["user_id"].to_numpy().astype(np.int64)
    items = ratings["item_id"].to_numpy().astype(np.int64)
    keys = (users << 32) | (items & 0xFFFFFFFF)
    if not pd.Index(keys).has_duplicates:
        return ratings
    order = np.lexsort((np.arange(n), ratings["timestamp"].to_numpy(), keys))
    sorted_keys = keys[order]
    last = np.ones(n, dtype=bool)
    last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
    kept = order[last]
    dropped = np.sort(order[~last])
    example = int(dropped[0])
    winner = int(kept[np.searchsorted(sorted_keys[last], keys[example])])
    n_pairs = len(np.unique(keys[dropped]))
    logger.warning(
        "%d (user_id, item_id) pair(s) are rated more than once; kept the latest rating of each "
        "(by timestamp, the later row on ties) and dropped %d row(s), e.g. user %d, item %d: "
        "kept %s, dropped %s", n_pairs, len(dropped), users[example], items[example],
        where(winner), where(example))
    return ratings.iloc[np.sort(kept)].reset_index(drop=True)


def _dense_span(values: np.ndarray) -> tuple[int, int] | None:
    """(lowest, span) of integer ids that span at most 2**24 values, else None.

    Every MovieLens id column fits.
    """
    if not len(values) or values.dtype.kind not in "iu":
        return None
    lo, hi = int(values.min()), int(values.max())
    return (lo, hi - lo + 1) if hi - lo < 1 << 24 else None


def _distinct_ids(values: np.ndarray) -> np.ndarray:
    """The sorted distinct ids (int64), as np.unique gives them.

    O(n) with a bitmap when the ids span few values, which spares 25M-row releases a hash or a sort.
    """
    dense = _dense_span(values)
    if dense is None:
        return np.unique(values.astype(np.int64))
    lo, span = dense
    present = np.zeros(span, dtype=bool)
    present[values - lo] = True
    return np.flatnonzero(present) + lo


def _own_codes(values: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """Codes (int32) of ids that are all in `vocab`.

    A table lookup when they span few values, instead of a binary search per row.
    """
    dense = _dense_span(values)
    if dense is None:
        return vocab.codes(values)
    lo, span = dense
    table = np.full(span, -1, dtype=np.int32)
    table[vocab.index - lo] = np.arange(len(vocab), dtype=np.int32)
    return table[values - lo]


def item_rows(items: pd.DataFrame | None, item_ids: np.ndarray) -> pd.DataFrame | None:
    """The rows of the item table `items` for `item_ids`, in that order, item_id first.

    An id the table lacks gets a row of missing values; None when there is no table or it has
    no item_id column. (A Dataset's item table already has one row per id; a frame passed in
    from elsewhere keeps its first row of an id.)
    """
    if items is None or "item_id" not in items.columns:
        return None
    index = pd.Index(np.asarray(item_ids), name="item_id")
    return items.drop_duplicates("item_id").set_index("item_id").reindex(index).reset_index()


def _unique_ids(table: pd.DataFrame | None, key: str, label: str, name: str
                ) -> pd.DataFrame | None:
    """`table` with the first row of each `key` (a warning names how many were dropped)."""
    if table is None or key not in table.columns:
        return table
    dup = table[key].duplicated()
    if not dup.any():
        return table
    logger.warning("%s: the %s table has %d row(s) whose %s occurred before (e.g. %s, row %d); "
                   "kept the first row of each", name, label, int(dup.sum()), key,
                   table[key].to_numpy()[_first(dup.to_numpy())], _first(dup.to_numpy()))
    return table[~dup].reset_index(drop=True)


def _check_scale(scale: object, source: str) -> tuple[float, float] | None:
    if scale is None:
        return None
    try:
        lo, hi = (float(v) for v in scale)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise DataError(f"{source}: rating_scale must be (lowest, highest), got {scale!r}"
                        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise DataError(f"{source}: rating_scale must be finite with lowest <= highest, got "
                        f"{scale!r}")
    return (lo, hi)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Ratings and side information of one release (or one part of it, after a split).

    The module docstring gives the policies for duplicated ratings, unknown ids and values.

    Attributes:
        ratings: one row per (user, item) rating: user_id int32, item_id int32, rating float32,
            timestamp int64 (unix seconds; 0 when unknown). Original ids, never codes.
        items: item_id, title, year (float, NaN when unknown), genres (tuple of str) — or None.
        users: user_id, age, gender, occupation, zip — or None where the release has no users.
        tags: user_id, item_id, tag, timestamp — or None.
        links: item_id, imdb_id, tmdb_id — or None.
        name: release name ("ml-100k") or a label for custom data.
        rating_scale: (lowest, highest) rating of the release, for clipping and plots; when
            given, every rating must lie inside it.
        locate: (constructor only, not stored) maps a 0-based row of `ratings` to where it was
            read ("ratings.csv:12"), for messages; loaders pass it. Default "<source>: row N".

    Raises:
        DataError: a rating row breaks the rules above; the message names where it is.
    """

    ratings: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    tags: pd.DataFrame | None = None
    links: pd.DataFrame | None = None
    name: str = "custom"
    rating_scale: tuple[float, float] | None = None
    source: str = field(default="", repr=False)
    locate: InitVar[Locator | None] = None

    def __post_init__(self, locate: Locator | None) -> None:
        source = self.source or self.name
        scale = _check_scale(self.rating_scale, source)
        ratings = _coerce_ratings(self.ratings, source, scale, locate)
        object.__setattr__(self, "ratings", ratings)
        object.__setattr__(self, "items", _unique_ids(self.items, "item_id", "item", self.name))
        object.__setattr__(self, "users", _unique_ids(self.users, "user_id", "user", self.name))
        if scale is None and len(ratings):
            scale = (float(ratings["rating"].min()), float(ratings["rating"].max()))
        object.__setattr__(self, "rating_scale", scale)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, users={self.n_users}, items={self.n_items}, "
                f"ratings={self.n_ratings})")

    # --- sizes and ids -------------------------------------------------------------------------
    @property
    def n_ratings(self) -> int:
        """Number of ratings (rows of `ratings`)."""
        return len(self.ratings)

    @property
    def n_users(self) -> int:
        """Number of users (the size of the user vocabulary)."""
        return len(self.user_vocab)

    @property
    def n_items(self) -> int:
        """Number of items (the size of the item vocabulary)."""
        return len(self.item_vocab)

    @property
    def density(self) -> float:
        """Share of the users x items cells that hold a rating (0.0 when there are none)."""
        cells = self.n_users * self.n_items
        return self.n_ratings / cells if cells else 0.0

    @cached_property
    def user_vocab(self) -> Vocabulary:
        """Users that have at least one rating in this dataset."""
        return Vocabulary(_distinct_ids(self.ratings["user_id"].to_numpy()), kind="user")

    @cached_property
    def item_vocab(self) -> Vocabulary:
        """Items that have at least one rating in this dataset."""
        return Vocabulary(_distinct_ids(self.ratings["item_id"].to_numpy()), kind="item")

    @cached_property
    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(user_codes, item_codes) of every rating row, in this dataset's own vocabularies."""
        return (_own_codes(self.ratings["user_id"].to_numpy(), self.user_vocab),
                _own_codes(self.ratings["item_id"].to_numpy(), self.item_vocab))

    @cached_property
    def fingerprint(self) -> str:
        """sha256 (first 16 hex digits) of the ratings' bytes: same data, same fingerprint."""
        h = hashlib.sha256()
        for col in RATING_COLUMNS:
            h.update(np.ascontiguousarray(self.ratings[col].to_numpy()).tobytes())
        return h.hexdigest()[:16]

    def matrix(self, value: str = "rating") -> sp.csr_matrix:
        """Users x items CSR matrix in this dataset's codes.

        Args:
            value: "rating" (the rating values) or "binary" (1.0 for every rating).
        """
        cache = self.__dict__.setdefault("_matrix_cache", {})
        if value not in cache:
            if value not in ("rating", "binary"):
                raise ValueError(f"value must be 'rating' or 'binary', not {value!r}")
            u, i = self.codes
            data = (self.ratings["rating"].to_numpy(np.float32) if value == "rating"
                    else np.ones(len(u), dtype=np.float32))
            m = sp.csr_matrix((data, (u, i)), shape=(self.n_users, self.n_items), dtype=np.float32)
            m.sum_duplicates()
            m.sort_indices()
            cache[value] = m
        return cache[value]

    # --- side information ----------------------------------------------------------------------
    @property
    def genres(self) -> list[str]:
        """Sorted list of the genres that occur in `items` (empty without an item table)."""
        if self.items is None or "genres" not in self.items:
            return []
        return sorted({g for gs in self.items["genres"] for g in gs})

    def genre_matrix(self, item_ids: np.ndarray, genres: list[str] | None = None) -> sp.csr_matrix:
        """len(item_ids) x len(genres) binary CSR; rows of items without metadata are empty."""
        genres = self.genres if genres is None else genres
        col = {g: j for j, g in enumerate(genres)}
        if self.items is None:
            return sp.csr_matrix((len(item_ids), len(genres)), dtype=np.float32)
        lookup = dict(zip(self.items["item_id"].to_numpy(), self.items["genres"], strict=True))
        rows, cols = [], []
        for r, iid in enumerate(np.asarray(item_ids).tolist()):
            for g in lookup.get(iid, ()):
                if g in col:
                    rows.append(r)
                    cols.append(col[g])
        data = np.ones(len(rows), dtype=np.float32)
        return sp.csr_matrix((data, (rows, cols)), shape=(len(item_ids), len(genres)))

    def to_heterodata(self, *, people: bool | None = None,  # noqa: ANN201 - optional extra
                      max_actors: int = 3):
        """This dataset as a PyG `HeteroData`; extra `graph`.

        User and movie nodes with `rates` edges, plus "person" nodes and `directed_by` /
        `acted_in_by` edges when the item table lists people (`people=None`: when present;
        True: required; False: never) — see `movierec.data.pyg.to_heterodata`.
        """
        from movierec.data.pyg import to_heterodata

        return to_heterodata(self, people=people, max_actors=max_actors)

    # --- derived datasets ----------------------------------------------------------------------
    def with_ratings(self, ratings: pd.DataFrame, name: str | None = None) -> Dataset:
        """A new Dataset with other ratings and the same side tables (for splits and filters)."""
        return replace(self, ratings=ratings.reset_index(drop=True),
                       name=self.name if name is None else name)

    def filter(
        self,
        *,
        min_user_ratings: int = 0,
        min_item_ratings: int = 0,
        kcore: int = 0,
        min_rating: float | None = None,
        require_genres: bool = False,
        min_year: int | None = None,
        max_year: int | None = None,
    ) -> Dataset:
        """Return a filtered copy; see `movierec.data.filters.apply_filters` for the order."""
        from movierec.data.filters import apply_filters

        return apply_filters(self, min_user_ratings=min_user_ratings,
                             min_item_ratings=min_item_ratings, kcore=kcore, min_rating=min_rating,
                             require_genres=require_genres, min_year=min_year, max_year=max_year)
