"""Which differences between models are real: paired tests over users, intervals, corrections.

A benchmark folder stores each run's per-user metric values (`per_user/<model>-seed<seed>.parquet`,
see `movierec.benchmark`). This module reads them back (from one benchmark folder, or from a
cross-validation folder's `fold-<i>/` or `split-seed-<s>/` folders), pairs two models' values by
(fold, user) — each model's value of a (fold, user) being its mean over seeds — and reports per
comparison the mean difference, a paired-bootstrap confidence interval (users resampled within
each fold, seeded), the p-value of a paired test over the pairs (`movierec.stats.paired_test`),
the p-value corrected over the family of comparisons, and Cohen's d_z.

    frame = load_per_user("runs/ml100k-5fold")
    table = compare(frame, "ndcg@10", baseline="ease", test="t", correction="holm")

Imports point down: this module uses benchmark, metrics and stats.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec import metrics as M
from movierec import stats
from movierec.benchmark import PER_USER_DIR, BenchmarkResult
from movierec.errors import ArtifactError
from movierec.io import atomic_write_text, json_default

#: Subfolders of a folder of several benchmarks (cross-validation folds, split seeds).
_SUBFOLDER = re.compile(r"^(fold|split-seed)-(-?\d+)$")
#: A per-user file's stem: `<model>-seed<seed>` (model names may hold dashes: blend-light).
_RUN_FILE = re.compile(r"^(.+)-seed(-?\d+)$")
COMPARISONS_CSV = "comparisons.csv"
COMPARISONS_JSON = "comparisons.json"


# --- reading -------------------------------------------------------------------------------------
def benchmark_folders(folder: str | Path) -> dict[str, Path]:
    """The benchmark folders under `folder`, as {fold label: folder}.

    The folder itself (label "") when it holds results.json, else its fold-<i>/ and
    split-seed-<s>/ subfolders that hold one, in numeric order.

    Raises:
        ArtifactError: neither results.json nor such subfolders.
    """
    folder = Path(folder)
    if (folder / "results.json").is_file():
        return {"": folder}
    found = []
    for sub in folder.iterdir() if folder.is_dir() else ():
        m = _SUBFOLDER.match(sub.name)
        if m and (sub / "results.json").is_file():
            found.append((m.group(1), int(m.group(2)), sub))
    if not found:
        raise ArtifactError(f"{folder}: no results.json, and no fold-<i>/ or split-seed-<s>/ "
                            "folders holding one; expected a folder written by `movierec "
                            "benchmark --out`")
    return {sub.name: sub for _, _, sub in sorted(found, key=lambda t: (t[0], t[1]))}


def load_per_user(folder: str | Path) -> pd.DataFrame:
    """Every stored per-user value under `folder`: columns model, seed, fold, user_id, metrics.

    Raises:
        ArtifactError: not a benchmark folder, or no run there has per-user values (folders
            written before per-user values were stored: run the benchmark again).
    """
    frames = []
    for label, sub in benchmark_folders(folder).items():
        # Every stored run, not only the last call's results.json: a folder refuses a call with
        # other split settings, so a later `--models` subset adds runs to the same split.
        for path in sorted((sub / PER_USER_DIR).glob("*.parquet")):
            m = _RUN_FILE.match(path.stem)
            if m:
                frames.append(pd.read_parquet(path).assign(
                    model=m.group(1), seed=int(m.group(2)), fold=label))
    if not frames:
        raise ArtifactError(f"{folder}: no per-user results ({PER_USER_DIR}/*.parquet); run "
                            "`movierec benchmark --out` again with this version to store them")
    return pd.concat(frames, ignore_index=True)


def per_user_frame(results: Mapping[str, BenchmarkResult]) -> pd.DataFrame:
    """The `load_per_user` frame of benchmark results held in memory ({fold label: result})."""
    frames = []
    for label, result in results.items():
        for run in result.runs:
            part = result.per_user.get(f"{run['model']}-seed{run['seed']}")
            if part is not None:
                frames.append(part.assign(model=run["model"], seed=run["seed"], fold=label))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --- pairing -------------------------------------------------------------------------------------
def metric_column(frame: pd.DataFrame, metric: str) -> str:
    """The per-user column of `metric` ("NDCG@10" -> "ndcg@10").

    Raises:
        KeyError: a metric not in the catalogue.
        ValueError: the metric has no per-user values in `frame` (the message lists those that
            have).
    """
    M.metric_info(metric)  # unknown names: KeyError listing the catalogue
    col = metric.strip().lower()
    skip = {"model", "seed", "fold", "user_id"}
    have = [c for c in frame.columns if c not in skip and not c.startswith("n_")]
    if col not in frame.columns or frame[col].isna().all():
        raise ValueError(f"metric {metric!r} has no per-user values here; per-user metrics: "
                         f"{', '.join(have) or 'none'}")
    return col


def default_metric(frame: pd.DataFrame) -> str:
    """NDCG@10 (else NDCG at the largest k, else RMSE) when the frame has it."""
    ks = sorted(int(c.split("@")[1]) for c in frame.columns if c.startswith("ndcg@"))
    if ks:
        return f"ndcg@{M.default_k(ks)}"
    if "rmse" in frame.columns:
        return "rmse"
    raise ValueError("no per-user NDCG or RMSE values: give --metric")


def user_values(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(fold, user_id) x model: each model's per-user value, averaged over its seeds."""
    col = metric_column(frame, metric)
    data = frame[["fold", "user_id", "model", col]].dropna(subset=[col])
    models = list(dict.fromkeys(frame["model"]))
    table = data.pivot_table(index=["fold", "user_id"], columns="model", values=col,
                             aggfunc="mean", sort=True)
    return table.reindex(columns=[m for m in models if m in table.columns])


