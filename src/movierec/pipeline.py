"""One run pipeline: a split specification that records and rebuilds a split, and `fit_evaluate`.

The CLI's `train` and `benchmark`, experiment files (`movierec run`) and `movierec tune` are loops
over these two pieces, so a split is built one way, a model is fitted and evaluated one way, and a
run is recorded in one shape wherever it happens:

    spec = SplitSpec(dataset="ml-100k", kind="user-time", seed=1)
    split = spec.build()
    record = fit_evaluate("ease", split, params={"lambda_": 500}, seed=1)
    record.metrics["ndcg@10"], record.fit_seconds, record.to_dict()

Imports point down: this module uses data, split, models and evaluate, and nothing above them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from movierec import metrics as M
from movierec.results import json_ready

if TYPE_CHECKING:
    import pandas as pd

    from movierec.data.dataset import Dataset
    from movierec.models.base import Recommender
    from movierec.split import Split

logger = logging.getLogger(__name__)

#: Share of the training part carved out for early stopping when a model that needs validation
#: gets none (the rule of `--valid-size 0.1`; each user's latest ratings on time-ordered splits).
AUTO_VALID_SIZE = 0.1
#: Threads for PyTorch's intra-op pool unless told otherwise. The batches of movierec's neural
#: models are small (hundreds to thousands of rows), and on a 2-core machine that also runs other
#: work one thread was 11-15x faster than torch's default (`movierec train --model mf
#: --param epochs=2` on ML-100K: 3.6-3.9 s against 41-59 s; see docs/scale.md).
DEFAULT_THREADS = 1
PROTOCOLS = ("full", "sampled", "rated-items")


# --- threads -------------------------------------------------------------------------------------
#: The count of the last `set_threads` call (a run's `--threads`), which models with their own
#: thread pools (the numba kernels of `ials` and `mf`'s numba backend) follow too.
_threads: int | None = None


def resolve_threads(threads: int | None = None) -> int:
    """The thread count: `threads`, else `set_threads`'s last, else $MOVIEREC_THREADS, else 1.

    `DEFAULT_THREADS` is the last resort.

    Raises:
        ValueError: the count (or the environment variable) is not an integer >= 1.
    """
    source = "threads"
    if threads is None and _threads is not None:
        return _threads
    if threads is None:
        env = os.environ.get("MOVIEREC_THREADS")
        if env is None:
            return DEFAULT_THREADS
        source = "MOVIEREC_THREADS"
        try:
            threads = int(env)
        except ValueError:
            raise ValueError(f"{source} must be an integer >= 1, got {env!r}") from None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"{source} must be an integer >= 1, got {threads!r}")
    return threads


def set_threads(threads: int | None = None) -> int:
    """Set PyTorch's intra-op thread count (when torch is installed); returns the count used.

    Results repeat exactly for the same thread count: float sums in a different order change
    the 3rd-4th decimal of some neural models' metrics, so the count is recorded with each run.
    """
    global _threads
    n = _threads = resolve_threads(threads)
    try:
        import torch
    except ImportError:
        return n
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


# --- splits --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SplitSpec:
    """Everything needed to build a split again: the data, the strategy, its seed and options.

    Attributes:
        kind: "random", "user-random", "user-time", "time", "loo", a predefined ML-100K fold
            ("u1".."u5", "ua", "ub"), or "files" (read from `train`/`test`/`valid`).
        dataset: release name or folder; with files it only supplies the item and user tables.
        test_size: test fraction of ratio splits. Default 0.2.
        valid_size: validation fraction of the training part (0 = none). With files and no
            `valid` file, carved from the training file (per user, at random).
        seed: seed of the split (None: drawn, then recorded by the splitter).
        filters: dataset filters applied before splitting (`Dataset.filter` keywords).
        options: strategy options (`test_n`, `min_train`, `cut`, `valid` for "loo"; `fold`
            and `folds` for fold `fold` of a K-fold cross-validation, see `movierec.split.kfold`).
        train, test, valid: rating files for a "files" split.
        read_options: options for reading the files (e.g. `sep`).
        imdb_dir: folder of IMDb's TSV files that enrich the item table (directors, actors,
            ...; `movierec.data.imdb`). Not part of the split's record: it changes no rating.
    """

    kind: str = "user-random"
    dataset: str | None = None
    test_size: float = 0.2
    valid_size: float = 0.0
    seed: int | None = 42
    filters: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    train: Path | None = None
    test: Path | None = None
    valid: Path | None = None
    read_options: Mapping[str, Any] = field(default_factory=dict)
    imdb_dir: Path | None = None

    def __post_init__(self) -> None:
        if (self.train is None) != (self.test is None):
            raise ValueError("--train and --test go together")
        if self.train is not None and self.kind != "files":
            object.__setattr__(self, "kind", "files")
        if self.read_options and self.kind != "files":
            raise ValueError(f"{', '.join(f'--{k}' for k in self.read_options)}: only for "
                             "rating files given with --train/--test; releases are read in "
                             "their official layout")

    def build(self, *, data_dir: str | Path | None = None, ds: Dataset | None = None,
              filtered: bool = False) -> Split:
        """The split this spec describes.

        Args:
            data_dir: folder of releases (default $MOVIEREC_DATA_DIR, then the cache).
            ds: the loaded dataset, to avoid loading it again (optional).
            filtered: `ds` is already filtered by `filters` (they are only recorded).
        """
        from movierec.data import load
        from movierec.split import PREDEFINED_FOLDS, files_split, make_split

        if self.kind == "files":
            assert self.train is not None and self.test is not None
            base = ds if ds is not None else (load(self.dataset, data_dir=data_dir,
                                                   imdb_dir=self.imdb_dir)
                                              if self.dataset else None)
            made = files_split(self.train, self.test, self.valid, base=base,
                               **dict(self.read_options))
            if self.valid is None and self.valid_size:
                made = _carve_into(made, self.valid_size, self.seed, time_ordered=False)
            return made
        if self.dataset is None and ds is None:
            raise ValueError("give --dataset NAME, or --train FILE --test FILE")
        if ds is None:
            ds = load(str(self.dataset), data_dir=data_dir, imdb_dir=self.imdb_dir)
        if self.filters and not filtered:
            ds = ds.filter(**dict(self.filters))
        extra: dict[str, Any] = dict(self.options)
        if self.kind in PREDEFINED_FOLDS and "data_dir" not in extra:
            extra["data_dir"] = _release_folder(str(self.dataset or ds.name), data_dir)
        made = make_split(ds, self.kind, test_size=self.test_size, valid_size=self.valid_size,
                          rng=self.seed, **extra)
        if self.filters:  # recorded so that `movierec report` can re-create the split
            made = dataclasses.replace(made, params={**made.params,
                                                     "filters": dict(self.filters)})
        return made

    @classmethod
    def from_record(cls, record: Mapping[str, Any], dataset: str | None = None) -> SplitSpec:
        """The spec of a split recorded by `Split.describe()` (results.json's "split").

        Raises:
            movierec.errors.SplitError: the record cannot be replayed (a files split, or an
                unknown kind).
        """
        from movierec.errors import SplitError
        from movierec.split import PREDEFINED_FOLDS

        kind = str(record.get("name"))
        seed = None if record.get("ties") == "item_id" else record.get("seed")
        base: dict[str, Any] = {"kind": kind, "dataset": dataset,
                                "valid_size": record.get("valid_size") or 0.0,
                                "filters": dict(record.get("filters") or {})}
        if kind in ("random", "user-random", "user-time"):
            options = {key: record[key] for key in ("test_n", "min_train", "fold", "folds")
                       if record.get(key) is not None}
            return cls(**base, test_size=record.get("test_size") or 0.2, seed=seed,
                       options=options)
        if kind == "time":
            return cls(**base, options={"cut": record["cut"]})
        if kind == "loo":
            return cls(**base, seed=seed, options={"valid": bool(record.get("valid"))})
        if kind in PREDEFINED_FOLDS:
            return cls(**base, seed=record.get("seed"))
        raise SplitError(f"split {kind!r} cannot be re-created from results.json (a split read "
                         "from files, or an unknown kind)")


def _release_folder(dataset: str, data_dir: str | Path | None) -> Path:
    from movierec.data.movielens import resolve
    from movierec.data.releases import get_release

    if Path(dataset).is_dir():
        return Path(dataset)
    return resolve(get_release(dataset), data_dir=data_dir)


def is_time_ordered(split: Split) -> bool:
    """Whether the split orders each user's ratings by time (its validation must too)."""
    return split.name in ("user-time", "time", "loo") or bool(split.params.get("time_aware"))


def _carve_into(split: Split, fraction: float, seed: int | None, *,
                time_ordered: bool) -> Split:
    """`split` with `fraction` of each user's training ratings moved to a new validation part."""
    from movierec.split import carve_validation, check_leakage

    rest, valid = carve_validation(split.train, fraction, 42 if seed is None else seed,
                                   time_ordered=time_ordered)
    made = dataclasses.replace(split, train=rest, valid=valid,
                               params={**split.params, "valid_size": fraction,
                                       "valid_carved": "latest" if time_ordered else "random"})
    check_leakage(made)
    return made


def needs_validation(model: Recommender) -> bool:
    """Whether the model early-stops on a validation part (trains by epochs with patience)."""
    return bool(getattr(model, "trains_by_epochs", False)) and \
        getattr(model, "patience", None) not in (None, 0)


# --- what to evaluate ----------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationSpec:
    """Protocols, list lengths, relevance threshold and the metrics to keep.

    Attributes:
        protocols: "full" (rank every unseen item), "sampled" (1 + n_negatives), "rated-items"
            (precision/recall over each user's rated test items).
        k: list lengths.
        relevance: test ratings at or above this are relevant (0 = every test rating).
        rated_threshold: the rated-items protocol's threshold.
        n_negatives: sampled negatives per user (sampled protocol).
        metrics: metric names to keep (None = all the protocols give).
        max_memory_mb: working memory for one block of scores (None = default blocks).
    """

    protocols: tuple[str, ...] = ("full",)
    k: tuple[int, ...] = (5, 10, 20)
    relevance: float = 4.0
    rated_threshold: float = 4.0
    n_negatives: int = 100
    metrics: tuple[str, ...] | None = None
    max_memory_mb: float | None = dataclasses.field(default=None, compare=False)

    def record(self) -> dict[str, Any]:
        """The results.json "protocol" entry."""
        out: dict[str, Any] = {"protocol": "+".join(self.protocols),
                               "protocols": list(self.protocols), "relevance": self.relevance,
                               "k": list(self.k)}
        if "full" in self.protocols:
            out["candidates"] = "all-unseen"
        elif "sampled" in self.protocols:
            out["candidates"] = f"1 held-out + {self.n_negatives} sampled"
        else:
            out["candidates"] = "the user's rated test items"
        if "sampled" in self.protocols:
            out["n_negatives"] = self.n_negatives
        if "rated-items" in self.protocols:
            out["rated_threshold"] = self.rated_threshold
        if self.metrics is not None:
            out["metrics"] = list(self.metrics)
        return out


def metric_keys(name: str, protocols: Sequence[str]) -> set[str]:
    """Base metric keys (before '@') that the metric name selects under these protocols."""
    rating, ranking, beyond = M.names("rating"), M.names("ranking"), M.names("beyond")
    sampled, rated = M.names("sampled"), M.names("rated")
    out: set[str] = set()
    if name in rating:
        out.add(name)
    if "full" in protocols and name in (*ranking, *beyond):
        out.add(name)
    if "sampled" in protocols and (name in ("hit", "ndcg") or name in sampled):
        out.add(name if name in sampled else f"sampled_{name}")
    if "rated-items" in protocols:
        if name in ("precision", "recall", "f1"):
            out.add(f"{name}_rated")
        elif name in rated:
            out.add(name)
        elif name == "rmse":
            out.add("rmse_scaled")
    return out


def selected_metrics(ev: EvaluationSpec) -> set[str] | None:
    """The base metric keys `ev` keeps (None = everything its protocols give)."""
    if ev.metrics is None:
        return None
    return set().union(*(metric_keys(m, ev.protocols) for m in ev.metrics))


def evaluate_protocols(model: Recommender, split: Split, ev: EvaluationSpec, *,
                       seed: int = 42, keep_lists: bool = True
                       ) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame | None,
                                  float | None]:
    """Metrics of one fitted model under every protocol of `ev`, filtered to `ev.metrics`.

    Returns:
        (metrics, counts, top-k lists or None, seconds spent ranking or None).
    """
    return _evaluate(model, split, ev, seed=seed, keep_lists=keep_lists)[:4]


