"""`tune(...)`: hyper-parameter search with Optuna on validation data only.

Every registered model declares its `search_space` (see `movierec.models.space`); `tune` turns it
into Optuna suggestions, fits the model on the training part, and scores it on the validation part
with the one evaluator. The test part of a split is never read here: callers pass `train` and
`valid` only (`movierec tune` carves a per-user validation share from the training data when no
validation file is given: seeded random, or each user's latest ratings for time-ordered splits).

- Sampler: TPE seeded from `rng` (and the number of trials already in the study, so a resumed
  study does not replay its first suggestions). A new study's first trial is the model's
  documented defaults, so tuning never reports worse than the defaults on validation.
- Pruning: neural models report their per-epoch validation metric through the training loop's
  `on_epoch`; a median pruner stops trials that are worse than the median of earlier trials at the
  same epoch. Only when the training loop's own metric is the tuned one (RMSE for rating models,
  NDCG@10 for ranking models); otherwise trials run to the end.
- Storage: any Optuna storage URL; by default SQLite in the output folder, so running the same
  command again continues the study until it has `trials` finished trials.
- Output: `best.json` ({"model", "params", "metric", "value", "direction", "trials", ...}) and
  `trials.csv`, both written atomically; nothing is written when no trial finished.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from movierec import metrics as M
from movierec.data.dataset import Dataset
from movierec.errors import MissingExtraError, MovieRecError
from movierec.io import atomic_write_text, json_default
from movierec.models import get, get_class
from movierec.models.space import Choice, Float, Int, check_space
from movierec.pipeline import EvaluationSpec, evaluate_protocols, fit_evaluate
from movierec.random import RNGLike, derive_seed
from movierec.split import Split
from movierec.split import carve_validation as carve_validation  # its former home

if TYPE_CHECKING:
    import optuna
    from optuna import Study, Trial
    from optuna.trial import FrozenTrial

    from movierec.models.base import Recommender

logger = logging.getLogger(__name__)

__all__ = ["TuneError", "TuneResult", "check_metric", "load_params_file", "metric_direction",
           "tune"]

BEST_FILE = "best.json"
TRIALS_FILE = "trials.csv"
STUDY_DB = "study.db"
# Metrics where lower is better; every other metric (ranking, coverage...) is maximised.
LOWER_IS_BETTER = {name for name in M.names("rating") if M.CATALOGUE[name].direction == "lower"
                   and name != "mse"}
RANKING_METRICS = M.names("ranking")
# What SQL storages say when two workers create one new database at once (retried).
_SCHEMA_RACE = ("already exists", "UNIQUE constraint failed", "database is locked")


class TuneError(MovieRecError):
    """A tuning request that cannot run (unknown metric, empty search space, bad storage...)."""


@dataclass
class TuneResult:
    """What a study found.

    Attributes:
        model: registry name.
        metric: the tuned validation metric, e.g. "rmse" or "ndcg@10".
        direction: "minimize" or "maximize".
        value: the best trial's validation value.
        params: every constructor parameter of the best model (fixed and tuned ones).
        trials: finished trials in the study (complete + pruned).
        complete, pruned, failed: trial counts by state.
        seconds: wall time of this call.
        study_name, storage: where the study lives.
    """

    model: str
    metric: str
    direction: str
    value: float
    params: dict[str, Any]
    trials: int
    complete: int
    pruned: int
    failed: int
    seconds: float
    study_name: str
    storage: str
    tuned: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (seconds rounded to milliseconds)."""
        return {"model": self.model, "params": self.params, "metric": self.metric,
                "value": self.value, "direction": self.direction, "trials": self.trials,
                "complete": self.complete, "pruned": self.pruned, "failed": self.failed,
                "tuned": self.tuned, "study": self.study_name, "storage": self.storage,
                "seconds": round(self.seconds, 3)}


