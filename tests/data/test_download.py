"""fetch(): checksum, cache, safe extraction, base-URL override — against a 127.0.0.1 server."""

from __future__ import annotations

import dataclasses
import hashlib
import stat
import zipfile
from pathlib import Path

import pytest

from movierec.data import load
from movierec.data.download import MARKER, default_cache_dir, extract, fetch
from movierec.data.releases import RELEASES, Release
from movierec.errors import DataError, DownloadError


def _release(digests: dict[str, str] | None) -> Release:
    base = RELEASES["ml-100k"]
    if digests is None:
        return dataclasses.replace(base, md5=None, sha256=None)
    return dataclasses.replace(base, md5=digests["md5"], sha256=digests["sha256"])


def test_fetch_verifies_extracts_and_caches(tmp_path, http_server, synthetic_archive):
    cache = tmp_path / "cache"
    folder = fetch(_release(synthetic_archive), cache, base_url=http_server.base_url,
                   progress=False)
    assert folder == cache / "ml-100k"
    assert (folder / "u.data").is_file() and (folder / MARKER).is_file()
    assert http_server.requests == ["/ml-100k.zip"]
    assert not (cache / "ml-100k.zip").exists()  # archive removed after extraction
    assert [p.name for p in cache.iterdir()] == ["ml-100k"]  # no temp folders left

    again = fetch(_release(synthetic_archive), cache, base_url=http_server.base_url)
    assert again == folder
    assert http_server.requests == ["/ml-100k.zip"]  # second call: no network


def test_bad_checksum_raises_and_leaves_nothing(tmp_path, http_server, synthetic_archive):
    cache = tmp_path / "cache"
    wrong = {"md5": "0" * 32, "sha256": synthetic_archive["sha256"]}
    with pytest.raises(DownloadError, match="md5 of .* is .*expected 0{32}"):
        fetch(_release(wrong), cache, base_url=http_server.base_url, progress=False)
    assert list(cache.iterdir()) == []


def test_published_md5_sidecar_used_when_nothing_pinned(tmp_path, http_server,
                                                        synthetic_archive):
    (http_server.root / "ml-100k.zip.md5").write_text(
        f"MD5 (ml-100k.zip) = {synthetic_archive['md5']}\n")
    folder = fetch(_release(None), tmp_path / "c1", base_url=http_server.base_url,
                   progress=False)
    assert (folder / "u.item").is_file()
    assert "/ml-100k.zip.md5" in http_server.requests

    (http_server.root / "ml-100k.zip.md5").write_text(f"{'f' * 32}  ml-100k.zip\n")
    with pytest.raises(DownloadError, match="expected f{32}"):
        fetch(_release(None), tmp_path / "c2", base_url=http_server.base_url, progress=False)
    assert list((tmp_path / "c2").iterdir()) == []


def test_missing_archive_is_a_download_error(tmp_path, http_server):
    with pytest.raises(DownloadError, match="could not download .*ml-1m.zip"):
        fetch("ml-1m", tmp_path / "cache", base_url=http_server.base_url, progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def _evil_zip(path: Path, member: str, *, symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t0\n")
        info = zipfile.ZipInfo(member)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd" if symlink else "owned\n")
    return path


@pytest.mark.parametrize(("member", "symlink", "why"), [
    ("../evil", False, r"'\.\.' in path"),
    ("ml-100k/../../evil", False, r"'\.\.' in path"),
    ("/tmp/evil", False, "absolute path"),
    ("ml-100k/link", True, "symbolic link"),
])
def test_unsafe_members_are_rejected(tmp_path, member, symlink, why):
    archive = _evil_zip(tmp_path / "evil.zip", member, symlink=symlink)
    dest = tmp_path / "sub" / "cache"
    with pytest.raises(DownloadError, match=why) as err:
        extract(archive, dest, "ml-100k")
    assert repr(member) in str(err.value)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "sub" / "evil").exists()
    assert not dest.exists() or list(dest.iterdir()) == []


def test_zip_bomb_by_declared_size_is_rejected(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml-100k/u.data", b"0" * 2_000_000)  # compresses to a few KB
    with pytest.raises(DownloadError, match="ml-100k/u.data"):
        extract(archive, tmp_path / "cache", "ml-100k", max_bytes=1_000_000)
    assert not (tmp_path / "cache").exists()


def test_evil_archive_served_leaves_nothing(tmp_path, http_server):
    archive = _evil_zip(http_server.root / "ml-100k.zip", "../evil")
    data = archive.read_bytes()
    rel = dataclasses.replace(RELEASES["ml-100k"], md5=hashlib.md5(data).hexdigest(),
                              sha256=hashlib.sha256(data).hexdigest())
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="evil"):
        fetch(rel, cache, base_url=http_server.base_url, progress=False)
    assert list(cache.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_archive_without_release_folder(tmp_path):
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("other/u.data", "1\t1\t5\t0\n")
    with pytest.raises(DownloadError, match="no folder 'ml-100k'"):
        extract(archive, tmp_path / "cache", "ml-100k")
    assert list((tmp_path / "cache").iterdir()) == []


def test_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVIEREC_CACHE", str(tmp_path / "envcache"))
    assert default_cache_dir() == tmp_path / "envcache"
    assert default_cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("MOVIEREC_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "movierec"


def test_load_downloads_through_env_base_url(tmp_path, monkeypatch, http_server,
                                             synthetic_archive):
    # The real ml-100k checksums would reject the synthetic archive, so pin the test's own.
    monkeypatch.setattr("movierec.data.movielens.RELEASES",
                        {**RELEASES, "ml-100k": _release(synthetic_archive)})
    monkeypatch.setenv("MOVIEREC_BASE_URL", http_server.base_url)
    monkeypatch.delenv("MOVIEREC_DATA_DIR", raising=False)
    ds = load("ml-100k", cache_dir=tmp_path / "cache", progress=False)
    assert ds.name == "ml-100k" and ds.n_ratings == 400
    assert http_server.requests == ["/ml-100k.zip"]
    # Found in the cache the second time, even with downloads off.
    ds2 = load("ml-100k", cache_dir=tmp_path / "cache", download=False)
    assert ds2.fingerprint == ds.fingerprint
    assert http_server.requests == ["/ml-100k.zip"]


def test_not_found_without_download_explains(tmp_path, monkeypatch):
    monkeypatch.delenv("MOVIEREC_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="MOVIEREC_DATA_DIR") as err:
        load("ml-1m", data_dir=tmp_path / "nowhere", cache_dir=tmp_path / "cache",
             download=False)
    assert str(tmp_path / "nowhere" / "ml-1m") in str(err.value)
    assert str(tmp_path / "cache" / "ml-1m") in str(err.value)


def _closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: downloads fail as they do offline."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_failed_download_says_how_to_use_a_local_copy(tmp_path, monkeypatch):
    monkeypatch.delenv("MOVIEREC_DATA_DIR", raising=False)
    with pytest.raises(DownloadError) as err:
        load("ml-1m", data_dir=tmp_path / "nowhere", cache_dir=tmp_path / "cache",
             base_url=_closed_port_url(), progress=False)
    message = str(err.value)
    assert message.startswith("could not download http://127.0.0.1:")
    assert "--data-dir DIR" in message and "MOVIEREC_DATA_DIR=DIR" in message
    assert "'ml-1m' folder" in message
    assert list((tmp_path / "cache").iterdir()) == []
