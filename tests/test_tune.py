"""`movierec tune`: search spaces, the Optuna study, resume, pruning plumbing, errors, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from movierec.cli import app
from movierec.data.dataset import Dataset
from movierec.models import available, get, get_class, installed
from movierec.models.space import Choice, Float, Int, check_space
from movierec.split import carve_validation

optuna = pytest.importorskip("optuna")
T = pytest.importorskip("movierec.tune")

runner = CliRunner()


def structured(n_users: int = 40, n_items: int = 30, n: int = 700, seed: int = 0) -> Dataset:
    """Ratings = 3 + item effect + user effect + noise, rounded to 1..5: biases matter."""
    g = np.random.default_rng(seed)
    cells = g.choice(n_users * n_items, size=n, replace=False)
    u, i = cells // n_items + 1, cells % n_items + 1
    item_effect = np.linspace(-1.5, 1.5, n_items)[i - 1]
    user_effect = g.normal(0, 0.5, n_users)[u - 1]
    r = np.clip(np.rint(3 + item_effect + user_effect + g.normal(0, 0.7, n)), 1, 5)
    frame = pd.DataFrame({"user_id": u, "item_id": i, "rating": r.astype(float),
                          "timestamp": g.integers(0, 10**6, n)})
    return Dataset(frame, name="structured")


@pytest.fixture
def parts() -> tuple[Dataset, Dataset]:
    return carve_validation(structured(), 0.2, rng=0)


# --- search spaces ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", installed())
def test_search_space_names_real_parameters_and_builds(name: str) -> None:
    """Every declared range's ends (and every choice) make a valid model."""
    cls = get_class(name)
    check_space(name, cls.search_space, cls.param_names())
    for key, dist in cls.search_space.items():
        values = dist.choices if isinstance(dist, Choice) else (dist.low, dist.high)
        for value in values:
            assert get(name, **{key: value}).params()[key] == value


def test_models_without_a_space_are_the_untunable_ones() -> None:
    empty = [n for n in installed() if not get_class(n).search_space]
    assert set(empty) <= {"mean", "pop"}, empty


def test_space_distributions_reject_bad_ranges() -> None:
    with pytest.raises(ValueError, match="low > 0"):
        Float(0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="low ≤ high"):
        Int(5, 1)
    with pytest.raises(ValueError, match="at least one"):
        Choice([])
    with pytest.raises(ValueError, match="unknown parameter"):
        check_space("x", {"nope": Int(1, 2)}, ["k"])
    assert Int(1, 5).contains(3) and not Int(1, 5).contains(True)
    assert Float(0.1, 1.0).contains(0.5) and not Float(0.1, 1.0).contains(2.0)


# --- metrics ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("metric", "parsed", "direction"), [
    ("rmse", ("rmse", None), "minimize"), ("MAE", ("mae", None), "minimize"),
    ("ndcg@10", ("ndcg", 10), "maximize"), ("recall@20", ("recall", 20), "maximize"),
])
def test_metric_parsing(metric: str, parsed: tuple, direction: str) -> None:
    assert T.check_metric(metric) == parsed
    assert T.metric_direction(metric) == direction


@pytest.mark.parametrize("metric", ["auc", "ndcg", "ndcg@0", "ndcg@x", "coverage@10"])
def test_unknown_metric_is_an_error(metric: str) -> None:
    with pytest.raises(T.TuneError, match="unknown metric"):
        T.check_metric(metric)


# --- the study -------------------------------------------------------------------------------
def test_tune_bias_finds_the_best_trial_and_writes_it(parts, tmp_path: Path) -> None:
    train, valid = parts
    res = T.tune("bias", train, valid, metric="rmse", trials=6, rng=3, out=tmp_path,
                 progress=False)
    best = json.loads((tmp_path / "best.json").read_text())
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert len(trials) == 6 and res.trials == 6 and res.complete == 6
    assert best["model"] == "bias" and best["metric"] == "rmse"
    assert best["direction"] == "minimize"
    assert best["value"] == pytest.approx(trials["value"].min())
    assert set(best["tuned"]) == {"reg_user", "reg_item"}
    # The reported value is what the best parameters really give on the validation data.
    model = get("bias", **best["params"]).fit(train, rng=0, progress=False)
    assert T.validation_value(model, train, valid, "rmse", 0.0) == pytest.approx(best["value"])
    # ... and the search explored: the trials do not all share one value.
    assert trials["value"].nunique() > 1


