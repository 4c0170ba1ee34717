"""Run several models on one split with one protocol and collect a comparison table."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from movierec import __version__
from movierec import metrics as M
from movierec.io import atomic_write_bytes, atomic_write_text, json_default
from movierec.pipeline import EvaluationSpec, SplitSpec, fit_evaluate, is_deterministic
from movierec.split import Split

log = logging.getLogger(__name__)

# Metric groups, read from the one catalogue (movierec.metrics).
RANKING = M.names("ranking")
BEYOND = M.names("beyond")
RATED = ("mse", *M.names("rated"))
RUNS_DIR = "runs"
#: Each run's per-user metric values: PER_USER_DIR/<model>-seed<seed>.parquet.
PER_USER_DIR = "per_user"


@dataclass
class BenchmarkResult:
    """Every (model, seed) run of a benchmark, in the results.json shape.

    `lists` and `per_user` are keyed "<model>-seed<seed>": the top-k lists and each test user's
    per-user metric values (user_id, ndcg@10, ..., rmse) of a run.
    """

    dataset: str
    split: dict[str, Any]
    protocol: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    lists: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    per_user: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The results.json content: dataset, split, protocol, movierec version and runs."""
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
        """Write results.json, results.csv and (with `lists`) the top-k lists and per-user values.

        The lists go to lists/<model>-seed<seed>.parquet, the per-user values to
        per_user/<model>-seed<seed>.parquet.
        """
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "results.json",
                          json.dumps(self.to_dict(), indent=2, default=json_default))
        atomic_write_text(out / "results.csv", self.frame().to_csv(index=False))
        for key, frame in (self.lists.items() if lists else ()):
            buf = frame.to_parquet(index=False)
            atomic_write_bytes(out / "lists" / f"{key}.parquet", buf)
        for key, frame in (self.per_user.items() if lists else ()):
            atomic_write_bytes(out / PER_USER_DIR / f"{key}.parquet",
                               frame.to_parquet(index=False))


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
    (`out/runs/<model>-seed<seed>.json`, its lists, its per-user values in
    `out/per_user/<model>-seed<seed>.parquet`, and results.json so far), and runs already
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
            users = _previous_per_user(folder, name, seed) if record is not None else None
            if record is None:
                log.info("fitting %s (seed %d)", name, seed)
                rec = fit_evaluate(name, split, params=params.get(name, {}), seed=seed,
                                   evaluation=evaluation, keep_lists=keep_lists,
                                   progress=progress, auto_valid=auto_valid, threads=threads,
                                   extra={"run_key": key})
                record, lists, users = rec.to_dict(), rec.lists, rec.per_user
                if len(model_seeds) < len(seeds):
                    record["seeds_served"] = list(seeds)
            result.runs.append(record)
            if keep_lists and lists is not None:
                result.lists[f"{name}-seed{seed}"] = lists
            if users is not None:
                result.per_user[f"{name}-seed{seed}"] = users
            if folder is not None:
                _write_run(folder, result, record, lists if keep_lists else None, users)
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


def _previous_per_user(folder: Path | None, model: str, seed: int) -> pd.DataFrame | None:
    """The per-user values of a finished run in `folder` (None: none stored, e.g. older runs)."""
    path = None if folder is None else folder / PER_USER_DIR / f"{model}-seed{seed}.parquet"
    return pd.read_parquet(path) if path is not None and path.is_file() else None


def _write_run(folder: Path, result: BenchmarkResult, record: dict[str, Any],
               lists: pd.DataFrame | None, per_user: pd.DataFrame | None = None) -> None:
    """Write one finished run, then results.json/results.csv with every run so far."""
    name, seed = record["model"], record["seed"]
    if lists is not None:
        atomic_write_bytes(folder / "lists" / f"{name}-seed{seed}.parquet",
                           lists.to_parquet(index=False))
    if per_user is not None:
        atomic_write_bytes(folder / PER_USER_DIR / f"{name}-seed{seed}.parquet",
                           per_user.to_parquet(index=False))
    stored = {k: v for k, v in record.items() if k != "resumed"}
    atomic_write_text(_run_file(folder, name, seed),
                      json.dumps(stored, indent=2, default=json_default))
    result.save(folder, lists=False)


# --- cross-validation --------------------------------------------------------------------------
#: Summary of a cross-validation folder (one benchmark folder per fold under it).
FOLDS_FILE = "folds.json"
FOLDS_CSV = "folds.csv"


