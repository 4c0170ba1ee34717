"""Tampered, truncated and future model folders and checkpoints fail with a clear message.

tests/test_artifact.py covers tampered and truncated weights, format 99, an unknown model name
and a folder without model.json; these add a model.json that parses but is not shaped as
written, parameters and state the model refuses, a damaged item table, a save interrupted
between its renames, and damaged training checkpoints (also through `movierec train --resume`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from movierec.artifact import load_catalog, load_model
from movierec.cli import app
from movierec.data.dataset import Dataset
from movierec.errors import ArtifactError, MovieRecError
from movierec.models import get

ROWS = [(1, 10, 5.0, 100), (1, 20, 3.0, 200), (2, 10, 4.0, 110), (2, 30, 5.0, 210),
        (3, 20, 1.0, 120), (3, 30, 4.0, 220)]


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    items = pd.DataFrame({"item_id": [10, 20, 30], "title": ["A (1990)", "B (1991)", "C"],
                          "year": [1990.0, 1991.0, float("nan")], "genres": [("Drama",), (), ()]})
    ds = Dataset(pd.DataFrame(ROWS, columns=["user_id", "item_id", "rating", "timestamp"]),
                 items=items)
    return get("itemknn", n_neighbors=2).fit(ds).save(tmp_path / "model", catalog=items)


def _edit_meta(path: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    meta = json.loads((path / "model.json").read_text())
    out = edit(meta)
    (path / "model.json").write_text(json.dumps(meta if out is None else out))


def _state(meta: dict[str, Any], name: str, value: Any) -> None:
    meta["state"][name] = value


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: [m], "expected a JSON object, found list"),
    (lambda m: "model", "expected a JSON object, found str"),
    (lambda m: m.update(format=True), "format True is not a model format version"),
    (lambda m: m.update(format=0), "format 0 is not a model format version"),
    (lambda m: m.update(format="1"), "format '1' is not a model format version"),
    (lambda m: m.update(model=["itemknn"]), "'model' must be a JSON string"),
    (lambda m: m.update(params=[2]), "'params' must be a JSON object"),
    (lambda m: m.update(params={"n_neighbors": "two"}),
     "parameters rejected by itemknn: n_neighbors must be"),
    (lambda m: m.update(params={"neighbours": 2}), "parameters rejected by itemknn"),
    (lambda m: m.update(tuple_params=3), "'tuple_params' must be a JSON array"),
    (lambda m: m.update(sha256="x"), "'sha256' must be a JSON object"),
    (lambda m: m.__delitem__("state"), "no learned state recorded"),
    (lambda m: _state(m, "seen_", 5), "state 'seen_' is not an object"),
    (lambda m: _state(m, "seen_", {"type": "pickle"}), "unknown state type 'pickle'"),
    (lambda m: _state(m, "seen_", {"type": "csr", "shape": [-1, 2]}), "'seen_' is inconsistent"),
    (lambda m: _state(m, "seen_", {"type": "csr", "shape": "x"}), "'seen_' is inconsistent"),
    # found by the fuzz test: a shape too large for any index dtype (OverflowError in scipy)
    (lambda m: _state(m, "seen_", {"type": "csr", "shape": [2**70, 3]}),
     "'seen_' is inconsistent"),
    (lambda m: _state(m, "user_vocab_", {"type": "array"}), "lacks the user and item vocab"),
    (lambda m: _state(m, "seen_", {"type": "array"}), "weights file lacks tensor 'seen_'"),
])
def test_model_json_that_parses_but_is_wrong(saved: Path, edit: Callable, message: str) -> None:
    _edit_meta(saved, edit)
    with pytest.raises(ArtifactError, match=message):
        load_model(saved)


def test_truncated_model_json(saved: Path) -> None:
    text = (saved / "model.json").read_text()
    (saved / "model.json").write_text(text[: len(text) // 2])
    with pytest.raises(ArtifactError, match=r"model\.json: not valid JSON"):
        load_model(saved)


@pytest.mark.parametrize("content", ['{"item_id": 10}', '[{"item_id": "x", "title": "A"}]',
                                     '[1, 2]'])
def test_item_table_of_the_wrong_shape(saved: Path, content: str) -> None:
    (saved / "items.json").write_text(content)
    with pytest.raises(ArtifactError, match="sha256 does not match"):
        load_catalog(saved)
    # Even with its checksum updated to match, the table is refused, not half-read.
    _edit_meta(saved, lambda m: m["sha256"].update(
        {"items.json": hashlib.sha256(content.encode()).hexdigest()}))
    with pytest.raises(ArtifactError, match="not an item table"):
        load_catalog(saved)


def test_save_killed_between_its_renames_points_to_the_backup(saved: Path) -> None:
    backup = saved.with_name(f".{saved.name}.old-4242")
    saved.rename(backup)  # the state `atomic_directory` is in between its two renames
    with pytest.raises(ArtifactError, match=rf"interrupted save left the previous model in "
                                            rf".*{backup.name} \(rename it to model\)"):
        load_model(saved)
    backup.rename(saved)
    assert load_model(saved).n_neighbors == 2


# --- checkpoints ---------------------------------------------------------------------------------
pytest.importorskip("torch")


def _release(tmp_path: Path) -> Path:
    from movierec.data.synthetic import write_release

    return write_release("ml100k", tmp_path / "release", n_users=20, n_items=15, n_ratings=120,
                         rng=0)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda b: b[: len(b) // 2], "not a movierec checkpoint"),
    (lambda b: b"", "not a movierec checkpoint"),
    (lambda b: b"\xff" * 64, "not a movierec checkpoint"),
    (lambda b: b[:8] + b"\xff" + b[9:], "not a movierec checkpoint"),
])
def test_damaged_checkpoint_fails_resume_with_one_line(tmp_path: Path, damage: Callable,
                                                       message: str) -> None:
    runner = CliRunner()
    args = ["train", "--dataset", str(_release(tmp_path)), "--model", "mf", "--out",
            str(tmp_path / "mf"), "--param", "embedding_size=4", "--device", "cpu",
            "--no-progress"]
    assert runner.invoke(app, [*args, "--param", "epochs=1"]).exit_code == 0
    ckpt = tmp_path / "mf.ckpt" / "last.safetensors"
    ckpt.write_bytes(damage(ckpt.read_bytes()))
    shutil.rmtree(tmp_path / "mf")
    result = runner.invoke(app, [*args, "--param", "epochs=2", "--resume"])
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert "last.safetensors" in errors[0] and message in errors[0]
    assert "Traceback" not in result.output and not (tmp_path / "mf").exists()


def test_checkpoint_of_other_data_is_refused(tmp_path: Path) -> None:
    from movierec.models.mf import MF

    ds = Dataset(pd.DataFrame(ROWS, columns=["user_id", "item_id", "rating", "timestamp"]))
    other = Dataset(ds.ratings.iloc[:-1])
    MF(embedding_size=2, epochs=1, device="cpu").fit(ds, progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(MovieRecError, match="fingerprint"):
        MF(embedding_size=2, epochs=2, device="cpu").fit(other, progress=False,
                                                         checkpoint_dir=tmp_path, resume=True)
