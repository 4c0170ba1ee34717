"""benchmarks/ranking_ahead.py: nesting models' members take the parameters tuned beside them."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from movierec.models import get
from movierec.tune import load_params_file

_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def ahead():
    sys.path.insert(0, str(_DIR))  # the script imports benchmarks/_common.py
    try:
        spec = importlib.util.spec_from_file_location("ranking_ahead", _DIR / "ranking_ahead.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(_DIR))


def _best(folder: Path, model: str, params: dict) -> None:
    (folder / model).mkdir(parents=True)
    (folder / model / "best.json").write_text(json.dumps({"model": model, "params": params}))


def test_tuned_member_files_give_members_the_tuned_params(ahead, tmp_path):
    _best(tmp_path, "ease", {"lambda_": 321.0})
    args = ahead.tuned_member_files(tmp_path, ["ease", "fusion", "rerank", "pop"], ["ease"])
    assert args == ["--params-file", str(tmp_path / "fusion" / "members.json"),
                    "--params-file", str(tmp_path / "rerank" / "members.json")]
    name, params = load_params_file(tmp_path / "fusion" / "members.json")
    assert name == "fusion"
    members = get(name, **params).members
    defaults = get("fusion").members
    assert [m for m, _ in members] == [m for m, _ in defaults]
    for (member, got), (_, default) in zip(members, defaults, strict=True):
        assert got == ({**default, "lambda_": 321.0} if member == "ease" else default)
    name, params = load_params_file(tmp_path / "rerank" / "members.json")
    assert dict(get(name, **params).generators)["ease"] == {"lambda_": 321.0}


def test_tuned_member_files_skip_models_without_tuned_members(ahead, tmp_path):
    _best(tmp_path, "rp3beta", {"alpha": 0.5})
    # fusion has no rp3beta member: no file; a nesting model tuned itself keeps its tuning.
    assert ahead.tuned_member_files(tmp_path, ["ease", "fusion"], ["rp3beta"]) == []
    assert not (tmp_path / "fusion").exists()
    _best(tmp_path, "ease", {"lambda_": 321.0})
    _best(tmp_path, "fusion", {"passes": 1})
    assert ahead.tuned_member_files(tmp_path, ["fusion"], ["ease", "fusion"]) == []
