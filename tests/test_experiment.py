"""Experiment files: parsing and validation with line numbers, grids, resuming, protocols."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from movierec import metrics as M
from movierec.cli import app
from movierec.compare import compare, load_per_user
from movierec.data.dataset import Dataset
from movierec.errors import MovieRecError
from movierec.evaluate import evaluate_rated_items
from movierec.experiment import ExperimentError, load_experiment, parse_experiment, run_experiment
from movierec.models import get_class
from movierec.models.base import Recommender
from movierec.split import Split

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "experiments").glob("*.toml"))
runner = CliRunner()

BASE = """
[dataset]
release = "ml-100k"

[split]
kind = "random"
test_size = 0.2
"""


def parse(text: str, **kw: Any):
    return parse_experiment(text, source="exp.toml", **kw)


def error_of(text: str, **kw: Any) -> str:
    with pytest.raises(ExperimentError) as info:
        parse(text, **kw)
    return str(info.value)


# --- shipped files -------------------------------------------------------------------------------
def test_every_shipped_file_is_here():
    names = {p.name for p in SHIPPED}
    assert names >= {"ml-latest-small-hybrid.toml", "ml-1m-neumf.toml", "ml-100k-featurenet.toml",
                     "ml-100k-ngcf-grid.toml", "ml-100k-leaderboard.toml"}
    for path in SHIPPED:  # each says in its header what it mirrors
        assert path.read_text().startswith("# Mirrors "), path.name


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_file_parses_and_validates(path):
    check = True
    if path.stem == "ml-100k-ngcf-grid" and "sampling" not in get_class("ngcf").param_names():
        check = False  # the ngcf sampling parameters land separately; validate the structure
    exp = load_experiment(path, check_params=check)
    assert exp.name == path.stem
    runs = [r for s in exp.splits for r in exp.runs(s)]
    assert runs and all(r.seed in exp.seeds for r in runs)


def test_shipped_grid_expands_to_twelve_named_runs():
    exp = load_experiment(REPO / "experiments" / "ml-100k-ngcf-grid.toml", check_params=False)
    runs = exp.runs(exp.splits[0])
    names = [r.name for r in runs]
    assert len(names) == len(set(names)) == 12
    assert "ngcf[n_layers=2,sampling=full,loss=bpr]" in names
    assert {r.params["n_layers"] for r in runs} == {2, 3, 4}
    assert all(r.params["reg"] == 1e-5 for r in runs)


def test_shipped_files_quick_cuts_epochs_and_seeds():
    exp = load_experiment(REPO / "experiments" / "ml-1m-neumf.toml")
    (full,) = exp.runs(exp.splits[0])
    (quick,) = exp.runs(exp.splits[0], quick=True)
    assert full.params["epochs"] == 10 and quick.params["epochs"] == 1
    assert full.params["layers"] == [64, 32, 16]  # an array in the model table is one value


def test_leaderboard_skips_ranking_models_on_the_rating_split():
    exp = load_experiment(REPO / "experiments" / "ml-100k-leaderboard.toml")
    u1, user_time = exp.splits
    assert u1.name == "u1" and user_time.name == "user-time"
    on_u1 = {r.model for r in exp.runs(u1)}
    assert "pop" not in on_u1 and "bias" in on_u1
    assert "pop" in exp.skipped(u1)
    assert {r.model for r in exp.runs(user_time)} >= {"pop", "ease", "bias"}


# --- grids and tuples ----------------------------------------------------------------------------
def test_array_in_model_table_is_one_value_and_grid_expands():
    exp = parse(BASE + """
[models.mlp]
layers = [64, 32]
epochs = 2
[models.tower]
model = "mlp"
[models.tower.grid]
layers = [[64, 32], [32, 16, 8]]
dropout = [0.0, 0.5]
""")
    runs = exp.runs(exp.splits[0])
    assert [r.name for r in runs] == [
        "mlp", "tower[layers=(64,32),dropout=0.0]", "tower[layers=(64,32),dropout=0.5]",
        "tower[layers=(32,16,8),dropout=0.0]", "tower[layers=(32,16,8),dropout=0.5]"]
    assert runs[0].params == {"layers": [64, 32], "epochs": 2}
    assert runs[3].params == {"layers": [32, 16, 8], "dropout": 0.0}
    assert {r.model for r in runs} == {"mlp"}


def test_seeds_multiply_runs_and_lambda_maps_to_keyword():
    exp = parse(BASE + """
