"""Vocabulary: original ids <-> contiguous integer codes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np

from movierec.errors import UnknownIdError


class Vocabulary:
    """A sorted set of original ids; the code of an id is its position.

    Args:
        ids: original ids (any order, duplicates allowed); stored sorted and unique as int64.
        kind: what the ids are ("user" or "item"), used in error messages.
    """

    def __init__(self, ids: Iterable[int] | np.ndarray, kind: str = "id") -> None:
        arr = np.unique(np.asarray(ids, dtype=np.int64))
        arr.setflags(write=False)
        self._ids = arr
        self.kind = kind

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"Vocabulary({self.kind}, n={len(self)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and np.array_equal(self._ids, other._ids)

    __hash__ = None  # type: ignore[assignment]

    def __contains__(self, id_: object) -> bool:
        try:
            return bool(self.codes(np.asarray([id_]), missing="negative")[0] >= 0)
        except (TypeError, ValueError):
            return False

    @property
    def index(self) -> np.ndarray:
        """The original ids in code order (read-only int64 array)."""
        return self._ids

    def codes(
        self, ids: Iterable[int] | np.ndarray | int, missing: Literal["error", "negative"] = "error"
    ) -> np.ndarray:
        """Map original ids to codes (int32).

        Args:
            ids: original ids.
            missing: "error" raises UnknownIdError naming the first unknown id; "negative" maps
                unknown ids to -1.
        """
        arr = np.atleast_1d(np.asarray(ids))
        if arr.dtype.kind not in "iu":
            if arr.size == 0:
                arr = arr.astype(np.int64)
            else:
                raise UnknownIdError(f"{self.kind} ids must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        pos = np.searchsorted(self._ids, arr)
        pos_clipped = np.minimum(pos, max(len(self._ids) - 1, 0))
        found = (pos < len(self._ids)) & (self._ids[pos_clipped] == arr) if len(self._ids) else (
            np.zeros(arr.shape, dtype=bool)
        )
        if not found.all():
            if missing == "error":
                bad = arr[~found][:5].tolist()
                raise UnknownIdError(f"unknown {self.kind} id(s): {bad}")
            pos = np.where(found, pos, -1)
        return pos.astype(np.int32)

    def ids(self, codes: Iterable[int] | np.ndarray) -> np.ndarray:
        """Map codes back to original ids (int64)."""
        c = np.asarray(codes, dtype=np.int64)
        if c.size and (c.min() < 0 or c.max() >= len(self._ids)):
            raise UnknownIdError(f"{self.kind} code out of range [0, {len(self._ids)})")
        return self._ids[c]
