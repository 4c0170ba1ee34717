"""Bring-your-own rating files (CSV, TSV, `::`, `|`, `;`, whitespace, parquet) and the fast
delimited-file reader the MovieLens readers share.

Parsing goes through pyarrow; only when it fails (or leaves an integer field empty) is the file
scanned line by line, to name the first bad line in the error.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from movierec.data.dataset import Dataset
from movierec.errors import DataError

FieldKind = Literal["int", "float", "str", "any"]
WHITESPACE = "whitespace"
#: Separators tried by `sniff_separator`, in this order; whitespace comes last.
SEPARATORS = ("::", "\t", ",", ";", "|")
_CANONICAL = ("user_id", "item_id", "rating", "timestamp")
#: Header names recognized (case-insensitive, ignoring spaces, '_' and '-').
ALIASES: Mapping[str, str] = {
    **dict.fromkeys(("userid", "user", "uid", "users", "customerid"), "user_id"),
    **dict.fromkeys(("movieid", "itemid", "item", "movie", "iid", "items", "movies"), "item_id"),
    **dict.fromkeys(("rating", "ratings", "score", "stars", "value"), "rating"),
    **dict.fromkeys(("timestamp", "time", "ts", "datetime", "date", "unixtime"), "timestamp"),
}
_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")
_PYARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}


def _split(line: str, sep: str) -> list[str]:
    if sep == ",":
        return next(csv.reader([line]), [])
    if sep == WHITESPACE:
        return line.split()
    return line.split(sep)


def _bad_field(value: str, kind: FieldKind) -> str | None:
    """Why `value` is not of `kind`, or None when it is."""
    if kind == "int" and not _INT_RE.match(value):
        return "is not an integer"
    if kind == "float":
        try:
            if not math.isfinite(float(value)):
                return "is not a finite number"
        except ValueError:
            return "is not a number"
    return None


def locate_error(
    path: Path,
    sep: str,
    kinds: Sequence[FieldKind],
    *,
    header: bool = False,
    encoding: str = "utf-8",
    names: Sequence[str] | None = None,
    min_fields: int | None = None,
) -> None:
    """Scan a delimited file and raise DataError naming the first line that does not parse.

    Args:
        path: the file.
        sep: separator, or "whitespace".
        kinds: expected kind of each field, by position.
        header: whether line 1 is a header (skipped).
        encoding: text encoding.
        names: field names for messages (default: "field <n>").
        min_fields: fewest fields a line may have (default: exactly len(kinds)).
    """
    names = list(names) if names else [f"field {j + 1}" for j in range(len(kinds))]
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if (header and lineno == 1) or not line.strip():
                continue
            fields = _split(line, sep)
            ok_count = (len(fields) >= min_fields if min_fields is not None
                        else len(fields) == len(kinds))
            if not ok_count:
                want = f"at least {min_fields}" if min_fields is not None else str(len(kinds))
                raise DataError(f"{path}:{lineno}: expected {want} fields separated by {sep!r}, "
                                f"found {len(fields)}: {line[:120]!r}")
            for value, kind, name in zip(fields, kinds, names, strict=False):
                why = _bad_field(value, kind)
                if why:
                    raise DataError(f"{path}:{lineno}: {name} {value!r} {why}")


def read_delimited(
    path: str | os.PathLike[str],
    *,
    sep: str,
    kinds: Sequence[FieldKind],
    names: Sequence[str],
    header: bool = False,
    usecols: Sequence[str] | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a delimited text file fast (pyarrow) into a frame with the given column names.

    Args:
        path: the file.
        sep: one-character separator, "::", or "whitespace".
        kinds: kind of each field, by position ("int" and "float" are enforced, "any" inferred).
        names: name of each field, by position.
        header: whether line 1 is a header (skipped; `names` are used instead).
        usecols: the columns to return (default: all).
        encoding: text encoding of the file.

    Raises:
        DataError: naming the file and the first bad line.
    """
    path = Path(path)
    usecols = list(usecols) if usecols is not None else list(names)
    try:
        if sep == WHITESPACE:
            frame = _read_whitespace(path, names, kinds, header, usecols, encoding)
        else:
            frame = _read_arrow(path, sep, names, kinds, header, usecols, encoding)
    except (pa.ArrowInvalid, ValueError, UnicodeDecodeError) as exc:
        locate_error(path, sep, kinds, header=header, encoding=encoding, names=names)
        raise DataError(f"{path}: could not be parsed: {exc}") from exc
    for name, kind in zip(names, kinds, strict=True):
        if name in frame and kind in ("int", "float") and frame[name].isna().any():
            locate_error(path, sep, kinds, header=header, encoding=encoding, names=names)
            raise DataError(f"{path}: column {name} has empty values")
    return frame


