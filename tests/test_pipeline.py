"""The run pipeline: SplitSpec builds and rebuilds splits, fit_evaluate, benchmark resumption."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec import benchmark
from movierec import metrics as M
from movierec.data.dataset import Dataset
from movierec.data.synthetic import make_ratings
from movierec.evaluate import evaluate
from movierec.models import get
from movierec.pipeline import (
    AUTO_VALID_SIZE,
    EvaluationSpec,
    SplitSpec,
    fit_evaluate,
    resolve_threads,
)
from movierec.split import make_split


@pytest.fixture
def small() -> Dataset:
    return Dataset(make_ratings(40, 30, 600, rng=3), name="small")


# --- SplitSpec -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["random", "user-random", "user-time", "loo"])
def test_spec_builds_what_make_split_builds(small: Dataset, kind: str) -> None:
    spec = SplitSpec(kind=kind, test_size=0.25, seed=5)
    built = spec.build(ds=small)
    direct = make_split(small, kind, test_size=0.25, rng=5)
    pd.testing.assert_frame_equal(built.test.ratings, direct.test.ratings)
    pd.testing.assert_frame_equal(built.train.ratings, direct.train.ratings)


@pytest.mark.parametrize("kind", ["random", "user-random", "user-time", "time", "loo"])
def test_spec_from_the_record_rebuilds_the_same_split(small: Dataset, kind: str) -> None:
    first = SplitSpec(kind=kind, test_size=0.3, valid_size=0.1, seed=9,
                      filters={"min_user_ratings": 5}).build(ds=small)
    again = SplitSpec.from_record(first.describe()).build(ds=small)
    assert again.report == first.report and again.name == first.name
    pd.testing.assert_frame_equal(again.test.ratings, first.test.ratings)
    assert again.valid is not None and first.valid is not None
    pd.testing.assert_frame_equal(again.valid.ratings, first.valid.ratings)


def test_files_split_carves_validation_from_the_training_file(small: Dataset,
                                                              tmp_path: Path) -> None:
    # Before, --valid-size was silently ignored with --train/--test files.
    part = make_split(small, "random", test_size=0.2, rng=1)
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    part.train.ratings.to_csv(train, index=False)
    part.test.ratings.to_csv(test, index=False)
    plain = SplitSpec(train=train, test=test).build()
    carved = SplitSpec(train=train, test=test, valid_size=0.2, seed=1).build()
    assert plain.valid is None and plain.name == "files"
    assert carved.valid is not None
    assert carved.train.n_ratings + carved.valid.n_ratings == plain.train.n_ratings
    assert carved.test.n_ratings == plain.test.n_ratings
    assert carved.params["valid_size"] == 0.2


def test_spec_needs_both_files() -> None:
    with pytest.raises(ValueError, match="--train and --test go together"):
        SplitSpec(train=Path("a.csv"))


# --- fit_evaluate --------------------------------------------------------------------------------
def test_fit_evaluate_gives_the_evaluator_s_metrics(small: Dataset) -> None:
    split = make_split(small, "user-random", test_size=0.2, rng=2)
    record = fit_evaluate("itemknn", split, seed=1,
                          evaluation=EvaluationSpec(k=(5, 10), relevance=3.0))
    direct = evaluate(get("itemknn").fit(split.train, rng=1), split, ks=(5, 10), relevance=3.0)
    for key, value in direct.summary.items():
        assert record.metrics[key] == pytest.approx(value, nan_ok=True) or \
            (record.metrics[key] is None and np.isnan(value))
    assert record.validation == "none" and record.fitted is not None
    data = record.to_dict()
    assert data["model"] == "itemknn" and data["threads"] == record.threads
    json.dumps(data)  # JSON-ready


def test_checkpoints_refused_for_models_not_trained_by_epochs(small: Dataset,
                                                             tmp_path: Path) -> None:
    split = make_split(small, "random", rng=2)
    with pytest.raises(ValueError, match="not trained epoch by epoch"):
        fit_evaluate("ease", split, checkpoint_dir=tmp_path / "ckpt", resume=True)


@pytest.fixture
def torch_one_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("kind, rule", [("user-random", "at random"), ("user-time", "latest")])
def test_early_stopping_model_carves_its_own_validation(small: Dataset, kind: str, rule: str,
                                                        torch_one_thread: None) -> None:
    split = make_split(small, kind, test_size=0.2, rng=2)
    record = fit_evaluate("mf", split, params={"epochs": 2}, seed=1)
    assert record.validation.startswith("carved") and rule in record.validation
    assert record.history is not None
    assert all(epoch["valid_metric"] is not None for epoch in record.history)
    off = fit_evaluate("mf", split, params={"epochs": 2}, seed=1, auto_valid=False)
    assert off.validation == "none"
    assert all(epoch["valid_metric"] is None for epoch in off.history or [])


def test_auto_validation_is_the_share_of_each_user_s_latest_ratings(small: Dataset) -> None:
    from movierec.pipeline import _carve_into

    split = make_split(small, "user-time", test_size=0.2, rng=2)
    carved = _carve_into(split, AUTO_VALID_SIZE, 1, time_ordered=True)
    assert carved.valid is not None
    train = carved.train.ratings.groupby("user_id")["timestamp"].max()
    valid = carved.valid.ratings.groupby("user_id")["timestamp"].min()
    common = train.index.intersection(valid.index)
    assert len(common) > 0
    assert (train[common] <= valid[common]).all()


# --- threads -------------------------------------------------------------------------------------
def test_thread_count_from_argument_environment_or_default(monkeypatch) -> None:
    monkeypatch.delenv("MOVIEREC_THREADS", raising=False)
    assert resolve_threads() == 1
    monkeypatch.setenv("MOVIEREC_THREADS", "3")
    assert resolve_threads() == 3
    assert resolve_threads(2) == 2
    monkeypatch.setenv("MOVIEREC_THREADS", "many")
    with pytest.raises(ValueError, match="MOVIEREC_THREADS"):
        resolve_threads()
    with pytest.raises(ValueError, match="threads"):
        resolve_threads(0)


def test_set_threads_is_remembered_for_models_with_their_own_pools(monkeypatch) -> None:
    """A run's --threads reaches the numba kernels, which ask `resolve_threads(None)`."""
    import movierec.pipeline as pipeline

    monkeypatch.setenv("MOVIEREC_THREADS", "3")
    try:
        assert pipeline.set_threads(2) == 2
        assert resolve_threads() == 2 and resolve_threads(1) == 1
    finally:
        pipeline.set_threads(1)


