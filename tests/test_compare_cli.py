"""`movierec compare` and the benchmark's per-user files, marks and folds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from movierec.cli import app

runner = CliRunner()


def _files(tmp_path, seed: int = 0):
    """Synthetic train/test TSV files with two taste groups (60 users)."""
    gen = np.random.default_rng(seed)
    rows = []
    for u in range(1, 61):
        liked = np.arange(u % 2, 30, 2) + 1
        for i in gen.choice(liked, size=12, replace=False):
            rows.append((u, int(i), float(gen.integers(3, 6)), int(gen.integers(1e9, 2e9))))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    test = gen.random(len(frame)) < 0.25
    paths = tmp_path / "train.tsv", tmp_path / "test.tsv"
    frame[~test].to_csv(paths[0], sep="\t", header=False, index=False)
    frame[test].to_csv(paths[1], sep="\t", header=False, index=False)
    return paths


@pytest.fixture
def bench_dir(tmp_path):
    train, test = _files(tmp_path)
    out = tmp_path / "run"
    result = runner.invoke(app, ["benchmark", "--train", str(train), "--test", str(test),
                                 "--models", "pop,itemknn,bias", "--k", "5,10", "--relevance",
                                 "0", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    return out, result.output


def _fake_folder(path, n_users: int):
    """A benchmark folder by hand: two models, per-user ndcg@10 of `n_users` users."""
    runs = [{"model": m, "seed": 42, "metrics": {}, "fit_seconds": 0, "recommend_seconds": 0}
            for m in ("a", "b")]
    path.mkdir()
    (path / "results.json").write_text(json.dumps({"dataset": "x", "split": {}, "protocol": {},
                                                   "runs": runs}))
    (path / "per_user").mkdir()
    for j, m in enumerate("ab"):
        pd.DataFrame({"user_id": range(n_users), "ndcg@10": np.arange(n_users) * 0.125 + j / 2}
                     ).to_parquet(path / "per_user" / f"{m}-seed42.parquet")
    return path


def test_benchmark_stores_per_user_and_marks_table(bench_dir):
    out, output = bench_dir
    users = pd.read_parquet(out / "per_user" / "itemknn-seed42.parquet")
    assert {"user_id", "ndcg@10", "recall@5"} <= set(users.columns)
    summary = json.loads((out / "results.json").read_text())
    run = next(r for r in summary["runs"] if r["model"] == "itemknn")
    # the stored per-user values average to the summary metric
    assert users["ndcg@10"].mean() == pytest.approx(run["metrics"]["ndcg@10"])
    bias = pd.read_parquet(out / "per_user" / "bias-seed42.parquet")
    assert {"rmse", "mse", "n_rated"} <= set(bias.columns)
    assert "itemknn (baseline)" in output  # best NDCG@10 of the three
    assert "▼" in output and "significantly better/worse than itemknn" in output


def test_compare_writes_table(bench_dir):
    out, _ = bench_dir
    result = runner.invoke(app, ["compare", str(out), "--metric", "ndcg@10"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "comparisons.csv")
    assert set(table["model"]) == {"pop", "bias"} and set(table["baseline"]) == {"itemknn"}
    assert (table["verdict"] == "worse").all() and (table["ci_high"] < 0).all()
    assert (table["p_corrected"] >= table["p_value"]).all()
    doc = json.loads((out / "comparisons.json").read_text())
    assert doc["test"] == "t" and doc["correction"] == "holm" and len(doc["comparisons"]) == 2
    assert "worse" in result.output
    pairs = runner.invoke(app, ["compare", str(out), "--pairs", "--test", "wilcoxon",
                                "--correction", "bonferroni"])
    assert pairs.exit_code == 0, pairs.output
    assert len(pd.read_csv(out / "comparisons.csv")) == 3


def test_compare_sees_runs_of_earlier_calls(tmp_path):
    """A second `benchmark --models` call into the same folder adds to what compare pairs."""
    train, test = _files(tmp_path)
    out = tmp_path / "run"
    for models in ("pop,itemknn", "bias"):
        result = runner.invoke(app, ["benchmark", "--train", str(train), "--test", str(test),
                                     "--models", models, "--relevance", "0", "--out", str(out),
                                     "--no-progress"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["compare", str(out), "--metric", "ndcg@10",
                                 "--baseline", "itemknn"])
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(out / "comparisons.csv")["model"]) == {"pop", "bias"}


def test_compare_rmse_uses_per_user_errors(tmp_path):
    train, test = _files(tmp_path)
    out = tmp_path / "r"
    assert runner.invoke(app, ["benchmark", "--train", str(train), "--test", str(test),
                               "--models", "mean,bias", "--out", str(out),
                               "--no-progress"]).exit_code == 0
    result = runner.invoke(app, ["compare", str(out), "--metric", "rmse"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "comparisons.csv")
    assert table.loc[0, "metric"] == "rmse" and table.loc[0, "users"] > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--baseline", "nope"], "unknown baseline 'nope'"),
    (["--metric", "bogus@10"], "unknown metric 'bogus@10'"),
    (["--metric", "coverage@10"], "has no per-user values"),
    (["--test", "z"], "unknown test"),
    (["--correction", "fdr"], "unknown correction"),
])
def test_compare_bad_input_writes_nothing(bench_dir, args, message):
    out, _ = bench_dir
    result = runner.invoke(app, ["compare", str(out), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (out / "comparisons.csv").exists() and not (out / "comparisons.json").exists()


def test_compare_without_per_user_results(bench_dir):
    import shutil

    out, _ = bench_dir
    shutil.rmtree(out / "per_user")
    result = runner.invoke(app, ["compare", str(out)])
    assert result.exit_code == 2 and "no per-user results" in result.output
    assert not (out / "comparisons.csv").exists()


def test_compare_too_few_users(tmp_path):
    folder = _fake_folder(tmp_path / "few", 5)
    result = runner.invoke(app, ["compare", str(folder), "--test", "wilcoxon"])
    assert result.exit_code == 2
    assert "needs at least 6 paired users" in result.output and "got 5" in result.output
    assert not (folder / "comparisons.csv").exists()
    ok = runner.invoke(app, ["compare", str(folder), "--test", "t"])
    assert ok.exit_code == 0, ok.output  # b = a + 0.5 for every user: a is worse
    assert pd.read_csv(folder / "comparisons.csv").loc[0, "verdict"] == "worse"


def test_compare_pools_folds(tmp_path):
    from movierec import compare as C

    root = tmp_path / "cv"
    root.mkdir()
    for i in (1, 2):
        _fake_folder(root / f"fold-{i}", 4)
    frame = C.load_per_user(root)
    assert set(frame["fold"]) == {"fold-1", "fold-2"}
    table = C.compare(frame, "ndcg@10", baseline="b")
    # users 0..3 in each fold: 8 (fold, user) pairs, difference -0.5 for each
    assert table.loc[0, "users"] == 8 and table.loc[0, "folds"] == 2
    assert table.loc[0, "diff"] == -0.5 and table.loc[0, "p_value"] == 0.0


@pytest.mark.slow
def test_benchmark_ml100k_five_folds(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MOVIEREC_DATA_DIR", str(data_dir))
    out = tmp_path / "cv"
    result = runner.invoke(app, ["benchmark", "--dataset", "ml-100k", "--split", "ml100k-5fold",
                                 "--models", "pop,bias", "--k", "10", "--out", str(out),
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "folds.json").read_text())
    assert summary["folds"] == 5 and [s["name"] for s in summary["splits"]] == \
        ["u1", "u2", "u3", "u4", "u5"]
    assert "t-interval" in result.output and "pop (baseline)" in result.output
    compared = runner.invoke(app, ["compare", str(out)])
    assert compared.exit_code == 0, compared.output
    table = pd.read_csv(out / "comparisons.csv")
    assert table.loc[0, "folds"] == 5 and table.loc[0, "verdict"] == "worse"


def test_significance_figures():
    from movierec import plots as P

    matrix = pd.DataFrame([[np.nan, 1.0, 0.0], [-1.0, np.nan, -1.0], [0.0, 1.0, np.nan]],
                          index=list("abc"), columns=list("abc"))
    fig = P.significance_matrix(matrix, "ndcg@10")
    marks = sorted(t.get_text() for t in fig.axes[0].texts if t.get_text())
    assert marks == sorted(["▲", "=", "▼", "▼", "=", "▲"])
    bars = pd.DataFrame({"mean": [0.3, 0.2], "low": [0.28, 0.17], "high": [0.32, 0.22]},
                        index=["a", "b"])
    fig = P.interval_bars(bars, "ndcg@10")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["b", "a"]
