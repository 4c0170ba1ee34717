"""Bring-your-own rating files and the fast delimited-file reader the MovieLens readers share.

Formats: CSV, TSV, `::`, `|`, `;`, whitespace, parquet.

Parsing goes through pyarrow; only when it fails (or leaves a numeric field empty or infinite) is
the file scanned line by line, to name the first bad line in the error. Checks on values (ids that
do not fit int32, ratings outside the scale, timestamps after 2100, duplicated pairs; see
`movierec.data.dataset`) name the file and line too, through `row_locator`.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from movierec.data.dataset import Dataset, Locator
from movierec.errors import DataError

logger = logging.getLogger(__name__)

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
# What pyarrow reads as an integer; ASCII blanks only (\s would admit "\x1c", which int() refuses).
_INT_RE = re.compile(r"^[ \t]*-?[0-9]+[ \t]*$")
_PYARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
_NEWLINE = re.compile(r"\r\n|\r|\n")
_INT64 = np.iinfo(np.int64)


def _split(line: str, sep: str) -> list[str]:
    if sep == ",":
        try:
            return next(csv.reader([line]), [])
        except csv.Error:  # a stray quote or NUL: count it as one field, the parser will refuse
            return [line]
    if sep == WHITESPACE:
        return line.split()
    return line.split(sep)


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    r"""(line number from 1, bytes without the line end) of a file; \n, \r\n and \r end lines."""
    lineno = 0
    with open(path, "rb") as fh:
        for chunk in fh:
            parts = chunk.rstrip(b"\n").split(b"\r")
            if len(parts) > 1 and parts[-1] == b"":
                parts.pop()  # "\r\n" or a trailing "\r" ends the line, it starts no new one
            for part in parts:
                lineno += 1
                yield lineno, part


def row_locator(path: Path, *, header: bool) -> Locator:
    """A function mapping a 0-based data row (as pyarrow reads it) to "path:line"."""

    def locate(row: int) -> str:
        seen = -1
        for lineno, raw in iter_lines(path):
            if (header and lineno == 1) or not raw.strip():
                continue  # pyarrow skips the header and blank lines
            seen += 1
            if seen == row:
                return f"{path}:{lineno}"
        return f"{path}: row {row}"

    return locate


def _bad_field(value: str, kind: FieldKind) -> str | None:
    """Why `value` is not of `kind`, or None when it is."""
    if kind == "int":
        if not _INT_RE.match(value):
            return "is not an integer"
        if not _INT64.min <= int(value.strip(" \t")) <= _INT64.max:
            return "is out of range"
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
    for lineno, raw in iter_lines(path):
        try:
            line, valid = raw.decode(encoding), True
        except UnicodeDecodeError:
            line, valid = raw.decode(encoding, errors="replace"), False
        if (header and lineno == 1) or not line.strip():
            continue
        fields = _split(line, sep)
        if not valid and any("\ufffd" in value for value, kind in zip(fields, kinds, strict=False)
                             if kind != "any"):
            raise DataError(f"{path}:{lineno}: not valid {encoding} text: {raw[:80]!r}")
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
    if not sep or any(c in sep for c in "\r\n\""):
        raise DataError(f"{path}: unusable separator {sep!r}")
    usecols = list(usecols) if usecols is not None else list(names)
    try:
        if sep == WHITESPACE:
            frame = _read_whitespace(path, names, kinds, header, usecols, encoding)
        else:
            frame = _read_arrow(path, sep, names, kinds, header, usecols, encoding)
    except (pa.ArrowInvalid, ValueError, UnicodeDecodeError, OverflowError) as exc:
        locate_error(path, sep, kinds, header=header, encoding=encoding, names=names)
        n_lines = sum(1 for _, raw in iter_lines(path) if raw.strip())
        if n_lines == 0:
            raise DataError(f"{path}: the file is empty") from None
        if header and n_lines == 1:
            raise DataError(f"{path}: no ratings (only a header)") from None
        raise DataError(f"{path}: could not be parsed: {exc}") from exc
    for name, kind in zip(names, kinds, strict=True):
        if name not in frame or kind not in ("int", "float"):
            continue
        values = frame[name].to_numpy()
        bad = frame[name].isna().to_numpy()
        if values.dtype.kind == "f":
            bad = bad | ~np.isfinite(values)
        if bad.any():
            locate_error(path, sep, kinds, header=header, encoding=encoding, names=names)
            where = row_locator(path, header=header)(int(np.flatnonzero(bad)[0]))
            raise DataError(f"{where}: {name} {values[np.flatnonzero(bad)[0]]} is empty or not "
                            "a finite number")
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
    lines = _NEWLINE.split(text)
    if len(data) == 64 * 1024 and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut
    return [ln for ln in lines if ln.strip()][:n]


def sniff_separator(lines: Sequence[str], path: str | os.PathLike[str] = "<data>") -> str:
    """The separator that splits the sample lines into the same number (≥ 2) of fields.

    Every line if one does, else most of them.

    Raises:
        DataError: no candidate separator fits.
    """
    best, best_lines = None, 0
    for sep in (*SEPARATORS, WHITESPACE):
        counts = Counter(len(_split(line, sep)) for line in lines)
        n_fields, n_lines = counts.most_common(1)[0] if counts else (0, 0)
        if n_fields >= 2 and n_lines == len(lines):
            return sep
        if n_fields >= 2 and n_lines > best_lines:
            best, best_lines = sep, n_lines
    # Most lines agree: take that separator and let the reader name the line that does not.
    if best is not None and best_lines >= 2 and best_lines > len(lines) / 2:
        return best
    raise DataError(f"{path}: could not detect the separator (tried '::', tab, ',', ';', '|', "
                    "whitespace); pass sep=... (--sep on the command line); first line: "
                    f"{lines[0][:80] if lines else ''!r}")


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
            if canon in out.values():
                raise DataError(f"columns: {canon!r} is given for two columns")
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
            alias = ALIASES.get(_norm(h))
            if alias is not None and alias not in out.values():
                out[j] = alias
        if not {"user_id", "item_id"} <= set(out.values()):
            out = {j: c for j, c in enumerate(_CANONICAL[: len(first)])}
    else:
        out = {j: c for j, c in enumerate(_CANONICAL[: len(first)])}
    missing = {"user_id", "item_id"} - set(out.values())
    if missing:
        raise DataError(f"{path}: no column for {sorted(missing)}; pass columns={{...}}")
    return out


def _timestamps(values: pd.Series, where: Locator) -> np.ndarray:
    """Unix seconds from integers, numbers (fractions of a second dropped) or date strings.

    Dates are ISO 8601 or another common format, UTC unless they say otherwise. The range
    (before 2100) is checked by `Dataset`; a value that is neither a number nor a date is an
    error naming its row.
    """
    arr = values.to_numpy()
    if arr.dtype.kind in "iu":
        return arr
    if arr.dtype.kind == "f":
        return np.floor(arr)  # non-finite values stay and are refused, with their row, by Dataset
    if arr.dtype.kind == "M" or isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = pd.to_datetime(values, utc=True)
    else:
        return _parse_timestamps(values, where)
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise DataError(f"{where(int(np.flatnonzero(bad)[0]))}: timestamp is empty")
    return _epoch_seconds(parsed)


def _epoch_seconds(parsed: pd.Series) -> np.ndarray:
    """Unix seconds of UTC datetimes, in any resolution (year 9999 does not overflow)."""
    naive = parsed.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return naive.astype("datetime64[s]").astype(np.int64)


def _parse_timestamps(values: pd.Series, where: Locator) -> np.ndarray:
    """Seconds (float, floored) from text or objects: numbers as unix seconds, else dates."""
    try:
        numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    except (TypeError, ValueError):  # objects that are not scalars (lists, bytes...)
        numeric = np.full(len(values), np.nan)
    seconds = np.floor(numeric)
    todo = np.isnan(numeric)
    for fmt in ("ISO8601", "mixed"):
        idx = np.flatnonzero(todo)
        if not len(idx):
            break
        try:
            parsed = pd.to_datetime(values.iloc[idx], utc=True, format=fmt, errors="coerce")
        except (ValueError, TypeError, OverflowError):
            continue
        ok = parsed.notna().to_numpy()
        seconds[idx[ok]] = _epoch_seconds(parsed[ok])
        todo[idx[ok]] = False
    if todo.any():
        row = int(np.flatnonzero(todo)[0])
        value = values.iloc[row]
        why = ("is empty" if value is None or str(value).strip() in ("", "nan", "NaN")
               else "is not valid utf-8 text" if isinstance(value, bytes)
               else "is neither unix seconds nor a date")
        raise DataError(f"{where(row)}: timestamp {value!r} {why}")
    return seconds


def warn_future(ds: Dataset, where: Locator) -> None:
    """Log a warning when ratings are dated after now (clock skew, synthetic data); they stay.

    Timestamps from 2100 on are refused by `Dataset` (those are not seconds at all).
    """
    stamps = ds.ratings["timestamp"].to_numpy()
    late = stamps > time.time() + 86_400
    if late.any():
        row = int(np.flatnonzero(late)[0])
        when = pd.Timestamp(int(stamps[row]), unit="s", tz="UTC").date()
        logger.warning("%d rating(s) are dated in the future, e.g. %s (%s); kept as they are",
                       int(late.sum()), where(row), when)


def load_ratings_file(
    path: str | os.PathLike[str],
    *,
    sep: str | None = None,
    header: bool | None = None,
    columns: Mapping[str | int, str] | None = None,
    rating_scale: tuple[float, float] | None = None,
    name: str | None = None,
) -> Dataset:
    r"""Load a ratings file of your own as a Dataset.

    Args:
        path: a delimited text file or a parquet file (`.parquet`/`.pq`).
        sep: separator ("\t", ",", "::", "|", ";", "whitespace"); None sniffs it from the
            first lines.
        header: whether line 1 is a header; None decides from the first line (a header has a
            non-numeric field).
        columns: the file's columns (header names, or 0-based positions) mapped to "user_id",
            "item_id", "rating", "timestamp". Default: recognized header names (userId, movieId,
            user, item, rating, timestamp, ...), else positions user, item, rating[, timestamp].
            Without a rating column every rating is 1.0 (implicit feedback); without a
            timestamp column timestamps are 0.
        rating_scale: (lowest, highest); every rating must lie inside it. Default: the
            observed range (any finite rating, negative ones included).
        name: dataset name; default: the file's stem.

    A (user, item) pair rated twice keeps its latest rating (by timestamp, the later line on
    ties) with a warning; ratings dated after now are kept with a warning. See
    `movierec.data.dataset` for these policies.

    Raises:
        DataError: the file cannot be read, is empty, or a value is unusable (an id that is not
            an int32 integer, a rating that is not finite or outside `rating_scale`, a timestamp
            that is not a number or date, or is after 2100); the message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if sep is not None and (not sep or any(c in sep for c in "\r\n\"")):
        raise DataError(f"{path}: unusable separator {sep!r}")
    name = name or path.stem
    where: Locator
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = _load_parquet(path, columns)
        where = lambda row: f"{path}: row {row}"  # noqa: E731
    else:
        frame, has_header = _load_text(path, sep, header, columns)
        where = row_locator(path, header=has_header)
    if len(frame) == 0:
        raise DataError(f"{path}: no ratings (only a header or blank lines)")
    if "rating" not in frame:
        frame["rating"] = np.ones(len(frame), dtype=np.float32)
    if "timestamp" in frame:
        frame["timestamp"] = _timestamps(frame["timestamp"], where)
    ds = Dataset(frame, name=name, rating_scale=rating_scale, source=str(path), locate=where)
    warn_future(ds, where)
    return ds


def _load_parquet(path: Path, columns: Mapping[str | int, str] | None) -> pd.DataFrame:
    try:
        raw = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise DataError(f"{path}: not a readable parquet file: {exc}") from exc
    first = [str(c) for c in raw.columns]
    mapping = _resolve_columns(path, first, True, columns)
    return pd.DataFrame({canon: raw.iloc[:, j].to_numpy() for j, canon in mapping.items()})


def _load_text(path: Path, sep: str | None, header: bool | None,
               columns: Mapping[str | int, str] | None) -> tuple[pd.DataFrame, bool]:
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
    frame = read_delimited(path, sep=sep, kinds=kinds, names=names, header=header,
                           usecols=[nm for nm in names if nm in _CANONICAL])
    return frame, header