def test_threads_are_set_and_recorded(small: Dataset, torch_one_thread: None) -> None:
    import torch

    split = make_split(small, "random", rng=2)
    record = fit_evaluate("pop", split, threads=2)
    assert record.threads == 2 and torch.get_num_threads() == 2


# --- benchmark: one run at a time, resumable -----------------------------------------------------
def test_benchmark_writes_each_run_and_skips_finished_ones(small: Dataset, tmp_path: Path,
                                                          monkeypatch) -> None:
    split = make_split(small, "user-random", test_size=0.2, rng=2)
    out = tmp_path / "bench"
    seen: list[str] = []

    def interrupt(record: dict) -> None:
        seen.append(record["model"])
        if record["model"] == "itemknn":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        benchmark.run(["pop", "itemknn", "bias"], split, out=out, on_run=interrupt,
                      progress=False)
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["itemknn-seed42.json",
                                                                "pop-seed42.json"]
    assert [r["model"] for r in json.loads((out / "results.json").read_text())["runs"]] == \
        ["pop", "itemknn"]
    fitted: list[str] = []
    real_get = benchmark.fit_evaluate

    def counting(name, *args, **kwargs):
        fitted.append(name)
        return real_get(name, *args, **kwargs)

    monkeypatch.setattr(benchmark, "fit_evaluate", counting)
    result = benchmark.run(["pop", "itemknn", "bias"], split, out=out, progress=False)
    assert fitted == ["bias"]
    assert [r["model"] for r in result.runs] == ["pop", "itemknn", "bias"]
    assert (out / "lists" / "pop-seed42.parquet").is_file()
    saved = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in saved["runs"]] == ["pop", "itemknn", "bias"]


def test_benchmark_refuses_a_folder_with_other_settings(small: Dataset, tmp_path: Path) -> None:
    split = make_split(small, "user-random", test_size=0.2, rng=2)
    benchmark.run(["pop"], split, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        benchmark.run(["pop"], split, out=tmp_path, relevance=3.0, progress=False)


def test_deterministic_models_are_fitted_once_for_all_seeds(small: Dataset) -> None:
    split = make_split(small, "user-random", test_size=0.2, rng=2)
    result = benchmark.run(["ease", "pop"], split, seeds=(1, 2, 3), progress=False)
    assert [(r["model"], r["seed"]) for r in result.runs] == [("ease", 1), ("pop", 1)]
    assert all(r["seeds_served"] == [1, 2, 3] for r in result.runs)


# --- the metric catalogue ------------------------------------------------------------------------
def test_every_key_the_evaluator_reports_is_in_the_catalogue(small: Dataset) -> None:
    split = make_split(small, "user-random", test_size=0.2, rng=2)
    record = fit_evaluate("bias", split, evaluation=EvaluationSpec(
        protocols=("full", "sampled", "rated-items"), k=(5, 10), n_negatives=5))
    assert record.metrics
    for key in record.metrics:
        info = M.metric_info(key)
        assert info.at_k == ("@" in key), key


def test_catalogue_directions_defaults_and_labels() -> None:
    assert M.default_k([5, 10, 20]) == 10 and M.default_k([5, 20]) == 20
    assert M.direction("rmse") == "lower" and M.direction("ndcg@10") == "higher"
    assert M.best_direction("ndcg@10") == "higher"
    assert M.best_direction("novelty@10") is None and M.best_direction("arp@10") is None
    assert M.short_label("ndcg@10") == "NDCG@10" and M.short_label("rmse") == "RMSE"
    assert M.names("rating") == ("rmse", "mae", "mse")
    with pytest.raises(KeyError, match="unknown metric"):
        M.metric_info("auc@10")


def test_no_other_module_keeps_its_own_metric_list() -> None:
    # One catalogue: a metric name list typed out again elsewhere is how the copies began.
    src = Path(M.__file__).parent
    listing = '"precision", "recall", "f1", "ndcg", "map", "mrr", "hit"'
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py")
                 if p.name != "metrics.py" and listing in p.read_text(encoding="utf-8")]
    assert offenders == []


@pytest.mark.skipif(os.name != "posix", reason="posix paths")
def test_pipeline_imports_nothing_above_it() -> None:
    text = (Path(M.__file__).parent / "pipeline.py").read_text(encoding="utf-8")
    for upper in ("movierec.cli", "movierec.serve", "movierec.benchmark", "movierec.experiment",
                  "movierec.report", "movierec.tune"):
        assert upper not in text
