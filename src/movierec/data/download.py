"""Download, verify, safely extract and cache MovieLens archives.

The cache holds one extracted folder per release (`<cache>/<archive folder>`), each with a marker
file written before it is renamed into place: a folder with the marker is complete, so a second
call does no network I/O. The archive itself is removed after a successful extraction.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from movierec.data.releases import Release, get_release
from movierec.errors import DownloadError

logger = logging.getLogger(__name__)

CACHE_ENV = "MOVIEREC_CACHE"
#: Where a local copy of the releases is looked up first (read by `movierec.data.movielens`).
LOCAL_COPY_ENV = "MOVIEREC_DATA_DIR"
BASE_URL_ENV = "MOVIEREC_BASE_URL"
MARKER = ".movierec-complete"
#: Largest total uncompressed size an archive may declare (ml-32m unpacks to about 1 GB).
MAX_EXTRACT_BYTES = 8 * 1024**3
_CHUNK = 1 << 20
_TIMEOUT_S = 60
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate",
            zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}
#: What reading a damaged member can raise besides BadZipFile (a truncated or corrupt stream).
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError,
                NotImplementedError, IndexError, struct.error)


def default_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: `cache_dir`, else $MOVIEREC_CACHE, else ~/.cache/movierec."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "movierec"


def default_base_url(base_url: str | None = None) -> str | None:
    """The server to download from: `base_url`, else $MOVIEREC_BASE_URL, else None (GroupLens)."""
    return base_url or os.environ.get(BASE_URL_ENV) or None


def cached_folder(release: Release | str, cache_dir: str | os.PathLike[str] | None = None
                  ) -> Path | None:
    """The complete extracted folder of `release` in the cache, or None when it is not there."""
    release = get_release(release) if isinstance(release, str) else release
    folder = default_cache_dir(cache_dir) / release.folder
    return folder if (folder / MARKER).is_file() else None


def fetch(
    release: Release | str,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    base_url: str | None = None,
    progress: bool = True,
    max_bytes: int = MAX_EXTRACT_BYTES,
) -> Path:
    """Download, verify and extract a release into the cache; return its folder.

    Args:
        release: a Release or a release name ("ml-1m").
        cache_dir: cache folder (default: $MOVIEREC_CACHE, else ~/.cache/movierec).
        base_url: server folder holding the archives (default: $MOVIEREC_BASE_URL, else
            GroupLens).
        progress: show a progress bar (only when stderr is a terminal).
        max_bytes: largest total uncompressed size the archive may declare, in bytes.

    Returns:
        The extracted release folder, `<cache_dir>/<release.folder>`.

    Raises:
        DownloadError: the download failed, the checksum does not match (the file is deleted)
            or the archive holds an unsafe member (absolute path, `..`, link, too large).
    """
    release = get_release(release) if isinstance(release, str) else release
    cache = default_cache_dir(cache_dir)
    done = cached_folder(release, cache)
    if done is not None:
        logger.debug("%s found in cache %s", release.name, done)
        return done
    cache.mkdir(parents=True, exist_ok=True)
    url = release.url(default_base_url(base_url))
    archive = cache / release.archive
    try:
        digests = _download(url, archive, progress=progress)
    except DownloadError as exc:
        raise DownloadError(f"{exc}. {local_copy_hint(release)}") from exc
    try:
        _check_digests(release, url, archive, digests)
        folder = extract(archive, cache, release.folder, max_bytes=max_bytes, flat=release.flat)
    except BaseException:
        archive.unlink(missing_ok=True)
        raise
    archive.unlink(missing_ok=True)
    logger.info("%s downloaded and extracted to %s", release.name, folder)
    return folder


def local_copy_hint(release: Release) -> str:
    """How to use a copy of `release` on disk instead of downloading it."""
    return (f"{release.name} is not on this machine and could not be downloaded (offline?). "
            f"If you have a copy, point movierec at the folder that holds the extracted "
            f"'{release.folder}' folder: --data-dir DIR on the command line, or set "
            f"{LOCAL_COPY_ENV}=DIR (data_dir=DIR in Python); or download {release.url()} "
            f"elsewhere and unzip it there")


def _download(url: str, target: Path, *, progress: bool) -> dict[str, str]:
    """Stream `url` to `target` (via a .part file); return its md5 and sha256."""
    part = target.with_name(target.name + ".part")
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    logger.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp, open(part, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = _progress_bar(total, target.name, progress)
            try:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    md5.update(chunk)
                    sha.update(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"could not download {url}: {exc}") from exc
    os.replace(part, target)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def _progress_bar(total: int | None, label: str, progress: bool):  # noqa: ANN202 - tqdm or None
    if not progress or not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024)


def _check_digests(release: Release, url: str, archive: Path, digests: dict[str, str]) -> None:
    """Compare the archive's digests with the pinned ones, or with the published `.md5`."""
    expected = {k: v for k, v in (("md5", release.md5), ("sha256", release.sha256)) if v}
    if not expected and not release.published_md5:
        logger.warning("no checksum is pinned or published for %s: %s is used unverified "
                       "(its sha256 is %s)", release.name, url, digests["sha256"])
        return
    if not expected:
        expected = {"md5": fetch_published_md5(url)}
    for algo, want in expected.items():
        if digests[algo] != want.lower():
            raise DownloadError(
                f"{algo} of {url} is {digests[algo]}, expected {want}: the download is corrupt "
                f"or the release changed; {archive.name} was deleted"
            )