def best_model(values: pd.DataFrame, metric: str) -> str:
    """The model with the best mean over its own (fold, user) values, by the metric's direction."""
    means = values.mean()
    return str(means.idxmax() if M.direction(metric) == "higher" else means.idxmin())


# --- comparing -----------------------------------------------------------------------------------
def compare(frame: pd.DataFrame, metric: str | None = None, *, baseline: str | None = None,
            test: str = "t", alpha: float = 0.05, correction: str = "holm",
            pairs: bool = False, intervals: bool = True, confidence: float = 0.95,
            n_resamples: int = stats.BOOTSTRAPS, rng: int = 0) -> pd.DataFrame:
    """Each model against `baseline` (or every pair of models), paired over (fold, user).

    Args:
        frame: per-user values (`load_per_user` / `per_user_frame`).
        metric: the per-user metric (default `default_metric`).
        baseline: the reference model (default: the best by the metric's direction).
        test: "t", "wilcoxon" or "permutation" (`movierec.stats.paired_test`).
        alpha: the level at which a corrected p-value counts as significant.
        correction: "holm", "bonferroni" or "none", over all rows of the table.
        pairs: compare every pair of models instead of each model with the baseline.
        intervals: compute the bootstrap intervals (False: NaN, faster).
        confidence: coverage of the intervals. Default 0.95.
        n_resamples: bootstrap resamples. Default 2000.
        rng: seed of the bootstrap and the permutation test.

    Returns:
        One row per comparison: model, baseline, metric, users (pairs), folds, the two means,
        diff (model - baseline), ci_low, ci_high, p_value, p_corrected, effect_size (d_z),
        significant, verdict ("better", "worse", "tied": the model against the baseline, by the
        metric's direction), test, correction, alpha.

    Raises:
        ValueError: unknown baseline, fewer than two models, too few paired users
            (`movierec.stats.TooFewError`), bad test or correction.
        KeyError: unknown metric.
    """
    if frame.empty:
        raise ArtifactError("no per-user results to compare")
    metric = metric or default_metric(frame)
    stats.correct([], correction)  # validates the name before any work
    if test not in stats.TESTS:
        raise ValueError(f"unknown test {test!r}; expected one of {', '.join(stats.TESTS)}")
    values = user_values(frame, metric)
    models = list(values.columns)
    if len(models) < 2:
        raise ValueError(f"comparing needs two models with per-user {metric} values, found "
                         f"{models}")
    if baseline is not None and baseline not in models:
        raise ValueError(f"unknown baseline {baseline!r}; models with per-user {metric} values: "
                         f"{', '.join(models)}")
    base = baseline or best_model(values, metric)
    todo = (list(itertools.combinations(models, 2)) if pairs
            else [(m, base) for m in models if m != base])
    higher = M.direction(metric) == "higher"
    rows = [_one(values, a, b, test, alpha, intervals, confidence, n_resamples, rng)
            for a, b in todo]
    table = pd.DataFrame(rows)
    table["p_corrected"] = stats.correct(table["p_value"].to_numpy(), correction)
    table["significant"] = table["p_corrected"] < alpha
    good = table["diff"] > 0 if higher else table["diff"] < 0
    table["verdict"] = np.where(~table["significant"], "tied",
                                np.where(good, "better", "worse"))
    table = table.assign(metric=metric.lower(), test=test, correction=correction, alpha=alpha)
    order = ["model", "baseline", "metric", "users", "folds", "mean_model", "mean_baseline",
             "diff", "ci_low", "ci_high", "p_value", "p_corrected", "effect_size",
             "significant", "verdict", "test", "correction", "alpha"]
    return table[order]