def test_rerun_continues_the_stored_study(parts, tmp_path: Path) -> None:
    train, valid = parts
    T.tune("bias", train, valid, trials=2, rng=1, out=tmp_path, progress=False)
    first = pd.read_csv(tmp_path / "trials.csv")
    res = T.tune("bias", train, valid, trials=5, rng=1, out=tmp_path, progress=False)
    after = pd.read_csv(tmp_path / "trials.csv")
    assert res.trials == 5 and len(after) == 5
    pd.testing.assert_frame_equal(after.iloc[:2][first.columns].reset_index(drop=True),
                                  first, check_dtype=False)
    # The resumed sampler does not replay the first suggestions.
    assert not np.allclose(after["params_reg_user"].iloc[2:4], first["params_reg_user"])
    # A study that already has enough trials runs none.
    again = T.tune("bias", train, valid, trials=3, rng=1, out=tmp_path, progress=False)
    assert again.trials == 5 and len(pd.read_csv(tmp_path / "trials.csv")) == 5


def test_same_seed_same_suggestions(parts, tmp_path: Path) -> None:
    train, valid = parts
    a = T.tune("bias", train, valid, trials=3, rng=7, out=tmp_path / "a", progress=False)
    b = T.tune("bias", train, valid, trials=3, rng=7, out=tmp_path / "b", progress=False)
    assert a.params == b.params and a.value == b.value


def test_seed_is_the_deprecated_name_of_rng(parts, tmp_path: Path) -> None:
    train, valid = parts
    a = T.tune("bias", train, valid, trials=3, rng=7, out=tmp_path / "a", progress=False)
    with pytest.warns(DeprecationWarning, match=r"tune\(seed=\.\.\.\) is deprecated; use rng"):
        b = T.tune("bias", train, valid, trials=3, seed=7, out=tmp_path / "b", progress=False)
    assert a.params == b.params and a.value == b.value
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="give rng only"):
        T.tune("bias", train, valid, trials=1, seed=7, rng=8, out=tmp_path / "c",
               progress=False)


def test_old_parameter_names_in_fixed_and_params_files(parts, tmp_path: Path) -> None:
    train, valid = parts
    with pytest.warns(DeprecationWarning, match="'k' is deprecated; use 'n_neighbors'"):
        res = T.tune("itemknn", train, valid, metric="ndcg@5", trials=2, rng=0,
                     fixed={"k": 5}, out=tmp_path / "t", progress=False)
    assert res.params["n_neighbors"] == 5 and "n_neighbors" not in res.tuned
    old = {"model": "itemknn", "params": {"k": 7, "shrinkage": 2.0}}  # written before the rename
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.warns(DeprecationWarning, match="'k' is deprecated"):
        model, params = T.load_params_file(tmp_path / "old.json")
    assert (model, params) == ("itemknn", {"n_neighbors": 7, "shrinkage": 2.0})


def test_carve_validation_lives_in_split() -> None:
    import movierec.split

    assert T.carve_validation is movierec.split.carve_validation  # the old import still works
    rest, held = carve_validation(structured(), 0.2, rng=0)
    _, again = carve_validation(structured(), 0.2, 0)
    pd.testing.assert_frame_equal(held.ratings, again.ratings)
    assert rest.n_ratings + held.n_ratings == structured().n_ratings