def _evaluate(model: Recommender, split: Split, ev: EvaluationSpec, *,
              seed: int = 42, keep_lists: bool = True, exclude: Dataset | None = None
              ) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame | None, float | None,
                         pd.DataFrame | None]:
    """`evaluate_protocols`, and each test user's per-user metric values (or None)."""
    from movierec.evaluate import (
        evaluate,
        evaluate_rated_items,
        rating_errors,
        rating_errors_per_user,
    )

    wanted = selected_metrics(ev)

    def asked(*keys: str) -> bool:
        return wanted is None or bool(wanted & set(keys))

    metrics: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    lists, seconds = None, None
    users: list[pd.DataFrame] = []
    if "full" in ev.protocols and asked(*M.names("ranking", "beyond")):
        res = evaluate(model, split, ks=ev.k, relevance=ev.relevance, rng=seed,
                       keep_lists=keep_lists, max_memory_mb=ev.max_memory_mb, exclude=exclude)
        metrics.update(res.summary)
        counts.update(res.counts)
        lists, seconds = res.lists, res.timings.get("ranking")
        users.append(res.per_user)
    if "sampled" in ev.protocols and asked(*M.names("sampled")):
        res = evaluate(model, split, ks=ev.k, relevance=ev.relevance, protocol="sampled",
                       n_negatives=ev.n_negatives, rng=seed, max_memory_mb=ev.max_memory_mb,
                       exclude=exclude)
        metrics.update(res.summary)
        counts.update({f"sampled_{k}": v for k, v in res.counts.items() if k not in counts})
        users.append(res.per_user)
    if model.rates and "rmse" not in metrics and asked(*M.names("rating"), "rmse_scaled"):
        metrics.update(rating_errors(model, split))
    if model.rates and asked(*M.names("rating")):
        users.append(rating_errors_per_user(model, split))
    if "rated-items" in ev.protocols and model.rates and asked(*M.names("rated")):
        rated, rated_counts = evaluate_rated_items(model, split, ev.rated_threshold,
                                                   with_counts=True)
        metrics.update(rated)
        counts.update(rated_counts)
    if "rmse" in metrics and wanted is not None and "mse" in wanted:
        metrics["mse"] = metrics["rmse"] ** 2
    if wanted is not None:
        metrics = {k: v for k, v in metrics.items() if k.split("@")[0] in wanted}
    return ({k: clean(v) for k, v in metrics.items()}, counts, lists, seconds,
            _per_user(users, wanted))