def _one(values: pd.DataFrame, model: str, base: str, test: str, alpha: float,
         intervals: bool, confidence: float, n_resamples: int, rng: int) -> dict[str, Any]:
    both = values[[model, base]].dropna()
    a, b = both[model].to_numpy(), both[base].to_numpy()
    folds = both.index.get_level_values("fold")
    try:
        p = stats.paired_test(a, b, test, alpha=alpha, rng=rng)
        low, high = (stats.bootstrap_ci(a - b, groups=folds, confidence=confidence,
                                        n_resamples=n_resamples, rng=rng)
                     if intervals else (float("nan"), float("nan")))
    except stats.TooFewError as exc:
        raise stats.TooFewError(f"{model} vs {base}: {exc}") from None
    return {"model": model, "baseline": base, "users": len(a),
            "folds": len(set(folds)), "mean_model": float(a.mean()),
            "mean_baseline": float(b.mean()), "diff": float((a - b).mean()),
            "ci_low": low, "ci_high": high, "p_value": p,
            "effect_size": stats.cohens_dz(a - b)}


def significance_matrix(frame: pd.DataFrame, metric: str, *, test: str = "t",
                        correction: str = "holm", alpha: float = 0.05) -> pd.DataFrame:
    """Model x model significance of `metric` (corrected over all pairs).

    +1 where the row model is significantly better than the column model, -1 worse, 0 tied,
    NaN on the diagonal.
    """
    table = compare(frame, metric, test=test, correction=correction, alpha=alpha, pairs=True,
                    intervals=False)
    models = list(user_values(frame, metric).columns)
    out = pd.DataFrame(np.nan, index=models, columns=models)
    sign = {"better": 1.0, "worse": -1.0, "tied": 0.0}
    for row in table.itertuples():
        s = sign[str(row.verdict)]
        out.loc[row.model, row.baseline] = s
        out.loc[row.baseline, row.model] = -s
    return out


def marks(frame: pd.DataFrame, metrics: list[str], baseline: str, *, test: str = "t",
          alpha: float = 0.05, correction: str = "holm") -> dict[str, dict[str, str]]:
    """{metric: {model: "▲" | "▼" | "="}}: significantly better / worse than `baseline` / tied.

    Metrics without per-user values, or where the baseline has none, are left out; so are
    comparisons with too few paired users.
    """
    out: dict[str, dict[str, str]] = {}
    symbol = {"better": "▲", "worse": "▼", "tied": "="}
    for metric in metrics:
        try:
            table = compare(frame, metric, baseline=baseline, test=test, alpha=alpha,
                            correction=correction, intervals=False)
        except (ValueError, KeyError):
            continue
        out[metric] = {str(r.model): symbol[str(r.verdict)] for r in table.itertuples()}
    return out


def write_comparisons(folder: str | Path, table: pd.DataFrame,
                      meta: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write folder/comparisons.csv and folder/comparisons.json (atomically); return the paths."""
    folder = Path(folder)
    csv_path, json_path = folder / COMPARISONS_CSV, folder / COMPARISONS_JSON
    records = json.loads(table.to_json(orient="records"))
    doc = {**dict(meta or {}), "comparisons": records}
    atomic_write_text(csv_path, table.to_csv(index=False))
    atomic_write_text(json_path, json.dumps(doc, indent=2, default=json_default))
    return csv_path, json_path


__all__ = ["COMPARISONS_CSV", "COMPARISONS_JSON", "benchmark_folders", "best_model", "compare",
           "default_metric", "load_per_user", "marks", "metric_column", "per_user_frame",
           "significance_matrix", "user_values", "write_comparisons"]