def test_neural_trials_report_each_epoch_to_the_pruner(parts, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    train, valid = parts
    T.tune("mf", train, valid, metric="rmse", trials=2, rng=0, out=tmp_path, progress=False,
           fixed={"epochs": 3, "patience": None, "embedding_size": 4, "device": "cpu"})
    study = optuna.load_study(study_name="mf-rmse", storage=f"sqlite:///{tmp_path}/study.db")
    for trial in study.trials:
        assert sorted(trial.intermediate_values) == [1, 2, 3]
        assert trial.user_attrs["epochs_run"] == 3
    # Fixed parameters are not searched and are kept in the best parameters.
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["params"]["epochs"] == 3 and "epochs" not in best["tuned"]


def test_on_epoch_exception_stops_training(parts) -> None:
    pytest.importorskip("torch")
    train, valid = parts
    seen: list[int] = []

    class Stop(Exception):
        pass

    def hook(record: dict) -> None:
        seen.append(record["epoch"])
        assert record["metric"] == "rmse" and record["valid_metric"] > 0
        if record["epoch"] == 2:
            raise Stop

    model = get("mf", epochs=5, embedding_size=4, device="cpu")
    with pytest.raises(Stop):
        model.fit(train, valid, rng=0, progress=False, on_epoch=hook)
    assert seen == [1, 2]


def test_ranking_metric_on_a_ranking_model(parts, tmp_path: Path) -> None:
    train, valid = parts
    res = T.tune("itemknn", train, valid, metric="ndcg@5", trials=3, rng=0, out=tmp_path,
                 progress=False)
    assert res.direction == "maximize" and 0 <= res.value <= 1


# --- errors: one clear message, nothing written over best.json ------------------------------------
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"model": "pop"}, "no search space"),
    ({"model": "nope"}, "unknown model"),
    ({"model": "bias", "trials": 0}, "trials"),
    ({"model": "ease", "metric": "rmse"}, "does not predict ratings"),
    ({"model": "bias", "metric": "auc"}, "unknown metric"),
    ({"model": "bias", "fixed": {"bogus": 1}}, "no parameter"),
    ({"model": "ease", "metric": "ndcg@10", "fixed": {"lambda_": 5.0}}, "every parameter"),
    ({"model": "bias", "storage": "nosuchdb://nowhere"}, "cannot open the study"),
])
def test_bad_requests_fail_before_writing(parts, tmp_path: Path, kwargs: dict,
                                          match: str) -> None:
    train, valid = parts
    (tmp_path / "best.json").write_text("precious")
    args = {"metric": "rmse", "trials": 2, "out": tmp_path, "progress": False, **kwargs}
    with pytest.raises(T.TuneError, match=match):
        T.tune(args.pop("model"), train, valid, **args)
    assert (tmp_path / "best.json").read_text() == "precious"