def fold_specs(spec: SplitSpec, folds: int | None = None) -> list[SplitSpec]:
    """The split of every fold of a cross-validation described by `spec`.

    "ml100k-5fold" gives ML-100K's own u1..u5; "random", "user-random" and "user-time" give
    `folds` splits with options fold=1..K, folds=K (`movierec.split.kfold_split`), all with the
    seed of `spec`, so that they partition the data.

    Raises:
        ValueError: no fold count, a kind without folds, or a fold count that ml100k-5fold lacks.
    """
    from movierec.split import FOLD_KINDS, FOLD_SETS

    if spec.kind in FOLD_SETS:
        kinds = FOLD_SETS[spec.kind]
        if folds is not None and folds != len(kinds):
            raise ValueError(f"--folds {folds}: split {spec.kind!r} has exactly {len(kinds)} "
                             "folds")
        return [dataclasses.replace(spec, kind=kind) for kind in kinds]
    if folds is None:
        raise ValueError(f"split {spec.kind!r}: give the number of folds (--folds K)")
    if spec.kind not in FOLD_KINDS:
        raise ValueError(f"--folds: split {spec.kind!r} has no K-fold version; use one of "
                         f"{', '.join(FOLD_KINDS)} or --split {', '.join(FOLD_SETS)}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"--folds must be an integer >= 2, got {folds!r}")
    return [dataclasses.replace(spec, options={**spec.options, "fold": i, "folds": folds})
            for i in range(1, folds + 1)]


def fold_folder(out: str | Path, fold: int) -> Path:
    """The benchmark folder of fold `fold` (1-based) under a cross-validation folder."""
    return Path(out) / f"fold-{fold}"


def cross_validate(models: Sequence[str], specs: Sequence[SplitSpec], *,
                   out: str | Path | None = None, data_dir: str | Path | None = None,
                   on_split: Callable[[int, Split], None] | None = None,
                   only: Collection[int] | None = None,
                   **kwargs: Any) -> list[BenchmarkResult]:
    """Run every fold: `run` once per fold split.

    With `out`, fold i goes to out/fold-<i>/ and the summary of every fold to out/folds.json and
    out/folds.csv (`write_fold_summary`), rewritten as each fold ends.

    Every fold folder is a complete benchmark folder (results.json, runs/, lists/, per_user/),
    so `movierec report`, resuming and the analyses work on each unchanged, and `movierec
    compare out` pools the per-user values of all folds.

    Args:
        models: registry names.
        specs: the folds' split specifications (`fold_specs`).
        out: the cross-validation folder (optional).
        data_dir: folder of releases.
        on_split: called with (fold number, its split) before the fold runs.
        only: run just these fold numbers (1-based), each into its own out/fold-<i>/, and
            write no summary: e.g. a second process sharing the folds of one folder; a later
            call with every fold finds their runs there and skips them.
        **kwargs: passed to `run` (seeds, ks, params, progress, on_run...).

    Raises:
        ValueError: `only` names a fold that `specs` lacks.
    """
    if only is not None and not set(only) <= set(range(1, len(specs) + 1)):
        raise ValueError(f"only: folds {sorted(only)} outside 1..{len(specs)}")
    from movierec.data import load

    first = specs[0]
    ds = (load(str(first.dataset), data_dir=data_dir, imdb_dir=first.imdb_dir)
          if first.dataset is not None else None)
    if ds is not None and first.filters:
        ds = ds.filter(**dict(first.filters))
    results = []
    for i, spec in enumerate(specs, start=1):
        if only is not None and i not in only:
            continue
        split = spec.build(data_dir=data_dir, ds=ds, filtered=ds is not None)
        if on_split is not None:
            on_split(i, split)
        folder = None if out is None else fold_folder(out, i)
        results.append(run(models, split, out=folder, **kwargs))
        if out is not None and only is None:
            write_fold_summary(out, results)
    return results


def fold_table(results: Sequence[BenchmarkResult], k: int | None = None,
               confidence: float = 0.95) -> pd.DataFrame:
    """Models x metrics over folds, with a Student-t interval.

    Columns: `<metric>` the mean of the folds' values (each the mean over seeds),
    `<metric>_low`/`<metric>_high` its interval, and `folds` their number.
    """
    from movierec.stats import t_interval

    if not results:
        return pd.DataFrame()
    k = k if k is not None else M.default_k(results[0].protocol.get("k", [M.DEFAULT_K]))
    per_fold = []
    for i, res in enumerate(results, start=1):
        table = res.table(k)
        per_fold.append(table[[c for c in table.columns if not c.endswith("_std")]]
                        .assign(fold=i))
    frame = pd.concat(per_fold)
    cols = [c for c in frame.columns if c != "fold"]
    rows: dict[str, dict[str, float]] = {}
    for model, group in frame.groupby(level=0, sort=False):
        row: dict[str, float] = {"folds": float(len(group))}
        for c in cols:
            mean, low, high = t_interval(group[c].to_numpy(dtype=float), confidence)
            row.update({c: mean, f"{c}_low": low, f"{c}_high": high})
        rows[str(model)] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "model"
    return out


def write_fold_summary(out: str | Path, results: Sequence[BenchmarkResult],
                       confidence: float = 0.95) -> None:
    """Write the summary of a cross-validation folder.

    out/folds.json holds, per model and metric, the mean, its interval and every fold's value;
    out/folds.csv one row per model and metric.
    """
    out = Path(out)
    k = M.default_k(results[0].protocol.get("k", [M.DEFAULT_K]))
    table = fold_table(results, k, confidence)
    values = {i: res.table(k) for i, res in enumerate(results, start=1)}
    metrics = [c for c in table.columns if c != "folds" and not c.endswith(("_low", "_high"))]
    summary: dict[str, Any] = {}
    rows = []
    for model, row in table.iterrows():
        summary[str(model)] = {}
        for m in metrics:
            per = [None if model not in v.index or m not in v else _num(v.loc[model, m])
                   for v in values.values()]
            entry = {"mean": _num(row[m]), "low": _num(row[f"{m}_low"]),
                     "high": _num(row[f"{m}_high"]), "folds": per}
            summary[str(model)][m] = entry
            rows.append({"model": model, "metric": m, **{k2: entry[k2] for k2 in
                                                          ("mean", "low", "high")},
                         "n_folds": sum(v is not None for v in per)})
    doc = {"dataset": results[0].dataset, "split": results[0].split.get("name"),
           "folds": len(results), "folders": [fold_folder(".", i).name
                                              for i in range(1, len(results) + 1)],
           "splits": [r.split for r in results], "k": k, "confidence": confidence,
           "interval": "Student t over the folds' means (each fold's value: mean over seeds)",
           "protocol": results[0].protocol, "movierec_version": __version__,
           "table": summary}
    atomic_write_text(out / FOLDS_FILE, json.dumps(doc, indent=2, default=json_default))
    atomic_write_text(out / FOLDS_CSV, pd.DataFrame(rows).to_csv(index=False))


def _num(value: Any) -> float | None:
    v = float(value)
    return None if v != v else v
