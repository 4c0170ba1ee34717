"""Run several models on one split with one protocol and collect a comparison table."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from movierec import __version__
from movierec.evaluate import evaluate
from movierec.io import atomic_write_bytes, atomic_write_text, json_default
from movierec.models import get
from movierec.split import Split

log = logging.getLogger(__name__)

# Column order of the printed table: rating, ranking @k, beyond accuracy @k.
RANKING = ("precision", "recall", "f1", "ndcg", "map", "mrr", "hit")
BEYOND = ("coverage", "diversity", "novelty", "arp", "personalization")
# Keys of the rated-items protocol and of scaled errors (experiment files), when present.
RATED = ("mse", "rmse_scaled", "precision_rated", "recall_rated", "f1_rated")


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
        k = k if k is not None else _default_k(self.protocol.get("k", [10]))
        cols = ["rmse", "mae", *RATED, *(f"{m}@{k}" for m in RANKING),
                *(f"sampled_{m}@{k}" for m in ("hit", "ndcg")), *(f"{m}@{k}" for m in BEYOND),
                "fit_seconds", "recommend_seconds"]
        cols = [c for c in cols if c in frame.columns]
        grouped = frame.groupby("model", sort=False)[cols]
        table = grouped.mean()
        if frame.groupby("model").size().max() > 1:
            std = grouped.std(ddof=1).add_suffix("_std")
            table = table.join(std)
        return table

    def save(self, out: str | Path) -> None:
        """Write results.json, results.csv and the top-k lists (lists/<model>.parquet)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "results.json",
                          json.dumps(self.to_dict(), indent=2, default=json_default))
        atomic_write_text(out / "results.csv", self.frame().to_csv(index=False))
        for key, lists in self.lists.items():
            buf = lists.to_parquet(index=False)
            atomic_write_bytes(out / "lists" / f"{key}.parquet", buf)


def _default_k(ks: Sequence[int]) -> int:
    return 10 if 10 in ks else max(ks)



def _clean(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


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
) -> BenchmarkResult:
    """Fit and evaluate every model for every seed on `split`.

    Args:
        models: registry names.
        split: the one split every model sees.
        seeds: one run per seed; the seed drives the model's rng.
        ks: list lengths for ranking and beyond-accuracy metrics.
        relevance: test ratings at or above this are relevant (0 = every test rating).
        params: per-model keyword hyper-parameters, e.g. {"ease": {"lambda_": 500}}.
        keep_lists: keep each run's top-max(k) lists (saved as parquet by `save`).
        progress: show progress bars in models that have them.
        on_run: called with each run's record as soon as it finishes (for live printing).
        max_memory_mb: working memory for scoring one block of users in evaluation (see
            `movierec.evaluate.evaluate`); None keeps its default blocks.

    Returns:
        The BenchmarkResult; each run record holds model, params, seed, timings, metrics and
        counts, and for neural models (those with `history_`) their per-epoch "history"
        ({epoch, train_loss, valid_metric, metric, seconds}) for training curves.
    """
    params = params or {}
    unknown = set(params) - set(models)
    if unknown:
        raise ValueError(f"--param given for model(s) not in the run: {sorted(unknown)}")
    result = BenchmarkResult(
        dataset=split.train.name,
        split=split.describe(),
        protocol={"relevance": relevance, "k": list(ks), "candidates": "all-unseen",
                  "protocol": "full"},
    )
    for name in models:
        for seed in seeds:
            model = get(name, **params.get(name, {}))
            log.info("fitting %s (seed %d)", name, seed)
            t0 = time.perf_counter()
            model.fit(split.train, split.valid, rng=seed, progress=progress)
            fit_seconds = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = evaluate(model, split, ks=ks, relevance=relevance, rng=seed,
                           keep_lists=keep_lists, max_memory_mb=max_memory_mb)
            eval_seconds = time.perf_counter() - t0
            record = {
                "model": name,
                "params": model.params(),
                "seed": seed,
                "fit_seconds": round(fit_seconds, 4),
                "recommend_seconds": round(res.timings.get("ranking", eval_seconds), 4),
                "evaluate_seconds": round(eval_seconds, 4),
                "metrics": {k: _clean(v) for k, v in res.summary.items()},
                "counts": res.counts,
            }
            history = getattr(model, "history_", None)  # neural models: one dict per epoch
            if history is not None:
                record["history"] = [{k: _clean(v) for k, v in epoch.items()}
                                     for epoch in history]
            result.runs.append(record)
            if keep_lists and res.lists is not None:
                result.lists[f"{name}-seed{seed}"] = res.lists
            if on_run is not None:
                on_run(record)
    return result
