"""Typed experiments: the dataclasses a file parses into, and which metrics each protocol gives."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from movierec import metrics as M
from movierec.errors import MovieRecError
from movierec.pipeline import PROTOCOLS as PROTOCOLS  # re-exported by movierec.experiment
from movierec.pipeline import EvaluationSpec, metric_keys, selected_metrics

# Metric groups, read from the one catalogue (movierec.metrics).
RATING = M.names("rating")
RANKING = M.names("ranking")
BEYOND = M.names("beyond")
SAMPLED = M.names("sampled")
RATED = M.names("rated")
FILTERS = {"min_user_ratings": "int", "min_item_ratings": "int", "kcore": "int",
           "min_rating": "float", "require_genres": "bool", "min_year": "int", "max_year": "int"}
DEFAULT_QUICK = {"epochs": 1}
TOP_LEVEL = ("experiment", "dataset", "split", "splits", "evaluation", "models", "quick", "output")
_SAFE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_MISSING: Any = object()


class ExperimentError(MovieRecError, ValueError):
    """An experiment file is malformed; the message names the file, line and key."""


# --- typed experiment ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetSpec:
    """Where the ratings come from, and the filters applied before splitting."""

    release: str | None = None
    path: Path | None = None
    train: Path | None = None
    test: Path | None = None
    valid: Path | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    # IMDb's TSV files that enrich the item table (movierec.data.imdb), or None.
    imdb_dir: Path | None = None


@dataclass(frozen=True)
class ExperimentSplit:
    """One named split of an experiment file, with its evaluation.

    Its folder is under DIR when the file has several. The split itself is built by
    `movierec.pipeline.SplitSpec`.
    """

    name: str
    kind: str
    test_size: float = 0.2
    valid_size: float = 0.0
    seed: int = 42
    options: dict[str, Any] = field(default_factory=dict)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    models: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A labelled model: fixed parameters, a grid to expand and --quick overrides."""

    label: str
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)
    included: bool = False

    def combinations(self) -> list[tuple[str, dict[str, Any]]]:
        """(run name, parameters) of every grid combination (one when there is no grid)."""
        if not self.grid:
            return [(self.label, dict(self.params))]
        out = []
        for values in itertools.product(*self.grid.values()):
            combo = dict(zip(self.grid, values, strict=True))
            name = self.label + "[" + ",".join(f"{k}={_show(v)}" for k, v in combo.items()) + "]"
            out.append((name, {**self.params, **combo}))
        return out


@dataclass(frozen=True)
class RunSpec:
    """One (model, parameters, seed) run after grid expansion and --quick overrides."""

    name: str
    label: str
    model: str
    params: dict[str, Any]
    seed: int

    @property
    def key(self) -> str:
        return f"{self.name}-seed{self.seed}"


@dataclass(frozen=True)
class Experiment:
    """A parsed, validated experiment file."""

    name: str
    dataset: DatasetSpec
    splits: tuple[ExperimentSplit, ...]
    models: tuple[ModelSpec, ...]
    description: str = ""
    seeds: tuple[int, ...] = (42,)
    checkpoints: bool = False
    quick_params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_QUICK))
    lists: bool = True
    recommend: tuple[int, int] | None = None  # (user_id, k)
    source: str = "<string>"

    @property
    def multi_split(self) -> bool:
        return len(self.splits) > 1 or self.splits[0].name != "split"

    def runs(self, split: ExperimentSplit, *, quick: bool = False) -> list[RunSpec]:
        """The runs of one split: models in file order, grid combinations, then seeds."""
        from movierec.models import get_class

        out: list[RunSpec] = []
        seeds = self.seeds[:1] if quick else self.seeds
        for spec in self.models:
            if split.models is not None and spec.label not in split.models:
                continue
            if not _produces(get_class(spec.model), split.evaluation,
                             [p for _, p in spec.combinations()]):
                continue
            cls = get_class(spec.model)
            for name, params in spec.combinations():
                if quick:
                    params = {**cls.with_overrides(params, self.quick_params), **spec.quick}
                out += [RunSpec(name, spec.label, spec.model, params, s) for s in seeds]
        return out

    def skipped(self, split: ExperimentSplit) -> list[str]:
        """Included models left out of `split` because they give none of its metrics."""
        from movierec.models import get_class

        return [m.label for m in self.models if m.included
                and (split.models is None or m.label in split.models)
                and not _produces(get_class(m.model), split.evaluation,
                                  [p for _, p in m.combinations()])]


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "(" + ",".join(_show(v) for v in value) + ")"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_show(v)}" for k, v in value.items()) + "}"
    return str(value)


# --- metrics and capability ----------------------------------------------------------------------
_metric_keys = metric_keys
_selected = selected_metrics


def _rating_only(keys: set[str]) -> bool:
    return all(k in (*RATING, *RATED) for k in keys)


def _produces(cls: Any, ev: EvaluationSpec, params: Sequence[dict[str, Any]] = ({},)) -> bool:
    """Whether a model class, with any of `params`, gives at least one selected metric under `ev`.

    A model trained with a ranking loss gives no rating metric.
    """
    if any(cls.rates_with(p) for p in params):
        return True
    keys = _selected(ev)
    if keys is None:
        return bool({"full", "sampled"} & set(ev.protocols))
    return not _rating_only(keys)


#: The former name of `ExperimentSplit` (before `movierec.pipeline.SplitSpec` existed).
SplitSpec = ExperimentSplit
