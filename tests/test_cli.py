"""The `movierec` command: options parse, errors print one line, benchmark writes its files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from movierec.cli import app, parse_int_list, parse_params

runner = CliRunner()


def _write_split(tmp_path, seed: int = 0):
    """Synthetic train/test TSV files (no header) with two taste groups."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, 41):
        liked = np.arange(u % 2, 30, 2) + 1
        for i in rng.choice(liked, size=10, replace=False):
            rows.append((u, int(i), float(rng.integers(3, 6)), int(rng.integers(1e9, 2e9))))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    test_mask = rng.random(len(frame)) < 0.2
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    frame[~test_mask].to_csv(train, sep="\t", header=False, index=False)
    frame[test_mask].to_csv(test, sep="\t", header=False, index=False)
    return train, test


def test_help_lists_commands_and_options():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "benchmark" in result.output and "data" in result.output
    result = runner.invoke(app, ["benchmark", "--help"])
    assert result.exit_code == 0
    for option in ("--dataset", "--split", "--models", "--param", "--seeds", "--relevance"):
        assert option in result.output


def test_benchmark_on_files_writes_results(tmp_path):
    train, test = _write_split(tmp_path)
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "benchmark", "--train", str(train), "--test", str(test), "--models", "pop,itemknn,bias",
        "--k", "5,10", "--relevance", "0", "--param", "itemknn.n_neighbors=10", "--out", str(out),
        "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "itemknn" in result.output and "NDCG@10" in result.output
    data = json.loads((out / "results.json").read_text())
    assert data["protocol"] == {"relevance": 0.0, "k": [5, 10], "candidates": "all-unseen",
                                "protocol": "full"}
    runs = {r["model"]: r for r in data["runs"]}
    assert set(runs) == {"pop", "itemknn", "bias"}
    assert runs["itemknn"]["params"]["n_neighbors"] == 10
    assert "rmse" in runs["bias"]["metrics"] and "rmse" not in runs["pop"]["metrics"]
    for key in ("precision@10", "recall@10", "f1@10", "ndcg@10", "map@10", "mrr@10", "hit@10",
                "coverage@10", "novelty@10", "arp@10", "personalization@10"):
        assert 0 <= runs["itemknn"]["metrics"][key] < float("inf"), key
    # two taste groups: a neighbourhood model must beat popularity
    assert runs["itemknn"]["metrics"]["ndcg@10"] > runs["pop"]["metrics"]["ndcg@10"]
    csv = pd.read_csv(out / "results.csv")
    assert sorted(csv["model"]) == ["bias", "itemknn", "pop"]
    assert (out / "lists" / "itemknn-seed42.parquet").is_file()


def test_errors_print_one_line_and_exit_nonzero(tmp_path):
    result = runner.invoke(app, ["benchmark", "--train", str(tmp_path / "missing.csv"),
                                 "--test", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["benchmark", "--models", "nope", "--train", "a", "--test", "b"])
    assert result.exit_code == 2 and "unknown model" in result.output
    result = runner.invoke(app, ["benchmark"])
    assert result.exit_code == 2 and "--dataset" in result.output


def test_bad_file_error_names_file_and_line(tmp_path):
    train, test = _write_split(tmp_path)
    lines = train.read_text().splitlines()
    lines[3] = "7\tnot-an-item\t4\t0"
    train.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["benchmark", "--train", str(train), "--test", str(test),
                                 "--models", "pop"])
    assert result.exit_code == 2
    assert "train.tsv:4:" in result.output and "not-an-item" in result.output


def test_parse_params_maps_keywords_and_literals():
    params = parse_params(["ease.lambda=250", "itemknn.similarity=pearson", "itemknn.k=30"],
                          ["ease", "itemknn"])
    assert params == {"ease": {"lambda_": 250}, "itemknn": {"similarity": "pearson", "k": 30}}
    with pytest.raises(ValueError, match="MODEL.KEY=VALUE"):
        parse_params(["ease=3"], ["ease"])
    with pytest.raises(ValueError, match="not among"):
        parse_params(["mf.k=3"], ["ease"])


def test_parse_int_list():
    assert parse_int_list("5,10,20", "--k") == [5, 10, 20]
    with pytest.raises(ValueError, match="--k"):
        parse_int_list("5,x", "--k")
    with pytest.raises(ValueError, match="positive"):
        parse_int_list("0", "--k")


def test_unknown_param_for_model_is_reported(tmp_path):
    train, test = _write_split(tmp_path)
    result = runner.invoke(app, ["benchmark", "--train", str(train), "--test", str(test),
                                 "--models", "ease", "--param", "ease.alpha=1"])
    assert result.exit_code == 2 and "alpha" in result.output