def test_params_file_round_trip_and_errors(parts, tmp_path: Path) -> None:
    train, valid = parts
    T.tune("bias", train, valid, trials=2, out=tmp_path, progress=False)
    model, params = T.load_params_file(tmp_path / "best.json")
    assert model == "bias" and set(params) == set(get_class("bias").param_names())
    (tmp_path / "bad.json").write_text('{"model": "bias", "params": {"k": 3}}')
    with pytest.raises(T.TuneError, match="no parameter"):
        T.load_params_file(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(T.TuneError, match="not a readable JSON"):
        T.load_params_file(tmp_path / "junk.json")


# --- the command -----------------------------------------------------------------------------
def _write(ds: Dataset, path: Path) -> Path:
    ds.ratings.to_csv(path, index=False)
    return path


def test_cli_tune_then_benchmark_with_params_file(tmp_path: Path) -> None:
    full = structured()
    train_part, test_part = carve_validation(full, 0.2, rng=5)
    train = _write(train_part, tmp_path / "train.csv")
    test = _write(test_part, tmp_path / "test.csv")
    out = tmp_path / "tune"
    result = runner.invoke(app, ["tune", "--model", "userknn", "--train", str(train),
                                 "--metric", "ndcg@10", "--trials", "3", "--out", str(out),
                                 "--param", "shrinkage=5", "--no-progress"])
    assert result.exit_code == 0, result.output
    best = json.loads((out / "best.json").read_text())
    assert best["params"]["shrinkage"] == 5 and best["tuned"] == ["n_neighbors"]
    bench = tmp_path / "bench"
    result = runner.invoke(app, ["benchmark", "--train", str(train), "--test", str(test),
                                 "--models", "userknn,pop", "--params-file",
                                 str(out / "best.json"), "--out", str(bench), "--no-progress"])
    assert result.exit_code == 0, result.output
    runs = json.loads((bench / "results.json").read_text())["runs"]
    knn = next(r for r in runs if r["model"] == "userknn")
    assert knn["params"]["n_neighbors"] == best["params"]["n_neighbors"]
    assert knn["params"]["shrinkage"] == pytest.approx(best["params"]["shrinkage"])


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    train = _write(structured(), tmp_path / "train.csv")
    (tmp_path / "best.json").write_text(json.dumps({"model": "bias", "params": {}}))
    cases = [
        ["tune", "--model", "pop", "--train", str(train), "--out", str(tmp_path / "o")],
        ["tune", "--model", "bias", "--train", str(train), "--trials", "0",
         "--out", str(tmp_path / "o")],
        ["tune", "--model", "bias", "--train", str(train), "--metric", "auc",
         "--out", str(tmp_path / "o")],
        ["benchmark", "--train", str(train), "--test", str(train), "--models", "ease",
         "--params-file", str(tmp_path / "best.json")],
    ]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "error:" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o" / "best.json").exists()


def test_cli_dataset_split_never_reads_the_test_part(ml_100k, data_dir: Path) -> None:
    """The fit and validation parts are exactly the split's training part."""
    from movierec.cli._tune import _parts
    from movierec.split import make_split

    fit, held, _ = _parts(dataset="ml-100k", split="u1", test_size=0.2, train=None, valid=None,
                          valid_size=0.1, seed=0, min_user_ratings=0, min_item_ratings=0,
                          kcore=0, data_dir=data_dir)
    split = make_split(ml_100k, "u1", data_dir=data_dir / "ml-100k")
    cols = ["user_id", "item_id"]
    both = pd.concat([fit.ratings[cols], held.ratings[cols]])
    assert len(both) == split.train.n_ratings
    assert not both.merge(split.test.ratings[cols]).shape[0]


def test_time_ordered_split_gets_each_users_latest_ratings_as_validation(data_dir: Path
                                                                          ) -> None:
    """--split user-time: validation = each user's latest training ratings, never earlier ones."""
    from movierec.cli._tune import _parts

    fit, held, source = _parts(dataset="ml-100k", split="user-time", test_size=0.2, train=None,
                               valid=None, valid_size=0.1, seed=0, min_user_ratings=0,
                               min_item_ratings=0, kcore=0, data_dir=data_dir)
    assert "latest 10% per user" in source
    last_fit = fit.ratings.groupby("user_id")["timestamp"].max()
    first_held = held.ratings.groupby("user_id")["timestamp"].min()
    assert (first_held >= last_fit.reindex(first_held.index)).all()
    # The random carve-out (a user-random split) has no such order.
    fit, held, source = _parts(dataset="ml-100k", split="user-random", test_size=0.2, train=None,
                               valid=None, valid_size=0.1, seed=0, min_user_ratings=0,
                               min_item_ratings=0, kcore=0, data_dir=data_dir)
    assert "random (seed 0)" in source
    first_held = held.ratings.groupby("user_id")["timestamp"].min()
    last_fit = fit.ratings.groupby("user_id")["timestamp"].max()
    assert (first_held < last_fit.reindex(first_held.index)).mean() > 0.5


def test_registry_names_cover_every_model_with_a_space() -> None:
    """`available()` is what `tune --model` accepts: the CLI error lists them."""
    with pytest.raises(T.TuneError, match="known models"):
        T.tune("nope", structured(), structured(), progress=False)
    assert "ease" in available()


def test_report_of_a_tuning_folder(parts, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    train, valid = parts
    T.tune("bias", train, valid, trials=6, rng=0, out=tmp_path, progress=False)
    best, trials, importances = T.read_tuning(tmp_path)
    assert set(importances) == {"reg_user", "reg_item"}
    assert sum(importances.values()) == pytest.approx(1.0)
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "report.html").read_text()
    for section in ("summary", "history", "importances", "trials"):
        assert f"id='{section}'" in html
    assert (tmp_path / "figures" / "optimization-history.png").stat().st_size > 1000
    assert (tmp_path / "figures" / "param-importances.png").stat().st_size > 1000
    assert f"{best['value']:.4f}" in html and html.count("data:image/png;base64,") == 2


def test_two_workers_share_one_study(tmp_path: Path) -> None:
    """Two `movierec tune` processes on one SQLite storage fill one study with --trials trials."""
    import subprocess
    import sys

    train = _write(structured(), tmp_path / "train.csv")
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    cmd = [sys.executable, "-m", "movierec", "tune", "--model", "bias", "--train", str(train),
           "--trials", "8", "--storage", storage, "--study", "shared", "--no-progress"]
    procs = [subprocess.Popen([*cmd, "--out", str(tmp_path / f"w{i}")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="shared", storage=storage)
    finished = [t for t in study.trials if t.state.is_finished()]
    # MaxTrialsCallback stops both workers; a trial already running in the other may finish.
    assert 8 <= len(finished) <= 9
    numbers = {int(n) for i in range(2) for n in pd.read_csv(tmp_path / f"w{i}" / "trials.csv")
               ["number"]}
    assert len(numbers) == len(finished)


def test_first_trial_is_the_defaults(parts, tmp_path: Path) -> None:
    """A new study starts from the documented defaults, so the best is never worse than them."""
    train, valid = parts
    res = T.tune("bias", train, valid, trials=3, rng=0, out=tmp_path, progress=False)
    first = pd.read_csv(tmp_path / "trials.csv").iloc[0]
    assert first["params_reg_user"] == 15.0 and first["params_reg_item"] == 10.0
    default = get("bias").fit(train, rng=0, progress=False)
    assert res.value <= T.validation_value(default, train, valid, "rmse", 0.0) + 1e-12
