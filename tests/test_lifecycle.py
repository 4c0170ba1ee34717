"""Versioned model folders: atomic writes and pointer switches, pruning rules, rollback."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from movierec import versions
from movierec.data.dataset import Dataset
from movierec.errors import ArtifactError
from movierec.models import get
from movierec.models.base import Recommender


@pytest.fixture
def model(tiny: Dataset) -> Recommender:
    return get("bias").fit(tiny)


def write(root: Path, model: Recommender, n: int) -> list[str]:
    return [versions.write_version(root, model, extra={"note": f"#{i}"}) for i in range(n)]


def test_versions_are_numbered_and_record_their_name(tmp_path: Path, model: Recommender) -> None:
    root = tmp_path / "models"
    assert versions.next_version(root) == "v0001"
    assert write(root, model, 3) == ["v0001", "v0002", "v0003"]
    assert versions.list_versions(root) == ["v0001", "v0002", "v0003"]
    meta = json.loads((root / "v0002" / "model.json").read_text())
    assert meta["version"] == "v0002" and meta["note"] == "#1"
    # Writing a version never moves the pointer.
    assert versions.current(root) is None
    with pytest.raises(ArtifactError, match="no current model version"):
        versions.current_path(root)


def test_set_current_writes_the_pointer_and_keeps_history(tmp_path: Path,
                                                          model: Recommender) -> None:
    root = tmp_path / "models"
    write(root, model, 3)
    versions.set_current(root, "v0001", reason="train")
    versions.set_current(root, "v0003", reason="retrain")
    pointer = versions.read_pointer(root)
    assert pointer is not None
    assert (pointer.version, pointer.previous, pointer.reason) == ("v0003", ("v0001",),
                                                                   "retrain")
    assert versions.current_path(root) == root / "v0003"
    assert json.loads((root / "current").read_text())["version"] == "v0003"
    with pytest.raises(ArtifactError, match="v0009"):
        versions.set_current(root, "v0009")
    assert versions.current(root) == "v0003"  # a refused switch changes nothing


def test_pointer_switch_is_one_atomic_replace(tmp_path: Path, model: Recommender,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The pointer is written to a temp file and renamed over `current` (os.replace): if that
    rename fails (a crash before it), the old pointer is intact and no temp file remains."""
    root = tmp_path / "models"
    write(root, model, 2)
    versions.set_current(root, "v0001")
    before = (root / "current").read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        versions.set_current(root, "v0002")
    monkeypatch.undo()
    assert (root / "current").read_bytes() == before
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".current")) == []
    assert versions.current(root) == "v0001"


def test_a_write_killed_half_way_leaves_no_version(tmp_path: Path, model: Recommender,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "models"
    write(root, model, 1)
    versions.set_current(root, "v0001")

    def crash(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # killed between writing the folder and publishing it

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        versions.write_version(root, model)
    monkeypatch.undo()
    assert versions.list_versions(root) == ["v0001"]
    assert not (root / "v0002").exists()
    assert versions.current(root) == "v0001"
    assert versions.write_version(root, model) == "v0002"


def test_rollback_goes_back_one_switch_at_a_time(tmp_path: Path, model: Recommender) -> None:
    root = tmp_path / "models"
    write(root, model, 4)
    for v in ("v0001", "v0002", "v0004"):  # v0003 was written but never current (rejected)
        versions.set_current(root, v)
    assert versions.rollback(root).version == "v0002"
    assert versions.rollback(root).version == "v0001"
    with pytest.raises(ArtifactError, match="no earlier version"):
        versions.rollback(root)
    assert versions.current(root) == "v0001"


def test_rollback_skips_versions_deleted_since(tmp_path: Path, model: Recommender) -> None:
    root = tmp_path / "models"
    write(root, model, 3)
    for v in ("v0001", "v0002", "v0003"):
        versions.set_current(root, v)
    shutil.rmtree(root / "v0002")
    assert versions.rollback(root).version == "v0001"


def test_prune_keeps_newest_current_and_rollback_target(tmp_path: Path,
                                                        model: Recommender) -> None:
    root = tmp_path / "models"
    write(root, model, 8)
    versions.set_current(root, "v0002")
    versions.set_current(root, "v0003")  # current v0003, rollback target v0002
    (root / ".staging" / "leftover").mkdir(parents=True)  # a killed writer's debris
    removed = versions.prune(root, keep=3)
    # Newest 3 are v0006..v0008; v0003 (current) and v0002 (rollback target) stay too.
    assert removed == ["v0001", "v0004", "v0005"]
    assert versions.list_versions(root) == ["v0002", "v0003", "v0006", "v0007", "v0008"]
    assert not (root / ".staging").exists()
    assert versions.next_version(root) == "v0009"
    assert versions.prune(root, keep=1) == ["v0006", "v0007"]
    with pytest.raises(ValueError, match="keep"):
        versions.prune(root, keep=0)


def test_numbers_are_not_reused_after_deleting_the_newest(tmp_path: Path,
                                                          model: Recommender) -> None:
    root = tmp_path / "models"
    write(root, model, 2)
    versions.set_current(root, "v0002")
    versions.set_current(root, "v0001")
    shutil.rmtree(root / "v0002")  # v0002 is in the pointer's history: its number stays taken
    assert versions.next_version(root) == "v0003"


def test_a_foreign_pointer_is_refused_with_its_path(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "current").write_text("not json")
    with pytest.raises(ArtifactError, match=r"current: not a models-root pointer"):
        versions.current(root)


def test_version_info_lists_model_metrics_and_current(tmp_path: Path, model: Recommender) -> None:
    root = tmp_path / "models"
    versions.write_version(root, model, extra={"metrics": {"rmse": 0.9}})
    versions.write_version(root, model, extra={"metrics": {"rmse": 0.8}})
    versions.set_current(root, "v0002")
    infos = versions.version_info(root)
    assert [(v.version, v.model, v.metrics["rmse"], v.current) for v in infos] == [
        ("v0001", "bias", 0.9, False), ("v0002", "bias", 0.8, True)]
    loaded = Recommender.load(versions.current_path(root))
    assert loaded.params() == model.params()