# --- metrics -----------------------------------------------------------------------------------
def check_metric(metric: str) -> tuple[str, int | None]:
    """Parse "rmse", "mae" or "<ranking>@<k>" into (name, k); TuneError otherwise."""
    m = metric.strip().lower()
    if m in LOWER_IS_BETTER:
        return m, None
    name, sep, k = m.partition("@")
    if sep and name in RANKING_METRICS and k.isdigit() and int(k) >= 1:
        return name, int(k)
    raise TuneError(f"unknown metric {metric!r}: use rmse, mae or one of "
                    f"{', '.join(RANKING_METRICS)} with @k, e.g. ndcg@10")


def metric_direction(metric: str) -> str:
    """"minimize" for rmse/mae, "maximize" for ranking metrics (TuneError if unknown)."""
    name, _ = check_metric(metric)
    return "minimize" if name in LOWER_IS_BETTER else "maximize"


def _loop_metric(model: Recommender) -> str | None:
    """The metric the training loop reports per epoch for this model, if it has a loop."""
    objective = getattr(model, "objective", None)
    if objective == "rating":
        return "rmse"
    if objective == "ranking":
        return "ndcg@10"
    return None


def validation_value(model: Recommender, train: Dataset, valid: Dataset, metric: str,
                     relevance: float) -> float:
    """The fitted model's `metric` on `valid` with the one evaluator (full ranking)."""
    name, k = check_metric(metric)
    if name in LOWER_IS_BETTER and not model.rates:
        raise TuneError(f"model {model.name!r} does not predict ratings, so {metric} cannot "
                        "be tuned; choose a ranking metric such as ndcg@10")
    metrics, _, _, _ = evaluate_protocols(
        model, Split(train=train, test=valid, name="tune"),
        EvaluationSpec(k=(k or M.DEFAULT_K,), relevance=relevance), keep_lists=False)
    return _metric_value(metrics, metric, relevance)


def _metric_value(metrics: Mapping[str, Any], metric: str, relevance: float) -> float:
    name, k = check_metric(metric)
    value = metrics.get(name if k is None else f"{name}@{k}")
    if value is None or not math.isfinite(float(value)):
        raise TuneError(f"{metric} is undefined on the validation data (no user with a relevant "
                        f"item at relevance ≥ {relevance}?)")
    return float(value)


def child_seed(seed: int, n: int) -> int:
    """A 32-bit seed derived from (seed, n): trial n's model seed, or the sampler's on resume."""
    return int(np.random.SeedSequence([int(seed), int(n)]).generate_state(1)[0])


# --- search space → optuna ---------------------------------------------------------------------
def _suggest(trial: optuna.Trial, name: str, dist: Float | Int | Choice) -> Any:
    if isinstance(dist, Float):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    if isinstance(dist, Int):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    # Optuna stores categorical choices as JSON-like primitives: suggest an index label.
    labels = [_label(c) for c in dist.choices]
    picked = trial.suggest_categorical(name, labels)
    return dist.choices[labels.index(picked)]


def _label(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, default=json_default)


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise MissingExtraError("movierec tune needs optuna: pip install 'movierec[tune]'") from exc
    return optuna


