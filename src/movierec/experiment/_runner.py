"""Running an experiment: splits, fits, protocols, one JSON per finished run, results.json."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from movierec import __version__
from movierec.experiment._spec import (
    BEYOND,
    RANKING,
    RATED,
    RATING,
    SAMPLED,
    EvaluationSpec,
    Experiment,
    ExperimentError,
    RunSpec,
    SplitSpec,
    _selected,
)
from movierec.io import atomic_write_bytes, atomic_write_text, json_default

logger = logging.getLogger(__name__)


# --- running -------------------------------------------------------------------------------------
def load_data(exp: Experiment, *, data_dir: str | Path | None = None) -> Any:
    """The experiment's Dataset, filtered (None when the data are train/test files)."""
    from movierec.data import load

    spec = exp.dataset
    if spec.train is not None:
        return None
    ds = load(spec.release or str(spec.path), data_dir=data_dir)
    return ds.filter(**spec.filters) if spec.filters else ds


def make_experiment_split(exp: Experiment, spec: SplitSpec, ds: Any, *,
                          data_dir: str | Path | None = None) -> Any:
    """The Split that `spec` describes, with the dataset filters recorded in its params."""
    from movierec.data import load
    from movierec.split import PREDEFINED_FOLDS, files_split, make_split

    d = exp.dataset
    if d.train is not None and d.test is not None:
        base = load(d.release or str(d.path), data_dir=data_dir) if (d.release or d.path) \
            else None
        return files_split(d.train, d.test, d.valid, base=base)
    extra: dict[str, Any] = dict(spec.options)
    if spec.kind in PREDEFINED_FOLDS:
        from movierec.data.movielens import resolve
        from movierec.data.releases import get_release

        extra["data_dir"] = d.path if d.path is not None else resolve(
            get_release(str(d.release)), data_dir=data_dir)
    made = make_split(ds, spec.kind, test_size=spec.test_size, valid_size=spec.valid_size,
                      rng=spec.seed, **extra)
    if d.filters:  # recorded so that `movierec report` can re-create the split
        made = replace(made, params={**made.params, "filters": dict(d.filters)})
    return made


def protocol_record(ev: EvaluationSpec) -> dict[str, Any]:
    """The results.json "protocol" entry of an evaluation."""
    out: dict[str, Any] = {"protocol": "+".join(ev.protocols), "protocols": list(ev.protocols),
                           "relevance": ev.relevance, "k": list(ev.k)}
    if "full" in ev.protocols:
        out["candidates"] = "all-unseen"
    elif "sampled" in ev.protocols:
        out["candidates"] = f"1 held-out + {ev.n_negatives} sampled"
    else:
        out["candidates"] = "the user's rated test items"
    if "sampled" in ev.protocols:
        out["n_negatives"] = ev.n_negatives
    if "rated-items" in ev.protocols:
        out["rated_threshold"] = ev.rated_threshold
    if ev.metrics is not None:
        out["metrics"] = list(ev.metrics)
    return out