def _per_user(frames: list[pd.DataFrame], wanted: set[str] | None) -> pd.DataFrame | None:
    """One row per test user: user_id and every per-user metric column of `frames`."""
    frame = None
    for part in frames:
        if part is None or part.empty:
            continue
        frame = part if frame is None else frame.merge(part, on="user_id", how="outer",
                                                       suffixes=("", "_dup"))
    if frame is None:
        return None
    keep = [c for c in frame.columns if c == "user_id" or c.startswith("n_") or (
        not c.endswith("_dup") and (wanted is None or c.split("@")[0] in wanted))]
    return frame[keep].sort_values("user_id", kind="stable").reset_index(drop=True)


# --- one run -------------------------------------------------------------------------------------
@dataclass
class RunRecord:
    """One fitted and evaluated model: what results.json keeps of a run, and the model itself.

    Attributes:
        model: the run's name (registry name, or an experiment's label).
        params: the model's hyper-parameters as fitted.
        seed: the model's seed.
        fit_seconds, recommend_seconds, evaluate_seconds: timings.
        metrics: summary metrics ("ndcg@10", "rmse", ...), NaN as None.
        counts: evaluation counts (test users, unseen rows...).
        history: per-epoch records of models trained by epochs, else None.
        validation: how the validation part was obtained ("split", "carved 10% ...", "none").
        threads: PyTorch intra-op threads used.
        extra: further keys to keep (registry name, label, run key...).
        lists: the evaluated top-k lists (not serialized by `to_dict`).
        fitted: the fitted model (not serialized).
        per_user: each test user's value of every per-user metric (user_id, ndcg@10, ...,
            rmse), for paired tests (not serialized by `to_dict`; benchmarks store it as parquet).
    """

    model: str
    params: dict[str, Any]
    seed: int
    fit_seconds: float
    recommend_seconds: float
    evaluate_seconds: float
    metrics: dict[str, Any]
    counts: dict[str, Any]
    history: list[dict[str, Any]] | None = None
    validation: str = "none"
    threads: int = DEFAULT_THREADS
    extra: dict[str, Any] = field(default_factory=dict)
    lists: pd.DataFrame | None = field(default=None, repr=False)
    fitted: Recommender | None = field(default=None, repr=False)
    per_user: pd.DataFrame | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready run record (the shape of results.json's "runs" entries)."""
        from movierec.io import json_default

        out: dict[str, Any] = {"model": self.model, **{k: v for k, v in self.extra.items()
                                                       if k in ("registry_model", "label")},
                               "params": self.params, "seed": self.seed,
                               "fit_seconds": round(self.fit_seconds, 4),
                               "recommend_seconds": round(self.recommend_seconds, 4),
                               "evaluate_seconds": round(self.evaluate_seconds, 4),
                               "metrics": self.metrics, "counts": self.counts,
                               "validation": self.validation, "threads": self.threads}
        out.update({k: v for k, v in self.extra.items() if k not in out})
        if self.history is not None:
            out["history"] = self.history
        # As results.json will hold it (tuples as lists, numpy as Python).
        return json.loads(json.dumps(out, default=json_default))


def fit_evaluate(
    model: str | Recommender,
    split: Split,
    *,
    params: Mapping[str, Any] | None = None,
    seed: int = 42,
    evaluation: EvaluationSpec | None = None,
    keep_lists: bool = False,
    progress: bool = False,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    auto_valid: bool = True,
    threads: int | None = None,
    name: str | None = None,
    extra: Mapping[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunRecord:
    """Fit one model on `split.train` and evaluate it on `split.test` under `evaluation`.

    Args:
        model: a registry name (built with `params`) or an unfitted Recommender.
        split: the split; `split.valid`, when present, is given to the model.
        params: keyword hyper-parameters when `model` is a name.
        seed: the model's seed (also the sampled protocol's).
        evaluation: what to measure (default: full ranking at 5, 10, 20, relevance 4).
        keep_lists: keep the evaluated top-k lists in the record.
        progress: show the model's progress bars.
        checkpoint_dir: per-epoch checkpoints (models trained by epochs only).
        resume: resume from `checkpoint_dir` (models trained by epochs only).
        auto_valid: when the split has no validation part and the model early-stops on one,
            carve `AUTO_VALID_SIZE` of each user's training ratings (the latest on time-ordered
            splits) and say so in `RunRecord.validation`. False fits on the whole training part
            for the model's fixed number of epochs.
        threads: PyTorch intra-op threads (default `resolve_threads()`).
        name: the run's name (default the registry name).
        extra: further keys for the run record.
        on_epoch: called with each epoch's record (models trained by epochs; e.g. pruning).

    Raises:
        ValueError: checkpoint_dir/resume given for a model not trained by epochs.
    """
    from movierec.models import get
    from movierec.models.base import Recommender

    n_threads = set_threads(threads)
    evaluation = evaluation or EvaluationSpec()
    if isinstance(model, Recommender):
        recommender = model
    else:
        recommender = get(model, **dict(params or {}))
    label = name or (model if isinstance(model, str) else type(model).__name__.lower())
    by_epochs = bool(getattr(recommender, "trains_by_epochs", False))
    fit_kwargs: dict[str, Any] = {}
    if checkpoint_dir is not None or resume:
        if not by_epochs:
            raise ValueError(f"--resume/checkpoints: model {label!r} is not trained epoch by "
                             "epoch")
        if checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")
        fit_kwargs = {"checkpoint_dir": Path(checkpoint_dir), "resume": resume}
    if on_epoch is not None and by_epochs:
        fit_kwargs["on_epoch"] = on_epoch
    fit_split, validation = split, "split" if split.valid is not None else "none"
    if split.valid is None and auto_valid and needs_validation(recommender):
        ordered = is_time_ordered(split)
        fit_split = _carve_into(split, AUTO_VALID_SIZE, seed, time_ordered=ordered)
        validation = (f"carved {AUTO_VALID_SIZE:.0%} of each user's training ratings "
                      f"({'latest' if ordered else 'at random'}) for early stopping")
        logger.info("%s: no validation part; %s", label, validation)
    if getattr(recommender, "adapts_to_split_order", False):
        fit_kwargs["time_ordered"] = is_time_ordered(split)
    t0 = time.perf_counter()
    recommender.fit(fit_split.train, fit_split.valid, rng=seed, progress=progress, **fit_kwargs)
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    # The validation part is the users' known history too (held out of the fit only to stop
    # or tune on): its items are not test candidates, as the training items are not.
    held = fit_split.valid if fit_split.valid is not fit_split.test else None
    metrics, counts, lists, rank_seconds, per_user = _evaluate(
        recommender, fit_split, evaluation, seed=seed, keep_lists=keep_lists, exclude=held)
    eval_seconds = time.perf_counter() - t0
    history = getattr(recommender, "history_", None)
    return RunRecord(
        model=label, params=recommender.params(), seed=seed, fit_seconds=fit_seconds,
        recommend_seconds=rank_seconds if rank_seconds is not None else eval_seconds,
        evaluate_seconds=eval_seconds, metrics=metrics, counts=counts,
        history=None if history is None else [{k: clean(v) for k, v in epoch.items()}
                                              for epoch in history],
        validation=validation, threads=n_threads, extra=dict(extra or {}),
        lists=lists if keep_lists else None, fitted=recommender, per_user=per_user)


def is_deterministic(model: str | Recommender) -> bool:
    """Whether the model's fit ignores its seed (closed forms, counts): one fit serves all seeds."""
    from movierec.models import get_class

    cls = get_class(model) if isinstance(model, str) else type(model)
    return bool(getattr(cls, "deterministic", False))


#: NaN/inf as None and numpy scalars as Python numbers, for JSON (the Results' own rule).
clean = json_ready


__all__ = ["AUTO_VALID_SIZE", "DEFAULT_THREADS", "EvaluationSpec", "RunRecord",
           "SplitSpec", "clean", "evaluate_protocols", "fit_evaluate", "is_deterministic",
           "is_time_ordered", "metric_keys", "needs_validation", "resolve_threads",
           "selected_metrics", "set_threads"]
