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
