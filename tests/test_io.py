import pytest

from movierec.io import atomic_directory, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "results.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_failed_directory_write_keeps_old(tmp_path):
    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "model.json").write_text("good")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "model.json").write_text("half")
        raise RuntimeError("killed mid-write")
    assert (target / "model.json").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_written_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        target = tmp_path / "report.html"
        atomic_write_text(target, "x")
        with atomic_directory(tmp_path / "model") as tmp:
            (tmp / "model.json").write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755


def test_every_file_of_a_written_folder_gets_the_same_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        with atomic_directory(tmp_path / "model") as tmp:
            (tmp / "model.json").write_text("{}")
            fd = os.open(tmp / "state.safetensors", os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)  # a writer that makes private files, as safetensors' save_file does
            (tmp / "sub").mkdir()
            (tmp / "sub" / "part.bin").write_bytes(b"x")
            os.chmod(tmp / "sub" / "part.bin", 0o600)
        os.umask(0o077)  # a private umask is respected
        with atomic_directory(tmp_path / "private") as tmp:
            (tmp / "a.json").write_text("{}")
            os.chmod(tmp / "a.json", 0o644)
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in tmp_path.rglob("*") if p.is_file()}
    assert modes == {"model/model.json": 0o644, "model/state.safetensors": 0o644,
                     "model/sub/part.bin": 0o644, "private/a.json": 0o600}
