"""The immutable Dataset: ratings plus whatever side tables a release has."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.data.vocab import Vocabulary
from movierec.errors import DataError

RATING_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
RATING_DTYPES = {"user_id": np.int32, "item_id": np.int32, "rating": np.float32,
                 "timestamp": np.int64}


def _coerce_ratings(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check columns and values of a ratings frame and return it with the canonical dtypes."""
    missing = [c for c in ("user_id", "item_id", "rating") if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: ratings lack column(s) {missing}; found {list(frame.columns)}")
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for col in RATING_COLUMNS:
        if col == "timestamp" and col not in frame.columns:
            out[col] = np.zeros(len(frame), dtype=np.int64)
            continue
        values = frame[col].to_numpy()
        if col in ("user_id", "item_id", "timestamp"):
            if values.dtype.kind == "f":
                bad = ~np.isfinite(values) | (values != np.round(values))
                if bad.any():
                    row = int(np.flatnonzero(bad)[0])
                    raise DataError(f"{source}: row {row}: {col} {values[row]!r} is not an integer")
            elif values.dtype.kind not in "iu":
                raise DataError(f"{source}: column {col} must be integer, found {values.dtype}")
        else:
            values = values.astype(np.float64, copy=False)
            bad = ~np.isfinite(values)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(f"{source}: row {row}: rating {values[row]!r} is not a finite "
                                "number")
        if col in ("user_id", "item_id"):
            info = np.iinfo(np.int32)
            if values.size and (values.min() < info.min or values.max() > info.max):
                raise DataError(f"{source}: column {col} does not fit in int32")
        out[col] = values.astype(RATING_DTYPES[col])
    return out


@dataclass(frozen=True, eq=False)
class Dataset:
    """Ratings and side information of one release (or one part of it, after a split).

    Attributes:
        ratings: one row per (user, item) rating: user_id int32, item_id int32, rating float32,
            timestamp int64 (unix seconds; 0 when unknown). Original ids, never codes.
        items: item_id, title, year (float, NaN when unknown), genres (tuple of str) — or None.
        users: user_id, age, gender, occupation, zip — or None where the release has no users.
        tags: user_id, item_id, tag, timestamp — or None.
        links: item_id, imdb_id, tmdb_id — or None.
        name: release name ("ml-100k") or a label for custom data.
        rating_scale: (lowest, highest) rating of the release, for clipping and plots.
    """

    ratings: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    tags: pd.DataFrame | None = None
    links: pd.DataFrame | None = None
    name: str = "custom"
    rating_scale: tuple[float, float] | None = None
    source: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        ratings = _coerce_ratings(self.ratings, self.source or self.name)
        object.__setattr__(self, "ratings", ratings)
        if self.rating_scale is None and len(ratings):
            scale = (float(ratings["rating"].min()), float(ratings["rating"].max()))
            object.__setattr__(self, "rating_scale", scale)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, users={self.n_users}, items={self.n_items}, "
                f"ratings={self.n_ratings})")

    # --- sizes and ids -------------------------------------------------------------------------
    @property
    def n_ratings(self) -> int:
        return len(self.ratings)

    @property
    def n_users(self) -> int:
        return len(self.user_vocab)

    @property
    def n_items(self) -> int:
        return len(self.item_vocab)

    @property
    def density(self) -> float:
        cells = self.n_users * self.n_items
        return self.n_ratings / cells if cells else 0.0

    @cached_property
    def user_vocab(self) -> Vocabulary:
        """Users that have at least one rating in this dataset."""
        return Vocabulary(self.ratings["user_id"].to_numpy(), kind="user")

    @cached_property
    def item_vocab(self) -> Vocabulary:
        """Items that have at least one rating in this dataset."""
        return Vocabulary(self.ratings["item_id"].to_numpy(), kind="item")

    @cached_property
    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(user_codes, item_codes) of every rating row, in this dataset's own vocabularies."""
        return (self.user_vocab.codes(self.ratings["user_id"].to_numpy()),
                self.item_vocab.codes(self.ratings["item_id"].to_numpy()))

    @cached_property
    def fingerprint(self) -> str:
        """sha256 (first 16 hex digits) of the ratings' bytes: same data, same fingerprint."""
        h = hashlib.sha256()
        for col in RATING_COLUMNS:
            h.update(np.ascontiguousarray(self.ratings[col].to_numpy()).tobytes())
        return h.hexdigest()[:16]

    def matrix(self, value: str = "rating") -> sp.csr_matrix:
        """users x items CSR matrix in this dataset's codes.

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

    def to_heterodata(self):  # noqa: ANN201 - torch_geometric is an optional extra
        """This dataset as a PyG `HeteroData` (user/movie nodes, `rates` edges); extra `graph`."""
        from movierec.data.pyg import to_heterodata

        return to_heterodata(self)

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