# --- the search --------------------------------------------------------------------------------
def tune(
    model: str,
    train: Dataset,
    valid: Dataset,
    *,
    metric: str = "rmse",
    trials: int = 20,
    timeout: float | None = None,
    rng: RNGLike = 42,
    relevance: float = 4.0,
    fixed: Mapping[str, Any] | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    out: str | Path | None = None,
    prune: bool = True,
    progress: bool = True,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    seed: int | None = None,
) -> TuneResult:
    """Search `model`'s hyper-parameters on `valid`; returns the best trial.

    Args:
        model: registry name; its class must declare a non-empty `search_space`.
        train: data the models are fitted on.
        valid: data the metric is computed on (and neural models early-stop on). Never the test.
        metric: "rmse", "mae" or a ranking metric at k, e.g. "ndcg@10", "recall@20".
        trials: finished trials the study should have (complete + pruned, ≥ 1); a resumed study
            runs only the missing ones.
        timeout: stop starting new trials after this many seconds (None: no limit).
        rng: seed (default 42) or Generator of the TPE sampler and every trial's model; None
            draws a fresh seed.
        relevance: rating threshold of a relevant validation item for ranking metrics (0: all).
        fixed: parameters held fixed (not tuned), e.g. {"epochs": 30}; a fixed parameter is
            removed from the search space.
        storage: Optuna storage URL; None: `sqlite:///<out>/study.db` (in memory without `out`).
        study_name: name of the study in the storage (default "<model>-<metric>").
        out: folder for best.json, trials.csv and the default SQLite study.
        prune: report per-epoch validation values so a median pruner can stop bad trials.
        progress: show a progress bar with the best value so far.
        on_trial: called with each finished trial's record {number, state, value, params}.
        seed: deprecated, the former name of `rng` (a DeprecationWarning).
    """
    if seed is not None:
        warnings.warn("tune(seed=...) is deprecated; use rng=...", DeprecationWarning,
                      stacklevel=2)
        if not (isinstance(rng, int) and rng == 42):
            raise ValueError("tune: give rng only (seed is its old name)")
        rng = seed
    seed = int(rng) if isinstance(rng, int | np.integer) else derive_seed(rng)
    optuna = _import_optuna()
    if not (isinstance(trials, int) and trials >= 1):
        raise TuneError(f"--trials must be an integer ≥ 1, got {trials!r}")
    if timeout is not None and not timeout > 0:
        raise TuneError(f"--timeout must be > 0 seconds, got {timeout!r}")
    metric = metric.strip().lower()
    direction = metric_direction(metric)
    try:
        cls = get_class(model)
    except KeyError as exc:
        raise TuneError(str(exc.args[0])) from None
    try:  # old parameter names (e.g. itemknn's k) -> current ones, with a DeprecationWarning
        fixed = cls.canonical_params(dict(fixed or {}))
    except ValueError as exc:
        raise TuneError(str(exc)) from None
    unknown = sorted(set(fixed) - set(cls.param_names()))
    if unknown:
        raise TuneError(f"model {model!r} has no parameter(s) {unknown}; it takes "
                        f"{cls.param_names()}")
    check_space(model, cls.search_space, cls.param_names())
    space = {k: v for k, v in cls.search_space.items() if k not in fixed}
    if not space:
        raise TuneError(f"model {model!r} has no search space to tune"
                        + (" (every parameter in it is fixed)" if cls.search_space else ""))
    if metric in LOWER_IS_BETTER and not cls.rates_with(fixed):
        raise TuneError(f"model {model!r} does not predict ratings, so {metric} cannot be "
                        "tuned; choose a ranking metric such as ndcg@10")
    out_dir = None if out is None else Path(out)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if storage is None:
        storage = f"sqlite:///{(out_dir / STUDY_DB).resolve()}" if out_dir is not None else None
    study_name = study_name or f"{model}-{metric}"

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
              if prune else optuna.pruners.NopPruner())
    for attempt in range(4):
        try:
            study = optuna.create_study(storage=storage, study_name=study_name,
                                        direction=direction, pruner=pruner, load_if_exists=True)
            break
        except Exception as exc:  # optuna raises many storage-specific types
            # Two workers creating one new database race on its schema: try again shortly.
            if any(m in str(exc) for m in _SCHEMA_RACE) and attempt < 3:
                time.sleep(0.5 * (attempt + 1))
                continue
            raise TuneError(f"cannot open the study {study_name!r} in storage {storage!r}: "
                            f"{type(exc).__name__}: {exc}") from exc
    # Seeded with the number of finished trials, so a resumed study does not replay its start.
    study.sampler = optuna.samplers.TPESampler(seed=child_seed(seed, _count(study, optuna)))
    if study.direction.name.lower() != direction:
        raise TuneError(f"study {study_name!r} in {storage} was created to "
                        f"{study.direction.name.lower()}, but {metric} needs {direction}")
    study.set_user_attr("model", model)
    study.set_user_attr("metric", metric)
    if not study.trials:  # a new study starts from the documented defaults
        defaults = _defaults_in_space(cls, space, fixed)
        if defaults:
            study.enqueue_trial(defaults)

    name, k = check_metric(metric)
    evaluation = EvaluationSpec(k=(k or M.DEFAULT_K,), relevance=relevance)

    def objective(trial: Trial) -> float:
        params = {**fixed, **{k: _suggest(trial, k, d) for k, d in space.items()}}
        try:
            m = get(model, **params)
        except ValueError as exc:  # a combination the constructor rejects
            raise optuna.TrialPruned(f"invalid parameters: {exc}") from exc
        trial.set_user_attr("params", json.loads(json.dumps(m.params(), default=json_default)))
        fit_kwargs: dict[str, Any] = {}
        if prune and _loop_metric(m) == metric:
            def report(record: dict[str, Any]) -> None:
                value = record.get("valid_metric")
                if value is None:
                    return
                trial.report(float(value), int(record["epoch"]))
                if trial.should_prune():
                    trial.set_user_attr("pruned_at_epoch", int(record["epoch"]))
                    raise optuna.TrialPruned(f"pruned at epoch {record['epoch']}")
            fit_kwargs["on_epoch"] = report
        record = fit_evaluate(m, Split(train=train, test=valid, valid=valid, name="tune"),
                              seed=child_seed(seed, trial.number), evaluation=evaluation,
                              auto_valid=False, on_epoch=fit_kwargs.get("on_epoch"))
        trial.set_user_attr("fit_seconds", round(record.fit_seconds, 3))
        if record.history is not None:
            trial.set_user_attr("epochs_run", len(record.history))
        return _metric_value(record.metrics, metric, relevance)

    from tqdm.auto import tqdm

    remaining = max(0, trials - _count(study, optuna))
    bar = tqdm(total=remaining, unit="trial", desc=f"tune {model}",
               disable=None if progress else True, leave=False)

    def callback(study: Study, trial: FrozenTrial) -> None:
        bar.update(1)
        try:
            bar.set_postfix(best=f"{study.best_value:.4f}", refresh=False)
        except ValueError:  # no complete trial yet
            pass
        if on_trial is not None:
            on_trial({"number": trial.number, "state": trial.state.name.lower(),
                      "value": trial.value, "params": trial.params})

    t_start = time.perf_counter()
    try:
        if remaining:
            # Stops every worker of a shared study once it has `trials` finished trials.
            enough = optuna.study.MaxTrialsCallback(
                trials, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
            study.optimize(objective, n_trials=remaining, timeout=timeout,
                           callbacks=[callback, enough], catch=(MovieRecError,),
                           gc_after_trial=True)
    finally:
        bar.close()
    seconds = time.perf_counter() - t_start
    states = [t.state for t in study.trials]
    complete = sum(s == optuna.trial.TrialState.COMPLETE for s in states)
    if complete == 0:
        raise TuneError(f"no trial of {model!r} finished (pruned "
                        f"{sum(s == optuna.trial.TrialState.PRUNED for s in states)}, failed "
                        f"{sum(s == optuna.trial.TrialState.FAIL for s in states)}); "
                        "nothing was written")
    best = study.best_trial
    result = TuneResult(
        model=model, metric=metric, direction=direction, value=float(best.value),
        params=dict(best.user_attrs.get("params", {})), trials=_count(study, optuna),
        complete=complete, pruned=sum(s == optuna.trial.TrialState.PRUNED for s in states),
        failed=sum(s == optuna.trial.TrialState.FAIL for s in states), seconds=seconds,
        study_name=study_name, storage=storage or "memory", tuned=sorted(space))
    if out_dir is not None:
        write_outputs(study, result, out_dir)
    return result


def _defaults_in_space(cls: type[Recommender], space: Mapping[str, Float | Int | Choice],
                       fixed: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor defaults of the searched parameters, as Optuna values (those in range).

    Enqueued as a new study's first trial, so a study never reports a best value worse than the
    defaults' on the validation data.
    """
    import inspect

    sig = inspect.signature(cls.__init__).parameters
    out: dict[str, Any] = {}
    for name, dist in space.items():
        default = sig[name].default if name in sig else inspect.Parameter.empty
        if default is inspect.Parameter.empty or not dist.contains(default):
            continue
        out[name] = _label(default) if isinstance(dist, Choice) else default
    return out


def _count(study: Any, optuna: Any) -> int:
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return sum(t.state in done for t in study.trials)


def write_outputs(study: Any, result: TuneResult, out: Path) -> None:
    """best.json and trials.csv, each replaced atomically."""
    frame = study.trials_dataframe(attrs=("number", "value", "state", "duration", "params",
                                          "user_attrs"))
    frame = frame.drop(columns=[c for c in frame.columns if c == "user_attrs_params"])
    if "duration" in frame:
        frame["duration"] = frame["duration"].dt.total_seconds()
    atomic_write_text(out / TRIALS_FILE, frame.to_csv(index=False))
    atomic_write_text(out / BEST_FILE, json.dumps(result.to_dict(), indent=2,
                                                  default=json_default) + "\n")


# --- reading best.json back ----------------------------------------------------------------------
def load_params_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(model, params) from a `best.json` written by `tune`; tuples restored for list params."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TuneError(f"{path}: no such params file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TuneError(f"{path}: not a readable JSON params file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), str) \
            or not isinstance(data.get("params"), dict):
        raise TuneError(f"{path}: expected an object with 'model' (a name) and 'params' "
                        "(an object), as written by movierec tune")
    model, params = data["model"], data["params"]
    try:
        cls = get_class(model)
    except KeyError as exc:
        raise TuneError(f"{path}: {exc.args[0]}") from None
    try:  # a file written before a rename (itemknn's k...): warn and use the current names
        params = cls.canonical_params(params)
    except ValueError as exc:
        raise TuneError(f"{path}: {exc}") from None
    unknown = sorted(set(params) - set(cls.param_names()))
    if unknown:
        raise TuneError(f"{path}: model {model!r} has no parameter(s) {unknown}")
    return model, {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def read_tuning(folder: str | Path) -> tuple[dict[str, Any], pd.DataFrame, dict[str, float]]:
    """(best.json, trials.csv, parameter importances) of a tuning folder.

    Importances come from Optuna's fANOVA over the stored study (empty when the study cannot be
    opened, e.g. a remote storage, or has fewer than two complete trials).
    """
    folder = Path(folder)
    try:
        best = json.loads((folder / BEST_FILE).read_text(encoding="utf-8"))
        trials = pd.read_csv(folder / TRIALS_FILE)
    except FileNotFoundError as exc:
        raise TuneError(f"{folder} is not a tuning folder: {exc.filename} is missing") from None
    except (ValueError, OSError) as exc:
        raise TuneError(f"{folder}: cannot read the tuning files ({exc})") from None
    importances: dict[str, float] = {}
    storage = best.get("storage")
    if storage and storage != "memory":
        try:
            optuna = _import_optuna()
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.load_study(study_name=best["study"], storage=storage)
            importances = {k: float(v) for k, v in
                           optuna.importance.get_param_importances(study).items()}
        except Exception as exc:  # noqa: BLE001 - an optional figure; say why and go on
            logger.warning("no parameter importances for %s: %s", folder, exc)
    return best, trials, importances


def search_space_table(model: str) -> list[dict[str, Any]]:
    """The model's search space as rows {param, kind, range, log} (for --help and docs)."""
    rows = []
    for name, dist in get_class(model).search_space.items():
        if isinstance(dist, Choice):
            rows.append({"param": name, "kind": "choice", "range": list(dist.choices),
                         "log": False})
        else:
            rows.append({"param": name, "kind": type(dist).__name__.lower(),
                         "range": [dist.low, dist.high], "log": dist.log})
    return rows