def run_experiment(
    exp: Experiment,
    out: str | Path,
    *,
    quick: bool = False,
    data_dir: str | Path | None = None,
    progress: bool = False,
    on_message: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every split x model x grid combination x seed of `exp` into `out`.

    Everything that can fail on the data (loading, filters, splits, the recommended user, earlier
    runs in `out` made with other settings) is checked before anything is written. Runs already
    recorded in `out/runs/` (or `out/<split>/runs/`) with the same settings are not run again.

    Args:
        exp: the parsed experiment (`load_experiment`).
        out: the run folder; one benchmark-style folder, or one subfolder per named split.
        quick: smoke run: --quick parameter overrides (fewer epochs) and only the first seed.
        data_dir: folder of releases (default $MOVIEREC_DATA_DIR, then the cache).
        progress: show the models' progress bars.
        on_message: called with one line per split and per run (for the command's output).

    Returns:
        {split name: BenchmarkResult} as saved.
    """
    say = on_message or (lambda text: logger.info("%s", text))
    out = Path(out)
    ds = load_data(exp, data_dir=data_dir)
    plans = []
    for spec in exp.splits:
        split = make_experiment_split(exp, spec, ds, data_dir=data_dir)
        folder = out / spec.name if exp.multi_split else out
        runs = exp.runs(spec, quick=quick)
        if exp.recommend is not None:
            user = exp.recommend[0]
            if user not in set(split.train.ratings["user_id"].tolist()):
                raise ExperimentError(f"{exp.source}: output.recommend.user: user {user} has no "
                                      f"training rating in split {spec.name!r}")
        keys = {r.key: _run_key(r, split, spec.evaluation, quick) for r in runs}
        _check_previous(folder, keys)
        plans.append((spec, split, folder, runs, keys))
    _write_manifest(exp, out, quick, plans)
    results: dict[str, Any] = {}
    for spec, split, folder, runs, keys in plans:
        where = f"split {spec.name} ({split.name})" if exp.multi_split else f"{split.name} split"
        say(f"{exp.name} · {where}: train {split.train.n_ratings:,} / test "
            f"{split.test.n_ratings:,} ratings · {len(runs)} runs")
        skipped = exp.skipped(spec)
        if skipped:
            say(f"  skipped (they give none of the asked metrics): {', '.join(skipped)}")
        records = []
        for run in runs:
            path = folder / "runs" / f"{run.key}.json"
            if path.is_file():
                records.append(json.loads(path.read_text(encoding="utf-8")))
                say(f"  {run.key}: already done")
                continue
            record = _run_one(exp, run, split, spec.evaluation, folder, progress, keys[run.key])
            atomic_write_text(path, json.dumps(record, indent=2, default=json_default))
            records.append(record)
            say(f"  {run.key}: fit {record['fit_seconds']:.2f}s, {_headline(record)}")
        results[spec.name] = _assemble(split, spec.evaluation, records, folder)
    return results


def _run_key(run: RunSpec, split: Any, ev: EvaluationSpec, quick: bool) -> str:
    spec = {"model": run.model, "params": run.params, "seed": run.seed, "quick": quick,
            "split": split.describe(), "train": split.train.fingerprint, "evaluation": asdict(ev)}
    text = json.dumps(spec, sort_keys=True, default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_previous(folder: Path, keys: Mapping[str, str]) -> None:
    for key, expected in keys.items():
        path = folder / "runs" / f"{key}.json"
        if not path.is_file():
            continue
        try:
            found = json.loads(path.read_text(encoding="utf-8")).get("run_key")
        except (OSError, json.JSONDecodeError, AttributeError):
            found = None
        if found != expected:
            raise ExperimentError(f"{path} holds a run made with other settings (another split, "
                                  "parameters, --quick or data); use another --out or delete it")


def _write_manifest(exp: Experiment, out: Path, quick: bool, plans: list[Any]) -> None:
    manifest = {
        "experiment": exp.name, "description": exp.description, "file": exp.source,
        "quick": quick, "movierec_version": __version__,
        "splits": {spec.name: {"folder": str(folder.relative_to(out)) if folder != out else ".",
                               "runs": [r.key for r in runs], "skipped": exp.skipped(spec)}
                   for spec, _, folder, runs, _ in plans},
    }
    atomic_write_text(out / "experiment.json", json.dumps(manifest, indent=2))


def _headline(record: dict[str, Any]) -> str:
    m = record["metrics"]
    shown = [k for k in m if k.startswith(("ndcg@10", "rmse", "f1_rated", "sampled_ndcg@10"))]
    return ", ".join(f"{k}={m[k]:.4f}" for k in shown[:4] if m[k] is not None) or "done"


def _fit(model: Any, split: Any, run: RunSpec, folder: Path, exp: Experiment,
         progress: bool, run_key: str) -> None:
    kwargs: dict[str, Any] = {}
    if exp.checkpoints and "checkpoint_dir" in inspect.signature(model.fit).parameters:
        # The settings' hash in the name: an interrupted run resumes only its own checkpoint.
        kwargs = {"checkpoint_dir": folder / "checkpoints" / f"{run.key}-{run_key}",
                  "resume": True}
    model.fit(split.train, split.valid, rng=run.seed, progress=progress, **kwargs)


def _run_one(exp: Experiment, run: RunSpec, split: Any, ev: EvaluationSpec, folder: Path,
             progress: bool, run_key: str) -> dict[str, Any]:
    from movierec.models import get

    model = get(run.model, **run.params)
    logger.info("fitting %s (seed %d)", run.name, run.seed)
    t0 = time.perf_counter()
    _fit(model, split, run, folder, exp, progress, run_key)
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics, counts, lists, rank_seconds = evaluate_run(model, split, ev, seed=run.seed,
                                                        keep_lists=exp.lists)
    eval_seconds = time.perf_counter() - t0
    if lists is not None:
        atomic_write_bytes(folder / "lists" / f"{run.key}.parquet", lists.to_parquet(index=False))
    if exp.recommend is not None:
        _write_recommendations(model, split, exp.recommend, folder / "recommendations" /
                               f"{run.key}.csv")
    record: dict[str, Any] = {
        "model": run.name, "registry_model": run.model, "label": run.label,
        "params": model.params(), "seed": run.seed, "fit_seconds": round(fit_seconds, 4),
        "recommend_seconds": round(rank_seconds if rank_seconds is not None else eval_seconds, 4),
        "evaluate_seconds": round(eval_seconds, 4), "metrics": metrics, "counts": counts,
        "run_key": run_key,
    }
    history = getattr(model, "history_", None)
    if history is not None:
        record["history"] = [{k: _clean(v) for k, v in epoch.items()} for epoch in history]
    # As results.json will hold it (tuples as lists, numpy as Python), resumed or not.
    return json.loads(json.dumps(record, default=json_default))


def evaluate_run(model: Any, split: Any, ev: EvaluationSpec, *, seed: int = 42,
                 keep_lists: bool = True) -> tuple[dict[str, Any], dict[str, Any], Any,
                                                   float | None]:
    """Metrics of one fitted model under every protocol of `ev`, filtered to `ev.metrics`.

    Returns:
        (metrics, counts, top-k lists or None, seconds spent ranking or None).
    """
    from movierec import metrics as M
    from movierec.evaluate import evaluate, evaluate_rated_items

    wanted = _selected(ev)

    def asked(*keys: str) -> bool:
        return wanted is None or bool(wanted & set(keys))

    metrics: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    lists, seconds = None, None
    if "full" in ev.protocols and asked(*RANKING, *BEYOND):
        res = evaluate(model, split, ks=ev.k, relevance=ev.relevance, rng=seed,
                       keep_lists=keep_lists)
        metrics.update(res.summary)
        counts.update(res.counts)
        lists, seconds = res.lists, res.timings.get("ranking")
    if "sampled" in ev.protocols and asked(*SAMPLED):
        res = evaluate(model, split, ks=ev.k, relevance=ev.relevance, protocol="sampled",
                       n_negatives=ev.n_negatives, rng=seed)
        metrics.update(res.summary)
        counts.update({f"sampled_{k}": v for k, v in res.counts.items() if k not in counts})
    if model.rates and "rmse" not in metrics and asked(*RATING, "rmse_scaled"):
        test = split.test.ratings
        yhat = model.predict(test["user_id"].to_numpy(), test["item_id"].to_numpy())
        y = test["rating"].to_numpy()
        metrics.update(rmse=M.rmse(y, yhat), mae=M.mae(y, yhat))
    if "rated-items" in ev.protocols and model.rates and asked(*RATED):
        rated, rated_counts = evaluate_rated_items(model, split, ev.rated_threshold,
                                                   with_counts=True)
        metrics.update(rated)
        counts.update(rated_counts)
    if "rmse" in metrics and wanted is not None and "mse" in wanted:
        metrics["mse"] = metrics["rmse"] ** 2
    if wanted is not None:
        metrics = {k: v for k, v in metrics.items() if k.split("@")[0] in wanted}
    return {k: _clean(v) for k, v in metrics.items()}, counts, lists, seconds


def _write_recommendations(model: Any, split: Any, recommend: tuple[int, int],
                           path: Path) -> None:
    user, k = recommend
    recs = model.recommend([user], k=k)
    items = split.train.items
    if items is not None and "title" in items.columns:
        recs = recs.merge(items[["item_id", "title"]], on="item_id", how="left")
    atomic_write_text(path, recs.to_csv(index=False))


def _assemble(split: Any, ev: EvaluationSpec, records: list[dict[str, Any]],
              folder: Path) -> Any:
    from movierec.benchmark import BenchmarkResult

    result = BenchmarkResult(dataset=split.train.name, split=split.describe(),
                             protocol=protocol_record(ev), runs=records)
    result.save(folder)  # results.json + results.csv; the lists are already in lists/
    return result


def _clean(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    return value.item() if hasattr(value, "item") else value


__all__ = ["evaluate_run", "load_data", "make_experiment_split", "protocol_record",
           "run_experiment"]