def fetch_published_md5(url: str) -> str:
    """Read the md5 GroupLens publishes beside an archive (`<url>.md5`).

    Both the BSD form `MD5 (ml-20m.zip) = <hex>` and the GNU form `<hex>  ml-20m.zip` are read.
    """
    md5_url = url + ".md5"
    try:
        with urllib.request.urlopen(md5_url, timeout=_TIMEOUT_S) as resp:
            text = resp.read(4096).decode("ascii", errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(f"no checksum is pinned for {url} and {md5_url} "
                            f"could not be read: {exc}") from exc
    match = re.search(r"\b([0-9a-fA-F]{32})\b", text)
    if match is None:
        raise DownloadError(f"{md5_url} does not contain an md5: {text[:80]!r}")
    return match.group(1).lower()


def _check_member(info: zipfile.ZipInfo) -> None:
    """Reject a member that could write outside the target folder."""
    name = info.filename
    if not name.strip("/"):
        raise DownloadError(f"archive member with an empty name ({name!r})")
    posix = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or posix.is_absolute():
        raise DownloadError(f"unsafe archive member {name!r}: absolute path")
    if ".." in posix.parts:
        raise DownloadError(f"unsafe archive member {name!r}: '..' in path")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DownloadError(f"unsafe archive member {name!r}: symbolic link")
    if "\x00" in name:
        raise DownloadError(f"unsafe archive member {name!r}: NUL in name")
    if info.flag_bits & 0x1:
        raise DownloadError(f"archive member {name!r} is encrypted")
    if info.compress_type not in _METHODS:
        raise DownloadError(f"archive member {name!r} uses compression method "
                            f"{info.compress_type}, not one of {sorted(_METHODS.values())}")


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    """Write one member, never more bytes than it declares (zipfile stops there too)."""
    left = info.file_size
    with zf.open(info) as src, open(target, "wb") as out:
        while chunk := src.read(min(_CHUNK, left + 1)):
            left -= len(chunk)
            if left < 0:
                raise DownloadError(f"archive member {info.filename!r} is larger than the "
                                    f"{info.file_size:,} bytes it declares")
            out.write(chunk)


def extract(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    folder: str,
    *,
    max_bytes: int = MAX_EXTRACT_BYTES,
    flat: bool = False,
) -> Path:
    """Safely extract `folder` of a zip into `dest`; return `dest/folder`.

    Every member is checked before anything is written; extraction goes to a temp folder inside
    `dest` that is renamed into place only when complete, with the completion marker inside.

    Args:
        archive: the zip file.
        dest: folder that receives `folder`.
        folder: name of the top folder the archive must contain.
        max_bytes: largest total uncompressed size the members may declare, in bytes.
        flat: the archive holds its files at the top level (HetRec 2011): they are extracted
            into `folder`. An archive that does have `folder` at its top is taken as it is.

    Raises:
        DownloadError: not a zip, an unsafe member (absolute path, `..`, link, encrypted, unknown
            compression), a declared size over `max_bytes`, a truncated or corrupt member, or no
            `folder` inside. Nothing is left in `dest` then.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except _READ_ERRORS as exc:
        raise DownloadError(f"{archive} is not a readable zip archive: {exc}") from exc
    with zf:
        members = zf.infolist()
        total = 0
        for info in members:
            _check_member(info)
            total += info.file_size
            if total > max_bytes:
                raise DownloadError(
                    f"archive {archive.name} declares more than {max_bytes:,} bytes "
                    f"uncompressed (reached at member {info.filename!r}); refusing to extract"
                )
        dest.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.", suffix=".tmp", dir=dest))
        into = tmp
        if flat and not all(m.filename.replace("\\", "/").startswith(f"{folder}/")
                            for m in members):
            into = tmp / folder
        try:
            root = tmp.resolve()
            for info in members:
                target = (into / info.filename).resolve()
                if not target.is_relative_to(root):
                    raise DownloadError(f"unsafe archive member {info.filename!r}: escapes folder")
                try:
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _copy_member(zf, info, target)
                except DownloadError:
                    raise
                except _READ_ERRORS as exc:
                    raise DownloadError(f"archive {archive.name}: member {info.filename!r} "
                                        f"cannot be extracted ({type(exc).__name__}: {exc})"
                                        ) from exc
            extracted = tmp / folder
            if not extracted.is_dir():
                raise DownloadError(f"archive {archive.name} has no folder {folder!r}")
            (extracted / MARKER).write_text("ok\n", encoding="ascii")
            final = dest / folder
            if final.exists():  # an incomplete earlier attempt (no marker)
                shutil.rmtree(final)
            os.replace(extracted, final)
            return final
        except zipfile.BadZipFile as exc:
            raise DownloadError(f"archive {archive.name} is corrupt: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)


def verify_folder(release: Release | str, folder: str | os.PathLike[str]) -> None:
    """Check the sha256 of every file of a local release folder against the recorded values.

    Raises:
        DataError: a file is missing or differs (DownloadError is a DataError).
    """
    release = get_release(release) if isinstance(release, str) else release
    folder = Path(folder)
    if not release.files_sha256:
        logger.warning("no per-file sha256 recorded for %s; %s not verified", release.name, folder)
        return
    for name, want in release.files_sha256.items():
        path = folder / name
        if not path.is_file():
            raise DownloadError(f"{path}: missing file of {release.name}")
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
        if h.hexdigest() != want:
            raise DownloadError(f"{path}: sha256 {h.hexdigest()} differs from the published "
                                f"{release.name} file ({want})")
