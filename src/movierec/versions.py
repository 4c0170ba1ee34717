"""Versioned model folders under one root, and which of them is served: `DIR/current`.

Layout of a models root::

    DIR/v0001/  DIR/v0002/  ...   complete model folders (`Recommender.save`), never changed
    DIR/current                   pointer file: JSON {"version": "v0002", "previous": [...], ...}
    DIR/.lock                     advisory lock held while a version is written or switched
    DIR/.staging/                 versions being written (left over only by a killed writer)

The pointer is a small JSON file replaced whole with `os.replace` (`movierec.io.atomic_write_text`),
so a reader sees the old pointer or the new one, never a mix; a version folder is written in
`.staging/` and renamed to `vNNNN` only once complete, so `vNNNN` either does not exist or is
whole. A pointer file was chosen over a symlink because it is as atomic, works on every file
system and platform, and carries the history that `rollback` needs in the same atomic write.

`previous` lists the versions that were current before, oldest first: `rollback` goes back to
the last of them that still exists. `prune(keep=5)` removes all but the newest `keep` versions,
never the current one nor the one a rollback would go back to. Version numbers only grow: the
newest version is never pruned, so a number is never reused.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from movierec.errors import ArtifactError
from movierec.io import atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

    from movierec.models.base import Recommender

__all__ = ["POINTER", "Pointer", "VersionInfo", "current", "current_path", "list_versions",
           "next_version", "prune", "read_pointer", "rollback", "set_current", "version_info",
           "write_version"]

POINTER = "current"
STAGING = ".staging"
LOCK = ".lock"
_NAME = re.compile(r"^v(\d{4,})$")
_MAX_HISTORY = 100


@dataclass(frozen=True)
class Pointer:
    """The content of `DIR/current`.

    Attributes:
        version: the served version ("v0003").
        previous: versions that were current before, oldest first.
        updated_at: when the pointer was written (UTC, ISO 8601).
        reason: why it was switched ("train", "retrain", "rollback", "set").
    """

    version: str
    previous: tuple[str, ...] = ()
    updated_at: str = ""
    reason: str = ""


@dataclass(frozen=True)
class VersionInfo:
    """One version folder, summarized from its model.json."""

    version: str
    path: Path
    model: str
    trained_at: str | None
    metrics: dict[str, Any]
    current: bool
    note: str = ""


def _check_name(version: str) -> str:
    if not isinstance(version, str) or not _NAME.match(version):
        raise ValueError(f"version must look like v0001, found {version!r}")
    return version


def _number(version: str) -> int:
    return int(_check_name(version)[1:])


def _name(number: int) -> str:
    return f"v{number:04d}"


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold `root/.lock` (an advisory POSIX lock; a no-op where fcntl is missing)."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(root / LOCK, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --- reading --------------------------------------------------------------------------------
def list_versions(root: str | os.PathLike[str]) -> list[str]:
    """Complete version folders under `root` (`vNNNN` with a model.json), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p.name for p in root.iterdir()
             if _NAME.match(p.name) and p.is_dir() and (p / "model.json").is_file()]
    return sorted(found, key=_number)


def next_version(root: str | os.PathLike[str]) -> str:
    """The name the next version written under `root` gets (one past the largest, or v0001)."""
    root = Path(root)
    numbers = [_number(p.name) for p in root.iterdir() if _NAME.match(p.name)] \
        if root.is_dir() else []
    pointer = read_pointer(root)
    if pointer is not None:  # a hand-deleted newest folder must not give its number again
        numbers += [_number(v) for v in (pointer.version, *pointer.previous)]
    return _name(max(numbers, default=0) + 1)


