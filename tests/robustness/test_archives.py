"""Truncated, corrupt and hostile zip archives: a DownloadError, and nothing written anywhere.

tests/data/test_download.py covers `..`, absolute paths, symlinks, a declared-size bomb and a
missing release folder; these add damaged streams, encryption, unknown compression, a member
that holds more than it declares, name clashes, and a whole-tree check that nothing was written
outside the cache folder.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from movierec.data.download import extract
from movierec.errors import DownloadError

PAYLOAD = b"1\t2\t3\t881250949\n" * 2000


def _zip(entries: list[tuple[str, bytes]]) -> bytearray:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return bytearray(buf.getvalue())


def _central(raw: bytearray) -> int:
    return raw.rfind(b"PK\x01\x02")


def _corrupt_stream(raw: bytearray) -> bytearray:
    raw[60:90] = b"\x00" * 30  # inside the deflate stream of the first member
    return raw


def _encrypted(raw: bytearray) -> bytearray:
    raw[6] |= 1
    raw[_central(raw) + 8] |= 1
    return raw


def _unknown_method(raw: bytearray) -> bytearray:
    raw[8] = 99
    raw[_central(raw) + 10] = 99
    return raw


def _declares_less(raw: bytearray) -> bytearray:
    """The member holds 34 kB but declares 100 bytes: never write more than declared."""
    raw[22:26] = (100).to_bytes(4, "little")
    raw[_central(raw) + 24:_central(raw) + 28] = (100).to_bytes(4, "little")
    return raw


CASES = {
    "truncated": (lambda raw: raw[: len(raw) // 2], "not a readable zip archive"),
    "truncated-stream": (lambda raw: raw[:80] + raw[-22 - 56 - 14:], "cannot be extracted"),
    "corrupt-stream": (_corrupt_stream, "cannot be extracted"),
    "encrypted": (_encrypted, "is encrypted"),
    "unknown-compression": (_unknown_method, "compression method 99"),
    "declares-less": (_declares_less, "cannot be extracted|larger than"),
    "empty": (lambda raw: bytearray(), "not a readable zip archive"),
    "not-a-zip": (lambda raw: bytearray(b"<html>404</html>"), "not a readable zip archive"),
}


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_archives_are_refused_and_leave_nothing(tmp_path: Path, case: str) -> None:
    damage, message = CASES[case]
    archive = tmp_path / "in" / "ml-100k.zip"
    archive.parent.mkdir()
    archive.write_bytes(bytes(damage(_zip([("ml-100k/u.data", PAYLOAD)]))))
    before = _tree(tmp_path)
    with pytest.raises(DownloadError, match=message):
        extract(archive, tmp_path / "cache", "ml-100k", max_bytes=1 << 20)
    after = _tree(tmp_path)
    assert after - before <= {"cache"}  # at most the (empty) cache folder itself
    assert not (tmp_path / "cache").exists() or not os.listdir(tmp_path / "cache")


@pytest.mark.parametrize("entries", [
    [("ml-100k", b"a file"), ("ml-100k/u.data", PAYLOAD)],  # a file where a folder must go
    [("ml-100k/u.data/", b""), ("ml-100k/u.data", PAYLOAD)],  # a folder where a file must go
])
def test_name_clashes_are_refused(tmp_path: Path, entries: list[tuple[str, bytes]]) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(bytes(_zip(entries)))
    with pytest.raises(DownloadError, match="cannot be extracted"):
        extract(archive, tmp_path / "cache", "ml-100k")
    assert os.listdir(tmp_path / "cache") == []


def test_a_member_without_a_name_is_refused(tmp_path: Path) -> None:
    # found by atheris: ZipInfo("").is_dir() raised IndexError inside zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", PAYLOAD)
        zf.writestr(zipfile.ZipInfo(""), b"x")
    (tmp_path / "a.zip").write_bytes(buf.getvalue())
    with pytest.raises(DownloadError, match="empty name"):
        extract(tmp_path / "a.zip", tmp_path / "cache", "ml-100k")


def test_a_good_archive_writes_only_its_folder(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(bytes(_zip([("ml-100k/u.data", PAYLOAD), ("ml-100k/sub/x", b"x")])))
    folder = extract(archive, tmp_path / "cache", "ml-100k")
    assert _tree(tmp_path) == {"a.zip", "cache", "cache/ml-100k", "cache/ml-100k/u.data",
                               "cache/ml-100k/sub", "cache/ml-100k/sub/x",
                               "cache/ml-100k/.movierec-complete"}
    assert (folder / "u.data").read_bytes() == PAYLOAD