[experiment]
seeds = [1, 2]
[models.ease]
lambda = 250.0
""")
    runs = exp.runs(exp.splits[0])
    assert [(r.key, r.params) for r in runs] == [("ease-seed1", {"lambda_": 250.0}),
                                                 ("ease-seed2", {"lambda_": 250.0})]
    assert [r.seed for r in exp.runs(exp.splits[0], quick=True)] == [1]


# --- errors name the key and the line ------------------------------------------------------------
@pytest.mark.parametrize(("snippet", "line", "expect"), [
    ("[models.bias]\nreg_usr = 3.0\n", 9, "models.bias.reg_usr"),          # unknown parameter
    ("[models.bias]\nreg_user = \"high\"\n", 9, "models.bias.reg_user"),    # wrong type
    ("[models.nope]\n", 8, "unknown model 'nope'"),
    ("[models.bias]\n[models.bias.grid]\nreg_user = 3.0\n", 10, "models.bias.grid.reg_user"),
    ("[models.bias]\n[models.bias.grid]\nreg_user = []\n", 10, "non-empty array"),
    ("[models.bias]\nreg_user = 1.0\n[models.bias.grid]\nreg_user = [1.0, 2.0]\n", 11,
     "both a fixed parameter and a grid axis"),
    ("[models.bias]\n[evaluation]\nk = [10, \"20\"]\n", 10, "evaluation.k"),
    ("[models.bias]\n[evaluation]\nmetrics = [\"ndcgg\"]\n", 10, "unknown metric 'ndcgg'"),
    ("[models.bias]\n[evaluation]\nprotocol = \"rated-items\"\nmetrics = [\"coverage\"]\n", 11,
     "no protocol of ['rated-items'] gives 'coverage'"),
    ("[models.bias]\n[evaluation]\nprotocols = [\"full\", \"leave-out\"]\n", 10,
     "unknown protocol 'leave-out'"),
    ("[models.bias]\n[evaluation]\nsurprise = 1\n", 10, "unknown key in [evaluation]"),
    ("[models.pop]\n[evaluation]\nprotocol = \"rated-items\"\n", 8, "does not predict ratings"),
    ("[models.bias]\n[models.bias.grid]\nepochs = [1, 2]\n[models.bias.quick]\nepochs = 1\n",
     12, "--quick cannot override a grid axis"),
    ("[models.bias]\n[quick.params]\nepoks = 1\n", 10, "no model of this experiment takes it"),
    ("[models.bias]\n[modles.pop]\n", 9, "modles: unknown key in the top level"),
    ("[models.bias]\n[output.recommend]\nuser = \"me\"\n", 10, "output.recommend.user: expected"
     " an integer, got a string 'me'"),
])
def test_malformed_file_names_key_and_line(snippet, line, expect):
    message = error_of(BASE + snippet)
    assert message.startswith(f"exp.toml:{line}: "), message
    assert expect in message


def test_split_and_dataset_errors_name_their_key():
    assert "exp.toml:6: split.kind: unknown split kind 'sideways'" in error_of(
        BASE.replace('"random"', '"sideways"') + "[models.bias]\n")
    assert "exp.toml:7: split.test_size: must be in (0, 1), got 1.5" in error_of(
        BASE.replace("0.2", "1.5") + "[models.bias]\n")
    assert "dataset.release: unknown release 'ml-7k'" in error_of(
        BASE.replace("ml-100k", "ml-7k") + "[models.bias]\n")
    assert "dataset: missing" in error_of("[split]\nkind = \"random\"\n[models.bias]\n")
    assert "split.test_n" in error_of(BASE + "test_n = 2\n[models.bias]\n")  # not for random
    assert "exp.toml:3: dataset.filters.min_year: expected an integer" in error_of(
        "[dataset]\nrelease = \"ml-100k\"\nfilters = {min_year = \"1930\"}\n[split]\n"
        "kind = \"random\"\n[models.bias]\n")
    assert "not valid TOML" in error_of(BASE + "[models.bias\n")


def test_cli_malformed_file_prints_one_error_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + "[models.bias]\n[models.bias.grid]\nreg_user = 3.0\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(bad), "--out", str(out)])
    assert result.exit_code == 2
    assert f"error: {bad}:10: models.bias.grid.reg_user: a grid axis" in " ".join(
        result.output.split())
    assert not out.exists()


def test_cli_check_validates_without_running(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(BASE + "[models.bias]\n[models.bias.grid]\nreg_user = [1.0, 2.0]\n")
    result = runner.invoke(app, ["run", str(good), "--check", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "valid; 1 split(s), 2 run(s)" in result.output
    assert not (tmp_path / "o").exists()


# --- the rated-items protocol --------------------------------------------------------------------
def test_rated_precision_recall_by_hand():
    # user 0: rec {a, b}, rel {a, c}: P = R = F1 = 1/2; user 1: nothing rec or rel: all NaN;
    # user 2: rec {}, rel {d}: P NaN, R = 0, F1 NaN; user 3: rec {e}, rel {}: P = 0, R NaN.
    users = np.array([0, 0, 0, 1, 1, 2, 3])
    rec = np.array([1, 1, 0, 0, 0, 0, 1], bool)
    rel = np.array([1, 0, 1, 0, 0, 1, 0], bool)
    p, r, f = M.rated_precision_recall(users, rec, rel, 5)
    np.testing.assert_allclose(p, [0.5, np.nan, np.nan, 0.0, np.nan])
    np.testing.assert_allclose(r, [0.5, np.nan, 0.0, np.nan, np.nan])
    np.testing.assert_allclose(f, [0.5, np.nan, np.nan, np.nan, np.nan])
    # P + R = 0 gives F1 = 0, not NaN
    p, r, f = M.rated_precision_recall(np.array([0, 0]), np.array([True, False]),
                                       np.array([False, True]), 1)
    assert (p[0], r[0], f[0]) == (0.0, 0.0, 0.0)


class _Fixed(Recommender):
    """Predicts the ratings it is given: {(user_id, item_id): rating}."""

    predicts_ratings: ClassVar[bool] = True

    def __init__(self, *, table: dict | None = None) -> None:
        self.table = table

    def fit(self, train, valid=None, *, rng=None, progress=True):
        self._setup(train)
        return self

    def _predict(self, u, i):
        users = self.user_vocab_.ids(u)
        items = self.item_vocab_.ids(i)
        return np.array([self.table[(int(a), int(b))] for a, b in zip(users, items, strict=True)])


def _frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def test_evaluate_rated_items_by_hand():
    train = Dataset(_frame([(u, i, 3.0, 1) for u in (1, 2, 3, 4) for i in (10, 20, 30, 40, 50)]),
                    name="t", rating_scale=(1.0, 5.0))
    # (user, item, true, predicted)
    rows = [(1, 10, 5.0, 4.5), (1, 20, 2.0, 4.2), (1, 30, 4.0, 3.0),  # P = 1/2, R = 1/2
            (2, 10, 3.0, 2.0), (2, 40, 1.0, 1.0),                     # nothing: skipped
            (3, 20, 4.0, 3.9),                                        # P undefined, R = 0
            (4, 50, 2.0, 4.0)]                                        # P = 0, R undefined
    test = Dataset(_frame([(u, i, r, 2) for u, i, r, _ in rows]), name="t",
                   rating_scale=(1.0, 5.0))
    model = _Fixed(table={(u, i): p for u, i, _, p in rows}).fit(train)
    got, counts = evaluate_rated_items(model, Split(train, test, name="x"), 4.0, with_counts=True)
    sq = [((r - p) / 4.0) ** 2 for _, _, r, p in rows]
    assert got["precision_rated"] == pytest.approx((0.5 + 0.0) / 2)
    assert got["recall_rated"] == pytest.approx((0.5 + 0.0) / 2)
    assert got["f1_rated"] == pytest.approx(0.5)
    assert got["rmse_scaled"] == pytest.approx(math.sqrt(sum(sq) / len(sq)))
    assert counts == {"rated_rows": 7, "rated_users": 4, "rated_users_with_recommended": 2,
                      "rated_users_with_relevant": 2, "rated_users_f1": 1}
    assert not any("@" in key for key in got)  # never mixed with full-ranking keys


def test_evaluate_rated_items_needs_a_rating_model(tiny):
    from movierec.models import get
    from movierec.split import make_split

    split = make_split(tiny, "random", test_size=0.3, rng=0)
    with pytest.raises(MovieRecError, match="does not predict ratings"):
        evaluate_rated_items(get("pop").fit(split.train), split)


# --- running ---------------------------------------------------------------------------------
def _release(tmp_path: Path, layout: str = "csv", **kw: Any) -> Path:
    from movierec.data.synthetic import write_release

    return write_release(layout, tmp_path / "data", **{"n_users": 30, "n_items": 40,  # type: ignore
                                                        "n_ratings": 400, "rng": 3, **kw})


def _small(tmp_path: Path, extra: str = "") -> Path:
    folder = _release(tmp_path)
    path = tmp_path / "small.toml"
    path.write_text(f"""