@pytest.mark.slow
def test_benchmark_ml100k_several_seeds(data_dir, tmp_path):
    result = runner.invoke(app, ["benchmark", "--dataset", "ml-100k", "--models", "pop,ease",
                                 "--seeds", "1,2", "--data-dir", str(data_dir),
                                 "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "results.json").read_text())
    # Both fits ignore the seed: each is fitted once and serves both seeds.
    assert [(r["model"], r["seed"], r["seeds_served"]) for r in data["runs"]] == [
        ("pop", 1, [1, 2]), ("ease", 1, [1, 2])]
    assert data["split"]["name"] == "user-random" and data["split"]["test_ratings"] > 19000
    ease = [r["metrics"]["ndcg@10"] for r in data["runs"] if r["model"] == "ease"]
    pop = [r["metrics"]["ndcg@10"] for r in data["runs"] if r["model"] == "pop"]
    assert min(ease) > max(pop)


def test_data_describe_synthetic_folder(tmp_path):
    from movierec.data.synthetic import write_release

    folder = write_release("csv", tmp_path / "ml-synthetic", rng=1)
    result = runner.invoke(app, ["data", "describe", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["ratings"] > 0 and stats["users"] > 0


def test_sep_option_reads_files_whose_separator_is_not_detected(tmp_path):
    train, test = _write_split(tmp_path)
    for path in (train, test):  # '#' is not among the separators that are sniffed
        path.write_text(path.read_text().replace("\t", "#"))
    args = ["benchmark", "--train", str(train), "--test", str(test), "--models", "pop",
            "--relevance", "0", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "could not detect the separator" in result.output
    assert "--sep on the command line" in result.output
    result = runner.invoke(app, [*args, "--sep", "#"])
    assert result.exit_code == 0, result.output
    n_train, n_test = (len(p.read_text().splitlines()) for p in (train, test))
    assert f"train {n_train:,} / test {n_test:,} ratings" in result.output  # every line read


def test_sep_option_names_and_misuse(tmp_path):
    from movierec.cli._app import parse_sep

    assert parse_sep("tab") == parse_sep("\\t") == "\t"
    assert parse_sep("whitespace") == parse_sep("space") == "whitespace"
    assert parse_sep(";") == ";" and parse_sep(None) is None
    with pytest.raises(ValueError, match="--sep: unusable separator"):
        parse_sep('"')
    train, test = _write_split(tmp_path)
    result = runner.invoke(app, ["benchmark", "--train", str(train), "--test", str(test),
                                 "--models", "pop", "--sep", "tab", "--no-progress"])
    assert result.exit_code == 0, result.output
    for command in (["train", "--model", "pop", "--out", str(tmp_path / "m")], ["tune"]):
        assert "--sep" in runner.invoke(app, [*command, "--help"]).output


def test_sep_with_a_release_is_refused(tmp_path):
    from movierec.data.synthetic import write_release

    write_release("ml100k", tmp_path / "ml-100k", n_users=20, n_items=30, n_ratings=200, rng=1)
    result = runner.invoke(app, ["benchmark", "--dataset", "ml-100k", "--data-dir",
                                 str(tmp_path), "--models", "pop", "--sep", "tab",
                                 "--no-progress"])
    assert result.exit_code == 2
    assert "--sep: only for rating files given with --train/--test" in result.output


def test_split_seeds_run_one_folder_per_split(tmp_path):
    from movierec.data.synthetic import write_release

    write_release("ml100k", tmp_path / "ml-100k", n_users=30, n_items=40, n_ratings=500, rng=1)
    out = tmp_path / "runs"
    result = runner.invoke(app, ["benchmark", "--dataset", "ml-100k", "--data-dir",
                                 str(tmp_path), "--models", "pop,bias", "--split-seeds", "1,2",
                                 "--relevance", "0", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "mean ± std over split seeds 1,2" in result.output
    tests = []
    for seed in (1, 2):
        data = json.loads((out / f"split-seed-{seed}" / "results.json").read_text())
        assert data["split"]["seed"] == seed and [r["model"] for r in data["runs"]] == \
            ["pop", "bias"]
        tests.append(data["runs"][0]["metrics"]["ndcg@10"])
    assert tests[0] != tests[1]  # another split, another test part


def test_ctrl_c_in_train_says_how_to_resume(tmp_path, monkeypatch):
    import movierec.pipeline
    from movierec.data.synthetic import write_release

    write_release("ml100k", tmp_path / "ml-100k", n_users=20, n_items=30, n_ratings=200, rng=1)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(movierec.pipeline, "fit_evaluate", interrupted)
    result = runner.invoke(app, ["train", "--dataset", "ml-100k", "--data-dir", str(tmp_path),
                                 "--model", "mf", "--out", str(tmp_path / "m"), "--no-progress"])
    assert result.exit_code == 130
    assert f"the last complete epoch is in {tmp_path / 'm.ckpt'}" in result.output
    assert "--resume" in result.output


def test_tune_judges_relevance_as_benchmark_does():
    import inspect

    from movierec.tune import tune

    assert inspect.signature(tune).parameters["relevance"].default == 4.0
    text = runner.invoke(app, ["tune", "--help"], env={"COLUMNS": "200"}).output
    assert "[default: 4.0]" in text.split("--relevance", 1)[1].split("--", 1)[0]


@pytest.mark.parametrize("command", ["train", "benchmark", "run", "tune", "recommend", "similar",
                                     "retrain"])
def test_every_command_that_trains_or_scores_takes_threads(command):
    text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
    assert "--threads" in text, command