def _read_arrow(path: Path, sep: str, names: Sequence[str], kinds: Sequence[FieldKind],
                header: bool, usecols: list[str], encoding: str) -> pd.DataFrame:
    source: str | io.BytesIO = str(path)
    delimiter = sep
    if len(sep) > 1:
        # pyarrow splits on one character; '\x1f' (unit separator) never occurs in text data.
        source = io.BytesIO(path.read_bytes().replace(sep.encode(), b"\x1f"))
        delimiter = "\x1f"
    types = {n: _PYARROW_TYPES[k] for n, k in zip(names, kinds, strict=True)
             if k in _PYARROW_TYPES and n in usecols}
    table = pacsv.read_csv(
        source,
        read_options=pacsv.ReadOptions(column_names=list(names), skip_rows=int(header),
                                       encoding=encoding),
        parse_options=pacsv.ParseOptions(delimiter=delimiter,
                                         quote_char='"' if sep == "," else False),
        convert_options=pacsv.ConvertOptions(column_types=types, include_columns=usecols,
                                             strings_can_be_null=False),
    )
    return table.to_pandas()


def _read_whitespace(path: Path, names: Sequence[str], kinds: Sequence[FieldKind], header: bool,
                     usecols: list[str], encoding: str) -> pd.DataFrame:
    dtypes = {n: {"int": "int64", "float": "float64", "str": "str"}[k]
              for n, k in zip(names, kinds, strict=True) if k != "any" and n in usecols}
    return pd.read_csv(path, sep=r"\s+", header=None, names=list(names), skiprows=int(header),
                       usecols=usecols, dtype=dtypes, encoding=encoding)


def _head_lines(path: Path, n: int = 20, encoding: str = "utf-8") -> list[str]:
    with open(path, "rb") as fh:
        data = fh.read(64 * 1024)
    text = data.decode(encoding, errors="replace")
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    if len(data) == 64 * 1024 and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut
    return [ln for ln in lines if ln.strip()][:n]


def sniff_separator(lines: Sequence[str], path: str | os.PathLike[str] = "<data>") -> str:
    """The separator that splits every sample line into the same number (≥ 2) of fields.

    Raises:
        DataError: no candidate separator fits.
    """
    for sep in (*SEPARATORS, WHITESPACE):
        counts = {len(_split(line, sep)) for line in lines}
        if len(counts) == 1 and counts.pop() >= 2:
            return sep
    raise DataError(f"{path}: could not detect the separator (tried '::', tab, ',', ';', '|', "
                    f"whitespace); pass sep=...; first line: {lines[0][:80] if lines else ''!r}")


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def _resolve_columns(
    path: Path, first: Sequence[str], header: bool, columns: Mapping[str | int, str] | None
) -> dict[int, str]:
    """Map file column positions to canonical names."""
    if columns is not None:
        out: dict[int, str] = {}
        for key, canon in columns.items():
            if canon not in _CANONICAL:
                raise DataError(f"columns: {canon!r} is not one of {_CANONICAL}")
            if isinstance(key, int):
                if not 0 <= key < len(first):
                    raise DataError(f"{path}: column position {key} out of range "
                                    f"(the file has {len(first)} columns)")
                out[key] = canon
            else:
                if not header:
                    raise DataError(f"{path}: column name {key!r} given but the file has no "
                                    "header; use positions")
                matches = [j for j, h in enumerate(first) if h.strip() == key]
                if not matches:
                    raise DataError(f"{path}: no column {key!r} in header {list(first)}")
                out[matches[0]] = canon
    elif header:
        out = {}
        for j, h in enumerate(first):
            canon = ALIASES.get(_norm(h))
            if canon is not None and canon not in out.values():
                out[j] = canon
        if not {"user_id", "item_id"} <= set(out.values()):
            out = {j: c for j, c in enumerate(_CANONICAL[: len(first)])}
    else:
        out = {j: c for j, c in enumerate(_CANONICAL[: len(first)])}
    missing = {"user_id", "item_id"} - set(out.values())
    if missing:
        raise DataError(f"{path}: no column for {sorted(missing)}; pass columns={{...}}")
    return out