[experiment]
seeds = [1, 2]
[dataset]
path = "{folder.name}"
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
{extra}""")
    return path


def test_run_writes_benchmark_folder_with_both_protocols(tmp_path):
    from movierec.analysis import load_benchmark

    exp = load_experiment(_small(tmp_path))
    out = tmp_path / "run"
    results = run_experiment(exp, out)
    data = json.loads((out / "results.json").read_text())
    names = [(r["model"], r["seed"]) for r in data["runs"]]
    assert names == [("pop", 1), ("pop", 2), ("bias[reg_user=1.0]", 1), ("bias[reg_user=1.0]", 2),
                     ("bias[reg_user=5.0]", 1), ("bias[reg_user=5.0]", 2)]
    assert data["protocol"]["protocol"] == "full+rated-items"
    runs = {(r["model"], r["seed"]): r for r in data["runs"]}
    bias = runs[("bias[reg_user=5.0]", 1)]["metrics"]
    assert {"rmse", "ndcg@5", "precision_rated", "recall_rated", "f1_rated",
            "rmse_scaled"} <= set(bias)
    assert bias["rmse_scaled"] == pytest.approx(bias["rmse"] / 4.5)  # csv scale 0.5-5
    assert "precision_rated" not in runs[("pop", 1)]["metrics"]  # pop predicts no ratings
    assert runs[("bias[reg_user=5.0]", 1)]["params"]["reg_user"] == 5.0
    assert len(list((out / "runs").glob("*.json"))) == 6
    assert len(list((out / "lists").glob("*.parquet"))) == 6
    loaded = load_benchmark(out)  # what `movierec report` reads
    assert set(loaded.table(5).index) == {"pop", "bias[reg_user=1.0]", "bias[reg_user=5.0]"}
    assert results["split"].runs == data["runs"]
    # Per-user values, as a benchmark folder stores them: `movierec compare` pairs the runs.
    users = pd.read_parquet(out / "per_user" / "bias[reg_user=5.0]-seed1.parquet")
    assert {"user_id", "ndcg@5", "rmse"} <= set(users.columns)
    assert users["user_id"].is_unique and len(users) > 0
    table = compare(load_per_user(out), "ndcg@5", baseline="pop")
    assert set(table["model"]) == {"bias[reg_user=1.0]", "bias[reg_user=5.0]"}
    assert (table["users"] == users["ndcg@5"].notna().sum()).all()  # users with a relevant movie


def test_rerun_skips_finished_runs_and_refuses_changed_settings(tmp_path):
    path = _small(tmp_path)
    out = tmp_path / "run"
    run_experiment(load_experiment(path), out)
    (out / "runs" / "pop-seed2.json").unlink()  # as if interrupted before pop's second seed
    (out / "results.json").unlink()
    before = (out / "runs" / "pop-seed1.json").stat().st_mtime_ns
    messages: list[str] = []
    run_experiment(load_experiment(path), out, on_message=messages.append)
    done = [m for m in messages if m.endswith("already done")]
    assert len(done) == 5 and not any("pop-seed2" in m for m in done)
    assert (out / "runs" / "pop-seed1.json").stat().st_mtime_ns == before
    assert len(json.loads((out / "results.json").read_text())["runs"]) == 6
    # the same run names on another split (or with other parameters): refused, nothing written
    path.write_text(path.read_text().replace("[models.pop]", "[models.pop]\n[models.mean]")
                    .replace("seed = 5", "seed = 6"))
    with pytest.raises(ExperimentError, match="holds a run made with other settings"):
        run_experiment(load_experiment(path), out)
    assert not (out / "runs" / "mean-seed1.json").exists()
    assert (out / "runs" / "pop-seed1.json").stat().st_mtime_ns == before


def test_metrics_selection_and_mse(tmp_path):
    path = _small(tmp_path)
    text = path.read_text().replace('relevance = 3.5', 'relevance = 3.5\nmetrics = ["mse", '
                                    '"precision"]')
    path.write_text(text)
    run_experiment(load_experiment(path), tmp_path / "run")
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    runs = {r["model"]: r["metrics"] for r in data["runs"]}
    assert set(runs["pop"]) == {"precision@5"}
    assert set(runs["bias[reg_user=1.0]"]) == {"mse", "precision@5", "precision_rated"}


def test_recommendations_for_one_user_and_missing_user(tmp_path):
    path = _small(tmp_path, "[output.recommend]\nuser = 2\nk = 3\n")
    out = tmp_path / "run"
    run_experiment(load_experiment(path), out)
    recs = pd.read_csv(out / "recommendations" / "pop-seed1.csv")
    assert list(recs["user_id"].unique()) == [2] and len(recs) == 3
    assert list(recs["rank"]) == [1, 2, 3] and "title" in recs.columns
    path.write_text(path.read_text().replace("user = 2", "user = 999"))
    with pytest.raises(ExperimentError, match="user 999 has no training rating"):
        run_experiment(load_experiment(path), tmp_path / "run2")
    assert not (tmp_path / "run2").exists()


def test_ml_1m_file_runs_quick_on_synthetic_ml_1m(tmp_path):
    from movierec.data.synthetic import write_release

    write_release("ml1m", tmp_path / "ml-1m", n_users=40, n_items=60, n_ratings=900, rng=1)
    out = tmp_path / "run"
    t0 = time.perf_counter()
    result = runner.invoke(app, ["run", str(REPO / "experiments" / "ml-1m-neumf.toml"), "--quick",
                                 "--out", str(out), "--data-dir", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - t0 < 60
    data = json.loads((out / "results.json").read_text())
    (run,) = data["runs"]
    assert run["model"] == "neumf" and run["params"]["epochs"] == 1 and len(run["history"]) == 1
    assert data["dataset"] == "ml-1m" and data["split"]["name"] == "user-random"
    recs = pd.read_csv(out / "recommendations" / "neumf-seed42.csv")
    assert len(recs) == 10 and set(recs["user_id"]) == {1}
    (ckpt,) = (out / "checkpoints").iterdir()
    assert ckpt.name.startswith("neumf-seed42-") and (ckpt / "last.json").is_file()
    assert ckpt.name.endswith(run["run_key"])


# --- the shipped files on real data (--quick) ---------------------------------------------
REAL = {"ml-100k-featurenet": "ml-100k", "ml-latest-small-hybrid": "ml-latest-small",
        "ml-100k-ngcf-grid": "ml-100k", "ml-100k-leaderboard": "ml-100k"}


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(REAL))
def test_shipped_file_runs_quick_on_real_data(stem, data_dir, tmp_path):
    if not (data_dir / REAL[stem]).is_dir():
        pytest.skip(f"{REAL[stem]} is not in {data_dir}")
    exp = load_experiment(REPO / "experiments" / f"{stem}.toml")
    results = run_experiment(exp, tmp_path / "run", quick=True, data_dir=data_dir)
    for spec in exp.splits:
        folder = tmp_path / "run" / spec.name if exp.multi_split else tmp_path / "run"
        data = json.loads((folder / "results.json").read_text())
        assert len(data["runs"]) == len(exp.runs(spec, quick=True)) > 0
        for run in data["runs"]:
            assert run["metrics"] and all(v is None or np.isfinite(v)
                                          for v in run["metrics"].values()), run["model"]
        assert results[spec.name].runs == data["runs"]


def test_people_grid_runs_quick_on_a_hetrec_layout_folder(tmp_path):
    # The HetRec people grid (24 NGCF runs with and without people edges) end to end, --quick,
    # on a synthetic folder in HetRec's layout (model-level people tests: test_graph_knowledge).
    from movierec.data.synthetic._hetrec import write_hetrec

    data = tmp_path / "data"
    write_hetrec(data / "hetrec2011-movielens-2k-v2", n_users=30, n_items=40, n_ratings=400,
                 rng=0)
    exp = load_experiment(REPO / "experiments" / "hetrec-ngcf-people-grid.toml")
    run_experiment(exp, tmp_path / "run", quick=True, data_dir=data)
    runs = json.loads((tmp_path / "run" / "results.json").read_text())["runs"]
    names = {r["model"] for r in runs}
    assert len(runs) == 24
    assert "ngcf[n_layers=2,sampling=full,loss=bpr,knowledge=true]" in names
    assert all(np.isfinite(r["metrics"]["ndcg@10"]) for r in runs)
