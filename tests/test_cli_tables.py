"""What the CLI prints: help text kept whole, `run`'s mean ± std tables, `data describe`."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from movierec.cli import app
from movierec.cli._app import console
from movierec.data.synthetic import write_release

runner = CliRunner()


def test_run_help_keeps_square_brackets():
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    assert "[quick]" in result.output  # rich markup read it as a style tag and dropped it


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exp")
    write_release("csv", root / "data", n_users=30, n_items=40, n_ratings=400, rng=3)
    path = root / "small.toml"
    path.write_text("""
[experiment]
seeds = [1, 2]
[dataset]
path = "data"
[split]
kind = "user-random"
test_size = 0.25
seed = 5
[evaluation]
protocols = ["full", "rated-items"]
k = [5]
relevance = 3.5
[models.pop]
[models.bias]
[models.bias.grid]
reg_user = [1.0, 5.0]
""")
    return path


@pytest.mark.parametrize("width", [200, 80])
def test_run_table_shows_mean_and_std_and_cuts_nothing(experiment: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        width: int):
    monkeypatch.setattr(console, "width", width)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(experiment), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "…" not in text  # rich's mark of a cut header or value
    assert "mean ± std over 2 seeds" in text
    for header in ("RMSE", "RMSE[0,1]", "P_rated", "F1_rated", "NDCG@5", "HR@5", "ARP@5",
                   "Gini@5", "fit s", "rec s"):
        assert f" {header} " in text, header
    assert "bias[reg_user=1.0]" in text and "bias[reg_user=5.0]" in text
    runs = json.loads((out / "results.json").read_text())["runs"]
    ndcg = [r["metrics"]["ndcg@5"] for r in runs if r["model"] == "bias[reg_user=5.0]"]
    mean, std = f"{statistics.mean(ndcg):.4f}", f"±{statistics.stdev(ndcg):.4f}"
    if width == 200:
        assert mean + std in text
    else:  # too wide for one line: the std goes below the mean
        assert mean in text and std in text and mean + std not in text
        table_lines = [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]
        assert table_lines and max(len(line) for line in table_lines) <= width


def test_data_describe_titles_are_not_wrapped(experiment: Path, monkeypatch):
    monkeypatch.setattr(console, "width", 80)
    result = runner.invoke(app, ["data", "describe", str(experiment.parent / "data")])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert "rating_histogram" in lines and "user_degree" in lines