def _timestamps(values: pd.Series, source: str) -> np.ndarray:
    """Unix seconds (int64) from integer, integral float or date-string values."""
    arr = values.to_numpy()
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    try:
        try:
            parsed = pd.to_datetime(values, utc=True, format="ISO8601")
        except (ValueError, TypeError):
            parsed = pd.to_datetime(values, utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: timestamp column is neither unix seconds nor dates: {exc}"
                        ) from exc
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataError(f"{source}: row {row}: empty timestamp")
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=np.int64)


def load_ratings_file(
    path: str | os.PathLike[str],
    *,
    sep: str | None = None,
    header: bool | None = None,
    columns: Mapping[str | int, str] | None = None,
    rating_scale: tuple[float, float] | None = None,
    name: str | None = None,
) -> Dataset:
    """Load a ratings file of your own as a Dataset.

    Args:
        path: a delimited text file or a parquet file (`.parquet`/`.pq`).
        sep: separator ("\\t", ",", "::", "|", ";", "whitespace"); None sniffs it from the
            first lines.
        header: whether line 1 is a header; None decides from the first line (a header has a
            non-numeric field).
        columns: the file's columns (header names, or 0-based positions) mapped to "user_id",
            "item_id", "rating", "timestamp". Default: recognized header names (userId, movieId,
            user, item, rating, timestamp, ...), else positions user, item, rating[, timestamp].
            Without a rating column every rating is 1.0 (implicit feedback); without a
            timestamp column timestamps are 0.
        rating_scale: (lowest, highest); default: the observed range.
        name: dataset name; default: the file's stem.

    Raises:
        DataError: the file cannot be read; the message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = name or path.stem
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = _load_parquet(path, columns)
    else:
        frame = _load_text(path, sep, header, columns)
    if "rating" not in frame:
        frame["rating"] = np.ones(len(frame), dtype=np.float32)
    if "timestamp" in frame:
        frame["timestamp"] = _timestamps(frame["timestamp"], str(path))
    return Dataset(frame, name=name, rating_scale=rating_scale, source=str(path))


def _load_parquet(path: Path, columns: Mapping[str | int, str] | None) -> pd.DataFrame:
    try:
        raw = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise DataError(f"{path}: not a readable parquet file: {exc}") from exc
    first = [str(c) for c in raw.columns]
    mapping = _resolve_columns(path, first, True, columns)
    return pd.DataFrame({canon: raw.iloc[:, j].to_numpy() for j, canon in mapping.items()})


def _load_text(path: Path, sep: str | None, header: bool | None,
               columns: Mapping[str | int, str] | None) -> pd.DataFrame:
    lines = _head_lines(path)
    if not lines:
        raise DataError(f"{path}: the file is empty")
    if sep is None:
        sep = sniff_separator(lines, path)
    elif sep in (" ", r"\s+", WHITESPACE):
        sep = WHITESPACE
    first = [f.strip() for f in _split(lines[0], sep)]
    if header is None:
        if columns is not None and any(isinstance(k, str) for k in columns):
            header = True
        else:
            header = not all(_is_number(f) for f in first[: min(len(first), 3)])
    mapping = _resolve_columns(path, first, header, columns)
    n = len(first)
    names = [mapping.get(j, f"_col{j}") for j in range(n)]
    kinds: list[FieldKind] = [
        {"user_id": "int", "item_id": "int", "rating": "float"}.get(nm, "any")  # type: ignore[misc]
        for nm in names
    ]
    return read_delimited(path, sep=sep, kinds=kinds, names=names, header=header,
                          usecols=[nm for nm in names if nm in _CANONICAL])