def read_pointer(root: str | os.PathLike[str]) -> Pointer | None:
    """`DIR/current`, or None when there is none yet.

    Raises:
        ArtifactError: the file is not a pointer written by this module.
    """
    path = Path(root) / POINTER
    if not path.exists():
        return None
    if path.is_dir() or path.is_symlink():
        raise ArtifactError(f"{path}: expected a pointer file written by movierec, found a "
                            f"{'symlink' if path.is_symlink() else 'folder'}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        version = _check_name(data["version"])
        previous = tuple(_check_name(v) for v in data.get("previous", []))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: not a models-root pointer ({type(exc).__name__}: "
                            f"{exc}); expected JSON with \"version\": \"v0001\"") from None
    return Pointer(version, previous, str(data.get("updated_at", "")),
                   str(data.get("reason", "")))


def current(root: str | os.PathLike[str]) -> str | None:
    """The current version's name, or None when `root` has no pointer yet."""
    pointer = read_pointer(root)
    return None if pointer is None else pointer.version


def current_path(root: str | os.PathLike[str]) -> Path:
    """The current version's folder.

    Raises:
        ArtifactError: no pointer, or it names a folder that is missing.
    """
    root = Path(root)
    version = current(root)
    if version is None:
        raise ArtifactError(f"{root}: no current model version (no {POINTER} file); write one "
                            "with `movierec train ... --models-root DIR`")
    path = root / version
    if not (path / "model.json").is_file():
        raise ArtifactError(f"{root / POINTER} names {version}, but {path} is not a model "
                            "folder")
    return path


def version_info(root: str | os.PathLike[str]) -> list[VersionInfo]:
    """Every version under `root`, oldest first, with model name, training time and metrics."""
    from movierec.artifact import read_meta

    root = Path(root)
    now = current(root)
    out = []
    for version in list_versions(root):
        try:
            meta = read_meta(root / version)
            note = str(meta.get("note", ""))
        except ArtifactError as exc:
            meta, note = {}, f"unreadable: {exc}"
        metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
        out.append(VersionInfo(version, root / version, str(meta.get("model", "?")),
                               meta.get("trained_at"), dict(metrics or {}), version == now,
                               note))
    return out


# --- writing --------------------------------------------------------------------------------
def write_version(root: str | os.PathLike[str], model: Recommender, *,
                  catalog: pd.DataFrame | None | bool = None,
                  extra: Mapping[str, Any] | None = None) -> str:
    """Save `model` as the next version under `root`; the pointer is not changed.

    The folder is written in `root/.staging/` and renamed to `vNNNN` once complete, so a writer
    killed half-way leaves no `vNNNN` and never touches `current`. model.json gets the extra
    field "version".

    Args:
        root: the models root (created if missing).
        model: a fitted model.
        catalog: the item table (see `Recommender.save`).
        extra: more fields for model.json (dataset, split, metrics...).

    Returns:
        The new version's name.
    """
    root = Path(root)
    with _locked(root):
        version = next_version(root)
        staging = root / STAGING / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            model.save(staging / version, catalog=catalog,
                       extra={**dict(extra or {}), "version": version})
            os.rename(staging / version, root / version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return version


def _write_pointer(root: Path, version: str, previous: list[str], reason: str) -> Pointer:
    pointer = Pointer(version, tuple(previous[-_MAX_HISTORY:]),
                      datetime.now(UTC).isoformat(timespec="seconds"), reason)
    atomic_write_text(root / POINTER, json.dumps(
        {"version": pointer.version, "previous": list(pointer.previous),
         "updated_at": pointer.updated_at, "reason": reason}, indent=2) + "\n")
    return pointer


def set_current(root: str | os.PathLike[str], version: str, *, reason: str = "set") -> Pointer:
    """Point `root/current` at `version` (atomically); the old current joins `previous`.

    Raises:
        ArtifactError: `root/version` is not a complete model folder.
    """
    root = Path(root)
    _check_name(version)
    with _locked(root):
        if not (root / version / "model.json").is_file():
            raise ArtifactError(f"{root / version}: not a model version folder (no model.json)")
        old = read_pointer(root)
        previous = [] if old is None else list(old.previous)
        if old is not None and old.version != version:
            previous.append(old.version)
        return _write_pointer(root, version, previous, reason)


def rollback(root: str | os.PathLike[str]) -> Pointer:
    """Point `current` back at the version that was current before it (one that still exists).

    Rolling back again goes one further back. The version rolled back from is not deleted.

    Raises:
        ArtifactError: no pointer, or no earlier version still on disk.
    """
    root = Path(root)
    with _locked(root):
        old = read_pointer(root)
        if old is None:
            raise ArtifactError(f"{root}: no current model version to roll back from")
        previous = list(old.previous)
        while previous:
            target = previous.pop()
            if target != old.version and (root / target / "model.json").is_file():
                return _write_pointer(root, target, previous, "rollback")
        raise ArtifactError(f"{root}: no earlier version to roll back to (current is "
                            f"{old.version}; earlier ones: {', '.join(old.previous) or 'none'})")


def _rollback_target(root: Path, pointer: Pointer | None) -> str | None:
    if pointer is None:
        return None
    for version in reversed(pointer.previous):
        if version != pointer.version and (root / version / "model.json").is_file():
            return version
    return None


def prune(root: str | os.PathLike[str], keep: int = 5) -> list[str]:
    """Delete all but the newest `keep` versions, never the current one nor the rollback target.

    Also clears what killed writers left in `.staging/`.

    Args:
        root: the models root.
        keep: how many of the newest versions to keep (≥ 1); the current version and the one
            `rollback` would return to are kept besides.

    Returns:
        The versions deleted, oldest first.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be an integer ≥ 1, found {keep!r}")
    root = Path(root)
    removed: list[str] = []
    with _locked(root):
        shutil.rmtree(root / STAGING, ignore_errors=True)  # writers hold the lock: all stale
        pointer = read_pointer(root)
        protected = {pointer.version} if pointer is not None else set()
        target = _rollback_target(root, pointer)
        if target is not None:
            protected.add(target)
        versions = list_versions(root)
        protected.update(versions[-keep:])
        for version in versions:
            if version in protected:
                continue
            # Renamed first, so a half-deleted folder never looks like a version.
            trash = root / f".{version}.deleting-{uuid.uuid4().hex[:8]}"
            os.rename(root / version, trash)
            shutil.rmtree(trash, ignore_errors=True)
            removed.append(version)
    return removed
