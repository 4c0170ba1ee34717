"""Bad input at the command line: exit code 2, one `error:` line naming file and line, no
traceback, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from movierec.cli import app
from movierec.data.synthetic import write_release

runner = CliRunner()


def _one_error_line(output: str) -> str:
    assert "Traceback" not in output, output
    errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # relative paths keep the one error line short
    return write_release("ml1m", Path("rel"), n_users=10, n_items=8, n_ratings=40, rng=0)


@pytest.mark.parametrize(("file", "lineno", "text", "message"), [
    ("ratings.dat", 4, "1::2::4::1537799250000",
     "timestamp 1537799250000 is after 2100-01-01; timestamps must be unix seconds "
     "(milliseconds?)"),
    ("ratings.dat", 2, "1::2::6::978300760", "rating 6 is outside the rating scale 1..5"),
    ("ratings.dat", 3, "1::x::4::978300760", "item_id 'x' is not an integer"),
    ("users.dat", 2, "2::M::25::x::1", "occupation 'x' is not an integer"),
])
def test_data_describe_of_a_bad_release(release: Path, file: str, lineno: int, text: str,
                                        message: str) -> None:
    lines = (release / file).read_text(encoding="latin-1").splitlines()
    lines[lineno - 1] = text
    (release / file).write_text("\n".join(lines) + "\n", encoding="latin-1")
    # a folder named like a release gets the release's rating scale
    release = release.rename(release.with_name("ml-1m"))
    result = runner.invoke(app, ["data", "describe", "./ml-1m"])  # a path, not the release name
    assert result.exit_code == 2
    assert _one_error_line(result.output) == f"error: ml-1m/{file}:{lineno}: {message}"


def test_train_on_bad_files_writes_nothing(release: Path) -> None:
    train, test = Path("train.tsv"), Path("test.tsv")
    train.write_text("1\t10\t4\t100\n2\t10\t5\t200\n3\t20\tnan\t300\n")
    test.write_text("1\t20\t4\t400\n")
    result = runner.invoke(app, ["train", "--train", str(train), "--test", str(test),
                                 "--model", "pop", "--out", "model", "--no-progress"])
    assert result.exit_code == 2
    assert _one_error_line(result.output) == "error: train.tsv:3: rating 'nan' is not a finite " \
                                             "number"
    assert sorted(os.listdir()) == ["rel", "test.tsv", "train.tsv"]


def test_recommend_from_a_tampered_model(release: Path) -> None:
    result = runner.invoke(app, ["train", "--dataset", str(release), "--model", "pop",
                                 "--out", "model", "--no-progress"])
    assert result.exit_code == 0, result.output
    meta = json.loads(Path("model/model.json").read_text())
    Path("model/model.json").write_text(json.dumps({**meta, "params": {"nope": 1}}))
    result = runner.invoke(app, ["recommend", "model", "--user", "1"])
    assert result.exit_code == 2
    assert "model/model.json: parameters rejected by pop" in _one_error_line(result.output)


def test_a_real_process_prints_one_line_and_no_traceback(release: Path) -> None:
    (release / "ratings.dat").write_bytes(b"1::2::3::978300760\n1::\xff::3::978300760\n")
    done = subprocess.run([sys.executable, "-m", "movierec.cli", "data", "describe",
                           str(release)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: rel/ratings.dat:2: not valid utf-8 text: b'1::\\xff::3::978300760'"]


def test_out_that_is_a_file_is_not_replaced(release: Path) -> None:
    Path("notes.txt").write_text("mine")
    result = runner.invoke(app, ["train", "--dataset", str(release), "--model", "pop",
                                 "--out", "notes.txt", "--no-progress"])
    assert result.exit_code == 2
    assert _one_error_line(result.output) == ("error: notes.txt exists and is not a folder; not "
                                              "replacing it")
    assert Path("notes.txt").read_text() == "mine"
    assert sorted(os.listdir()) == ["notes.txt", "rel"]
