"""Running an experiment: splits, fits, protocols, one JSON per finished run, results.json."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from movierec import __version__
from movierec.benchmark import PER_USER_DIR
from movierec.experiment._spec import (
    EvaluationSpec,
    Experiment,
    ExperimentError,
    ExperimentSplit,
    RunSpec,
)
from movierec.io import atomic_write_bytes, atomic_write_text, json_default
from movierec.pipeline import SplitSpec, evaluate_protocols, fit_evaluate

logger = logging.getLogger(__name__)


# --- running -------------------------------------------------------------------------------------
def load_data(exp: Experiment, *, data_dir: str | Path | None = None) -> Any:
    """The experiment's Dataset, filtered (None when the data are train/test files)."""
    from movierec.data import load

    spec = exp.dataset
    if spec.train is not None:
        return None
    ds = load(spec.release or str(spec.path), data_dir=data_dir, imdb_dir=spec.imdb_dir)
    return ds.filter(**spec.filters) if spec.filters else ds


def make_experiment_split(exp: Experiment, spec: ExperimentSplit, ds: Any, *,
                          data_dir: str | Path | None = None) -> Any:
    """The Split that `spec` describes, with the dataset filters recorded in its params."""
    return split_spec(exp, spec).build(data_dir=data_dir, ds=ds, filtered=True)


def split_spec(exp: Experiment, spec: ExperimentSplit) -> SplitSpec:
    """The pipeline's `SplitSpec` of one split of an experiment."""
    d = exp.dataset
    dataset = d.release or (str(d.path) if d.path is not None else None)
    if d.train is not None and d.test is not None:
        return SplitSpec(kind="files", dataset=dataset, train=d.train, test=d.test,
                         valid=d.valid)
    options: dict[str, Any] = dict(spec.options)
    if d.path is not None and spec.kind in ("u1", "u2", "u3", "u4", "u5", "ua", "ub"):
        options["data_dir"] = d.path
    return SplitSpec(kind=spec.kind, dataset=dataset, test_size=spec.test_size,
                     valid_size=spec.valid_size, seed=spec.seed, options=options,
                     filters=dict(d.filters))


def protocol_record(ev: EvaluationSpec) -> dict[str, Any]:
    """The results.json "protocol" entry of an evaluation."""
    return ev.record()


def run_experiment(
    exp: Experiment,
    out: str | Path,
    *,
    quick: bool = False,
    data_dir: str | Path | None = None,
    progress: bool = False,
    on_message: Callable[[str], None] | None = None,
    threads: int | None = None,
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
        threads: PyTorch threads (default `movierec.pipeline.resolve_threads()`).

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
            record = _run_one(exp, run, split, spec.evaluation, folder, progress, keys[run.key],
                              threads)
            atomic_write_text(path, json.dumps(record, indent=2, default=json_default))
            records.append(record)
            say(f"  {run.key}: fit {record['fit_seconds']:.2f}s, {_headline(record)}")
        results[spec.name] = _assemble(split, spec.evaluation, records, folder)
    return results


def _run_key(run: RunSpec, split: Any, ev: EvaluationSpec, quick: bool) -> str:
    spec = {"model": run.model, "params": run.params, "seed": run.seed, "quick": quick,
            "split": split.describe(), "train": split.train.fingerprint,
            "evaluation": {k: v for k, v in asdict(ev).items() if k != "max_memory_mb"}}
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


def _run_one(exp: Experiment, run: RunSpec, split: Any, ev: EvaluationSpec, folder: Path,
             progress: bool, run_key: str, threads: int | None = None) -> dict[str, Any]:
    from movierec.models import get

    model = get(run.model, **run.params)
    checkpoint = None
    if exp.checkpoints and model.trains_by_epochs:
        # The settings' hash in the name: an interrupted run resumes only its own checkpoint.
        checkpoint = folder / "checkpoints" / f"{run.key}-{run_key}"
    logger.info("fitting %s (seed %d)", run.name, run.seed)
    # Experiment files say whether they have a validation part: no silent carve-out here.
    record = fit_evaluate(model, split, seed=run.seed, evaluation=ev, keep_lists=exp.lists,
                          progress=progress, checkpoint_dir=checkpoint,
                          resume=checkpoint is not None and _has_checkpoint(checkpoint),
                          auto_valid=False, name=run.name, threads=threads,
                          extra={"registry_model": run.model, "label": run.label,
                                 "run_key": run_key})
    if record.lists is not None:
        atomic_write_bytes(folder / "lists" / f"{run.key}.parquet",
                           record.lists.to_parquet(index=False))
    if record.per_user is not None:
        # Each test user's value of every per-user metric, for `movierec compare` (as benchmark).
        atomic_write_bytes(folder / PER_USER_DIR / f"{run.key}.parquet",
                           record.per_user.to_parquet(index=False))
    if exp.recommend is not None:
        _write_recommendations(record.fitted, split, exp.recommend, folder / "recommendations" /
                               f"{run.key}.csv")
    return record.to_dict()


def _has_checkpoint(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


#: The former name of `movierec.pipeline.evaluate_protocols`.
evaluate_run = evaluate_protocols


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


__all__ = ["evaluate_run", "load_data", "make_experiment_split", "protocol_record",
           "run_experiment"]
