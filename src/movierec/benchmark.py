"""Run several models on one split with one protocol and collect a comparison table."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from movierec import __version__
from movierec import metrics as M
from movierec.io import atomic_write_bytes, atomic_write_text, json_default
from movierec.pipeline import EvaluationSpec, fit_evaluate, is_deterministic
from movierec.split import Split

log = logging.getLogger(__name__)

# Metric groups, read from the one catalogue (movierec.metrics).
RANKING = M.names("ranking")
BEYOND = M.names("beyond")
RATED = ("mse", *M.names("rated"))
RUNS_DIR = "runs"


@dataclass
class BenchmarkResult:
    """Every (model, seed) run of a benchmark, in the results.json shape."""

    dataset: str
    split: dict[str, Any]
    protocol: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    lists: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": self.split, "protocol": self.protocol,
                "movierec_version": __version__, "runs": self.runs}

    def frame(self) -> pd.DataFrame:
        """One row per run: model, seed, metrics, seconds."""
        rows = [{"model": r["model"], "seed": r["seed"], **r["metrics"],
                 "fit_seconds": r["fit_seconds"], "recommend_seconds": r["recommend_seconds"]}
                for r in self.runs]
        return pd.DataFrame(rows)

    def table(self, k: int | None = None) -> pd.DataFrame:
        """One row per model: mean over seeds (and `<metric>_std` where several seeds ran)."""
        frame = self.frame()
        if frame.empty:
            return frame
        k = k if k is not None else M.default_k(self.protocol.get("k", [M.DEFAULT_K]))
        cols = [c for c in self.table_columns(k) if c in frame.columns]
        grouped = frame.groupby("model", sort=False)[cols]
        table = grouped.mean()
        if frame.groupby("model").size().max() > 1:
            std = grouped.std(ddof=1).add_suffix("_std")
            table = table.join(std)
        return table

    @staticmethod
    def table_columns(k: int) -> list[str]:
        """Columns in order: rating, rated-items, ranking@k, sampled@k, beyond@k, seconds."""
        return ["rmse", "mae", *RATED, *(f"{m}@{k}" for m in RANKING),
                *(f"{m}@{k}" for m in M.names("sampled")), *(f"{m}@{k}" for m in BEYOND),
                "fit_seconds", "recommend_seconds"]

    def save(self, out: str | Path, *, lists: bool = True) -> None:
        """Write results.json, results.csv and (with `lists`) the top-k lists.

        The lists go to lists/<model>-seed<seed>.parquet.
        """
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "results.json",
                          json.dumps(self.to_dict(), indent=2, default=json_default))
        atomic_write_text(out / "results.csv", self.frame().to_csv(index=False))
        for key, frame in (self.lists.items() if lists else ()):
            buf = frame.to_parquet(index=False)
            atomic_write_bytes(out / "lists" / f"{key}.parquet", buf)


def _default_k(ks: Sequence[int]) -> int:
    return M.default_k(ks)


def run_key(model: str, params: dict[str, Any], seed: int, split: Split,
            evaluation: EvaluationSpec) -> str:
    """A hash of everything that decides a run's result: a re-run with the same key is skipped."""
    spec = {"model": model, "params": params, "seed": seed, "split": split.describe(),
            "train": split.train.fingerprint,
            "evaluation": {k: v for k, v in evaluation.__dict__.items() if k != "max_memory_mb"}}
    text = json.dumps(spec, sort_keys=True, default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run(
    models: Sequence[str],
    split: Split,
    *,
    seeds: Sequence[int] = (42,),
    ks: Sequence[int] = (5, 10, 20),
    relevance: float = 4.0,
    params: dict[str, dict[str, Any]] | None = None,
    keep_lists: bool = True,
    progress: bool = True,
    on_run: Callable[[dict[str, Any]], None] | None = None,
    max_memory_mb: float | None = None,
    out: str | Path | None = None,
    auto_valid: bool = True,
    threads: int | None = None,
) -> BenchmarkResult:
    """Fit and evaluate every model for every seed on `split`.

    Models whose fit ignores the seed (`deterministic`: closed forms and counts) are fitted once,
    whatever the number of seeds. With `out`, each finished run is written at once
    (`out/runs/<model>-seed<seed>.json`, its lists, and results.json so far), and runs already
    there with the same settings are read back instead of run again, so an interrupted benchmark
    resumes where it stopped.

    Args:
        models: registry names.
        split: the one split every model sees.
        seeds: one run per seed; the seed drives the model's rng (not the split's).
        ks: list lengths for ranking and beyond-accuracy metrics.
        relevance: test ratings at or above this are relevant (0 = every test rating).
        params: per-model keyword hyper-parameters, e.g. {"ease": {"lambda_": 500}}.
        keep_lists: keep each run's top-max(k) lists (saved as parquet by `save`).
        progress: show progress bars in models that have them.
        on_run: called with each run's record as soon as it finishes (for live printing).
        max_memory_mb: working memory for scoring one block of users in evaluation (see
            `movierec.evaluate.evaluate`); None keeps its default blocks.
        out: write each run as it finishes, and skip runs already written (see above).
        auto_valid: models that early-stop get a validation carve-out when the split has none
            (`movierec.pipeline.fit_evaluate`).
        threads: PyTorch threads (default `movierec.pipeline.resolve_threads()`).

    Returns:
        The BenchmarkResult; each run record holds model, params, seed, timings, metrics,
        counts, how validation was obtained, the thread count, and for neural models their
        per-epoch "history" ({epoch, train_loss, valid_metric, metric, seconds}).

    Raises:
        ValueError: params for a model not in the run, or `out` holds a run of the same model
            and seed made with other settings.
    """
    params = params or {}
    unknown = set(params) - set(models)
    if unknown:
        raise ValueError(f"--param given for model(s) not in the run: {sorted(unknown)}")
    evaluation = EvaluationSpec(k=tuple(ks), relevance=relevance, max_memory_mb=max_memory_mb)
    result = BenchmarkResult(
        dataset=split.train.name,
        split=split.describe(),
        protocol={"relevance": relevance, "k": list(ks), "candidates": "all-unseen",
                  "protocol": "full"},
    )
    folder = Path(out) if out is not None else None
    for name in models:
        model_seeds = list(seeds)[:1] if is_deterministic(name) else list(seeds)
        if len(model_seeds) < len(seeds):
            log.info("%s ignores its seed: fitted once for seeds %s", name, list(seeds))
        for seed in model_seeds:
            key = run_key(name, params.get(name, {}), seed, split, evaluation)
            record, lists = _previous(folder, name, seed, key) if folder else (None, None)
            if record is None:
                log.info("fitting %s (seed %d)", name, seed)
                rec = fit_evaluate(name, split, params=params.get(name, {}), seed=seed,
                                   evaluation=evaluation, keep_lists=keep_lists,
                                   progress=progress, auto_valid=auto_valid, threads=threads,
                                   extra={"run_key": key})
                record, lists = rec.to_dict(), rec.lists
                if len(model_seeds) < len(seeds):
                    record["seeds_served"] = list(seeds)
            result.runs.append(record)
            if keep_lists and lists is not None:
                result.lists[f"{name}-seed{seed}"] = lists
            if folder is not None:
                _write_run(folder, result, record, lists if keep_lists else None)
            if on_run is not None:
                on_run(record)
    return result


def _run_file(folder: Path, model: str, seed: int) -> Path:
    return folder / RUNS_DIR / f"{model}-seed{seed}.json"


def _previous(folder: Path, model: str, seed: int, key: str
              ) -> tuple[dict[str, Any] | None, pd.DataFrame | None]:
    """A finished run of `model` and `seed` in `folder` with the same settings, else None."""
    path = _run_file(folder, model, seed)
    if not path.is_file():
        return None, None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        record = None
    if not isinstance(record, dict) or record.get("run_key") != key:
        raise ValueError(f"{path} holds a run of {model} (seed {seed}) made with other settings "
                         "(another split, parameters, protocol or data); use another --out or "
                         "delete it")
    lists_path = folder / "lists" / f"{model}-seed{seed}.parquet"
    lists = pd.read_parquet(lists_path) if lists_path.is_file() else None
    log.info("%s (seed %d): already done in %s", model, seed, path)
    record["resumed"] = True
    return record, lists


def _write_run(folder: Path, result: BenchmarkResult, record: dict[str, Any],
               lists: pd.DataFrame | None) -> None:
    """Write one finished run, then results.json/results.csv with every run so far."""
    name, seed = record["model"], record["seed"]
    if lists is not None:
        atomic_write_bytes(folder / "lists" / f"{name}-seed{seed}.parquet",
                           lists.to_parquet(index=False))
    stored = {k: v for k, v in record.items() if k != "resumed"}
    atomic_write_text(_run_file(folder, name, seed),
                      json.dumps(stored, indent=2, default=json_default))
    result.save(folder, lists=False)
