"""Validation of ratings and impressions before anything is written: all rows or none."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

MAX_ID = 2**31 - 1  # the datasets keep ids in int32
MAX_TIMESTAMP = 4_102_444_800  # 2100-01-01: a later value is milliseconds, not seconds
RATING_COLUMNS = ("user_id", "item_id", "rating", "timestamp", "source", "updated_at", "list_id")
FRAME_DTYPES = {"user_id": np.int32, "item_id": np.int32, "rating": np.float32,
                "timestamp": np.int64, "source": object, "updated_at": np.float64,
                "list_id": object}


def check_id(value: Any, field: str, where: str = "") -> int:
    """`value` as an int id in [0, 2**31 - 1]; ValueError naming the field otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{where}{field} must be an integer id, found {value!r}")
    if not 0 <= int(value) <= MAX_ID:
        raise ValueError(f"{where}{field} {value} is outside 0..{MAX_ID}")
    return int(value)


def check_rating(value: Any, scale: tuple[float, float] | None, where: str = "") -> float:
    """`value` as a finite float inside `scale` (inclusive); ValueError naming the field else."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where}rating must be a number, found {value!r}")
    rating = float(value)
    if not math.isfinite(rating):
        raise ValueError(f"{where}rating must be finite, found {rating}")
    if scale is not None and not scale[0] <= rating <= scale[1]:
        raise ValueError(f"{where}rating {rating:g} is outside the scale "
                         f"{scale[0]:g}..{scale[1]:g}")
    return rating


def check_timestamp(value: Any, where: str = "") -> int:
    """`value` as whole unix seconds between 1970 and 2100; ValueError otherwise."""
    # A bool flag, not an isinstance narrowing: typeshed's numbers.Real has no __int__.
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not real or not math.isfinite(float(value)) or float(value) != int(value):
        raise ValueError(f"{where}timestamp must be whole unix seconds, found {value!r}")
    if not 0 <= int(value) < MAX_TIMESTAMP:
        raise ValueError(f"{where}timestamp {value} is outside 1970..2100 (unix seconds)")
    return int(value)


def check_source(value: Any) -> str:
    """A non-empty label of at most 32 characters."""
    if not isinstance(value, str) or not 0 < len(value) <= 32:
        raise ValueError(f"source must be a non-empty string of at most 32 characters, "
                         f"found {value!r}")
    return value


def check_list_id(value: Any, where: str = "") -> str | None:
    """None, or an impressions list id of 1 to 64 characters."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise ValueError(f"{where}list_id must be a string of 1 to 64 characters, "
                         f"found {value!r}")
    return value


def rating_rows(rows: pd.DataFrame | Iterable[Mapping[str, Any]], *,
                scale: tuple[float, float] | None, max_rows: int, source: str,
                now: float) -> list[dict[str, Any]]:
    """Validated rows for the ratings table, the last one winning per (user, item).

    Raises:
        ValueError: the batch is larger than `max_rows`, or a row lacks a field or holds a bad
            value; the message names the row (0-based) and the field.
    """
    if isinstance(rows, pd.DataFrame):
        records: list[Mapping[str, Any]] = rows.to_dict("records")
    else:
        records = []
        for record in rows:
            records.append(record)
            if len(records) > max_rows:
                break
    if len(records) > max_rows:
        raise ValueError(f"batch has more than {max_rows} ratings (the maximum per batch); "
                         "split it")
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for i, record in enumerate(records):
        where = f"row {i}: "
        if not isinstance(record, Mapping):
            raise ValueError(f"{where}expected a mapping with user_id, item_id, rating, "
                             f"found {type(record).__name__}")
        missing = [f for f in ("user_id", "item_id", "rating") if f not in record]
        if missing:
            raise ValueError(f"{where}missing field {missing[0]}")
        row: dict[str, Any] = {"user_id": check_id(record["user_id"], "user_id", where),
               "item_id": check_id(record["item_id"], "item_id", where),
               "rating": check_rating(record["rating"], scale, where),
               "timestamp": check_timestamp(record.get("timestamp", int(now)), where),
               "source": check_source(record.get("source", source)),
               "updated_at": now, "list_id": check_list_id(record.get("list_id"), where)}
        out.pop((row["user_id"], row["item_id"]), None)  # re-insert: the later row wins
        out[row["user_id"], row["item_id"]] = row
    return list(out.values())


def to_frame(rows: Iterable[Any]) -> pd.DataFrame:
    """Ratings rows as a DataFrame with the datasets' column dtypes (plus source, updated_at)."""
    frame = pd.DataFrame(list(rows), columns=list(RATING_COLUMNS))
    return frame.astype(FRAME_DTYPES)
