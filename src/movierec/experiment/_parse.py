"""Reading an experiment file: tomllib, typed checks, line numbers, grids, model validation."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from movierec.errors import MovieRecError
from movierec.experiment._spec import (
    _SAFE,
    BEYOND,
    DEFAULT_QUICK,
    FILTERS,
    PROTOCOLS,
    RANKING,
    RATED,
    RATING,
    SAMPLED,
    TOP_LEVEL,
    DatasetSpec,
    EvaluationSpec,
    Experiment,
    ExperimentError,
    ExperimentSplit,
    ModelSpec,
    _metric_keys,
    _produces,
    _show,
)

_MISSING: Any = object()


# --- reading the file ----------------------------------------------------------------------------
class _Lines:
    """Line numbers of TOML keys, found by scanning the source (tomllib gives none)."""

    _HEADER = re.compile(r"^\s*\[\[?([^\[\]]+)\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)"""
                      r"""(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*=""")

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            if m := self._HEADER.match(line):
                table = self._parts(m.group(1))
                self._add(table, number)
            elif m := self._KEY.match(line):
                self._add(table + self._parts(m.group(1)), number)

    def _add(self, path: tuple[str, ...], number: int) -> None:
        # [a.b.c] also defines a and a.b (their first mention is where an error about them points)
        for n in range(1, len(path) + 1):
            self.lines.setdefault(path[:n], number)

    @staticmethod
    def _parts(dotted: str) -> tuple[str, ...]:
        return tuple(p.strip().strip("\"'") for p in re.findall(r"""(?:"[^"]*"|'[^']*'|[^.]+)""",
                                                                 dotted))

    def find(self, path: Sequence[str]) -> int | None:
        for n in range(len(path), 0, -1):
            if tuple(path[:n]) in self.lines:
                return self.lines[tuple(path[:n])]
        return None


@dataclass
class _Ctx:
    source: str
    lines: _Lines
    base: Path

    def error(self, path: Sequence[str], message: str) -> ExperimentError:
        line = self.lines.find(path)
        where = f"{self.source}:{line}" if line else self.source
        key = ".".join(path)
        return ExperimentError(f"{where}: {key}: {message}" if key else f"{where}: {message}")


_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "table": (lambda v: isinstance(v, dict), "a table"),
    "ints": (lambda v: isinstance(v, list) and bool(v) and all(
        isinstance(x, int) and not isinstance(x, bool) for x in v),
        "a non-empty array of integers"),
    "strs": (lambda v: isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v),
             "a non-empty array of strings"),
}


def _type_name(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)


class _Table:
    """A TOML table with its key path: typed gets, and a check that no unknown key is left."""

    def __init__(self, data: dict[str, Any], path: tuple[str, ...], ctx: _Ctx) -> None:
        self.data, self.path, self.ctx, self.used = data, path, ctx, set[str]()

    def get(self, key: str, kind: str, default: Any = _MISSING) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is _MISSING:
                raise self.ctx.error(self.path + (key,), f"missing; expected {_TYPES[kind][1]}")
            return default
        value = self.data[key]
        ok, expected = _TYPES[kind]
        if not ok(value):
            raise self.error(key, f"expected {expected}, got {_type_name(value)} {value!r}")
        return float(value) if kind == "float" else value

    def sub(self, key: str, *, required: bool = False) -> _Table:
        """The sub-table `key` (an empty one when it is absent and not required)."""
        data = self.get(key, "table", _MISSING if required else {})
        return _Table(data, self.path + (key,), self.ctx)

    def error(self, key: str, message: str) -> ExperimentError:
        return self.ctx.error(self.path + (key,), message)

    def finish(self) -> None:
        """Raise on the first key that no `get` asked for (a typo, or a key of another table)."""
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            allowed = ", ".join(sorted(self.used))
            where = f"[{'.'.join(self.path)}]" if self.path else "the top level"
            raise self.error(unknown[0], f"unknown key in {where}; expected one of: {allowed}")


def load_experiment(path: str | Path, *, check_params: bool = True) -> Experiment:
    """Parse and validate an experiment file (see the module docstring for the format).

    Args:
        path: the .toml file; relative data paths in it are read from its folder.
        check_params: build every model once with its parameters, so that an unknown or invalid
            parameter is reported with its line (default True).

    Raises:
        ExperimentError: the file is missing or malformed; the message names the key and line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExperimentError(f"{path}: cannot read the experiment file ({exc.strerror})") from None
    return parse_experiment(text, source=str(path), base=path.parent, name=path.stem,
                            check_params=check_params)


def parse_experiment(text: str, *, source: str = "<string>", base: str | Path = ".",
                     name: str = "experiment", check_params: bool = True) -> Experiment:
    """Parse and validate experiment TOML text; `load_experiment` for files.

    Args:
        text: the TOML source.
        source: what error messages call the file.
        base: folder that relative data paths are resolved against.
        name: default experiment name (the file's stem).
        check_params: build every model once to validate its parameters (default True).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"{source}: not valid TOML: {exc}") from None
    ctx = _Ctx(source, _Lines(text), Path(base))
    top = _Table(data, (), ctx)
    top.used.update(TOP_LEVEL)
    top.finish()  # an unknown table ([modles]) first: it would hide the others' errors
    head = top.sub("experiment")
    exp_name = head.get("name", "str", name)
    if not _SAFE.match(exp_name):
        raise head.error("name", f"use letters, digits and _.+- only, got {exp_name!r}")
    seeds = tuple(head.get("seeds", "ints", [42]))
    if len(set(seeds)) != len(seeds):
        raise head.error("seeds", f"repeated seed in {list(seeds)}")
    description = head.get("description", "str", "")
    checkpoints = head.get("checkpoints", "bool", False)
    head.finish()
    if "dataset" not in data:
        raise ctx.error(("dataset",), "missing: every experiment needs a [dataset] table")
    dataset = _dataset(top.sub("dataset"), ctx)
    evaluation = _evaluation(top.sub("evaluation"), EvaluationSpec())
    models = _models(top.sub("models"), ctx)
    splits = _splits(top, dataset, evaluation, ctx)
    quick = top.sub("quick")
    quick_params = {**DEFAULT_QUICK, **_params(quick.sub("params"))}
    quick.finish()
    lists, recommend = _output(top.sub("output"))
    exp = Experiment(name=exp_name, dataset=dataset, splits=splits, models=models,
                     description=description, seeds=seeds, checkpoints=checkpoints,
                     quick_params=quick_params, lists=lists, recommend=recommend, source=source)
    _check_models(exp, ctx, check_params)
    return exp


def _path(table: _Table, key: str) -> Path | None:
    value = table.get(key, "str", None)
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else table.ctx.base / p


def _dataset(t: _Table, ctx: _Ctx) -> DatasetSpec:
    from movierec.data.releases import RELEASES

    release = t.get("release", "str", None)
    if release is not None and release not in RELEASES:
        raise t.error("release", f"unknown release {release!r}; known: {', '.join(RELEASES)} "
                      "(use path = \"...\" for a folder or file)")
    spec = DatasetSpec(release=release, path=_path(t, "path"), train=_path(t, "train"),
                       test=_path(t, "test"), valid=_path(t, "valid"),
                       imdb_dir=_path(t, "imdb_dir"))
    if spec.release and spec.path:
        raise t.error("path", "give release or path, not both")
    if (spec.train is None) != (spec.test is None):
        raise t.error("train" if spec.train is None else "test", "train and test go together")
    if spec.valid is not None and spec.train is None:
        raise t.error("valid", "valid needs train and test files")
    if not (spec.release or spec.path or spec.train):
        raise ctx.error(("dataset",), "name the data: release = \"ml-100k\", path = \"...\", "
                        "or train = \"...\" with test = \"...\"")
    filters = t.sub("filters")
    out: dict[str, Any] = {}
    for key, kind in FILTERS.items():
        value = filters.get(key, kind, None)
        if value is not None:
            if kind == "int" and key not in ("min_year", "max_year") and value < 0:
                raise filters.error(key, f"must be >= 0, got {value}")
            out[key] = value
    filters.finish()
    if out and spec.train is not None:
        raise ctx.error(("dataset", "filters"), "filters apply to a release or path, not to "
                        "train/test files")
    t.finish()
    return replace(spec, filters=out)


def _evaluation(t: _Table, base: EvaluationSpec) -> EvaluationSpec:
    """[evaluation] (or a split's override of it): keys left out keep `base`'s values."""
    if "protocol" in t.data and "protocols" in t.data:
        raise t.error("protocols", "give protocol or protocols, not both")
    protocols = ([t.get("protocol", "str")] if "protocol" in t.data
                 else t.get("protocols", "strs", list(base.protocols)))
    for p in protocols:
        if p not in PROTOCOLS:
            raise t.error("protocol" if "protocol" in t.data else "protocols",
                          f"unknown protocol {p!r}; expected one of {list(PROTOCOLS)}")
    k = t.get("k", "ints", list(base.k))
    if any(v <= 0 for v in k):
        raise t.error("k", f"list lengths must be positive, got {k}")
    relevance = t.get("relevance", "float", base.relevance)
    if relevance < 0:
        raise t.error("relevance", f"must be >= 0, got {relevance}")
    threshold_default = relevance if "relevance" in t.data and relevance > 0 \
        else base.rated_threshold
    threshold = t.get("rated_threshold", "float", threshold_default)
    n_negatives = t.get("n_negatives", "int", base.n_negatives)
    if n_negatives < 1:
        raise t.error("n_negatives", f"must be >= 1, got {n_negatives}")
    metrics = t.get("metrics", "strs", None)
    spec = EvaluationSpec(tuple(dict.fromkeys(protocols)), tuple(sorted(set(k))), relevance,
                          threshold, n_negatives,
                          tuple(metrics) if metrics is not None else base.metrics)
    for m in spec.metrics or ():
        if not _metric_keys(m, spec.protocols):
            known = [*RATING, *RANKING, *BEYOND, *SAMPLED, *RATED]
            if m not in known:
                raise t.error("metrics", f"unknown metric {m!r}; known: {', '.join(known)}")
            raise t.error("metrics", f"no protocol of {list(spec.protocols)} gives {m!r}")
    t.finish()
    return spec


def _splits(top: _Table, dataset: DatasetSpec, evaluation: EvaluationSpec,
            ctx: _Ctx) -> tuple[ExperimentSplit, ...]:
    if "split" in top.data and "splits" in top.data:
        raise top.error("splits", "give [split] or [splits.NAME] tables, not both")
    if dataset.train is not None:
        if "split" in top.data or "splits" in top.data:
            raise top.error("split" if "split" in top.data else "splits",
                            "the split comes from the dataset's train/test files; remove it")
        return (ExperimentSplit("split", "files", evaluation=evaluation),)
    if "splits" in top.data:
        tables = top.sub("splits", required=True)
        assert tables is not None
        out: list[ExperimentSplit] = []
        for name in tables.data:
            if not _SAFE.match(name):
                raise tables.error(name, "split names are folder names: letters, digits, _.+-")
            out.extend(_fold_splits(_split(tables.sub(name, required=True), name, evaluation,
                                           dataset.filters, multi=True), f"{name}-"))
        if not out:
            raise top.error("splits", "no split table in [splits]")
        return tuple(out)
    if "split" not in top.data:
        raise ctx.error(("split",), "missing: a [split] table (or [splits.NAME] tables)")
    return _fold_splits(_split(top.sub("split", required=True), "split", evaluation,
                               dataset.filters, multi=False), "")


def _fold_splits(spec: ExperimentSplit, prefix: str) -> tuple[ExperimentSplit, ...]:
    """A split with `folds = K`: K splits named <prefix>fold-<i> (one folder each), else itself."""
    folds = spec.options.get("folds")
    if folds is None:
        return (spec,)
    return tuple(replace(spec, name=f"{prefix}fold-{i}", options={**spec.options, "fold": i})
                 for i in range(1, folds + 1))


def _split(t: _Table, name: str, evaluation: EvaluationSpec, filters: dict[str, Any], *,
           multi: bool) -> ExperimentSplit:
    from movierec.split import PREDEFINED_FOLDS, SPLIT_KINDS

    kind = t.get("kind", "str")
    if kind not in SPLIT_KINDS:
        raise t.error("kind", f"unknown split kind {kind!r}; expected one of {SPLIT_KINDS}")
    test_size = t.get("test_size", "float", 0.2)
    valid_size = t.get("valid_size", "float", 0.0)
    if not 0 < test_size < 1:
        raise t.error("test_size", f"must be in (0, 1), got {test_size}")
    if not 0 <= valid_size < 1:
        raise t.error("valid_size", f"must be in [0, 1), got {valid_size}")
    options: dict[str, Any] = {}
    extras = {"user-time": ("test_n", "int"), "user-random": ("min_train", "int")}
    if kind in extras:
        key, typ = extras[kind]
        if (value := t.get(key, typ, None)) is not None:
            options[key] = value
    if (folds := t.get("folds", "int", None)) is not None:
        from movierec.split import FOLD_KINDS

        if kind not in FOLD_KINDS:
            raise t.error("folds", f"split kind {kind!r} has no K-fold version; use one of "
                          f"{', '.join(FOLD_KINDS)}")
        if folds < 2:
            raise t.error("folds", f"must be an integer >= 2, got {folds}")
        options["folds"] = folds
    if kind == "time" and "cut" in t.data:
        t.used.add("cut")
        cut = t.data["cut"]
        if not isinstance(cut, int | str) or isinstance(cut, bool):
            raise t.error("cut", f"expected unix seconds or an ISO date string, got {cut!r}")
        options["cut"] = cut
    if kind in PREDEFINED_FOLDS and filters:
        raise t.error("kind", f"the predefined fold {kind!r} needs the whole ML-100K: remove "
                      "[dataset.filters] or use another split kind")
    spec = ExperimentSplit(name, kind, test_size, valid_size, t.get("seed", "int", 42), options)
    if multi:
        models = t.get("models", "strs", None)
        ev = _evaluation(t.sub("evaluation"), evaluation)
        spec = replace(spec, models=tuple(models) if models else None, evaluation=ev)
    else:
        spec = replace(spec, evaluation=evaluation)
    t.finish()
    return spec


def _params(t: _Table) -> dict[str, Any]:
    from movierec.models import param_key

    t.used.update(t.data)
    return {param_key(k): v for k, v in t.data.items()}


def _models(t: _Table, ctx: _Ctx) -> tuple[ModelSpec, ...]:
    from movierec.models import CLASSIC, available, installed, param_key

    out: list[ModelSpec] = []
    include = t.data.get("include", [])
    t.used.add("include")
    if include == "all":
        names = installed()
    elif include == "classic":
        names = list(CLASSIC)
    elif isinstance(include, list) and all(isinstance(x, str) for x in include):
        names = list(include)
    else:
        raise t.error("include", f"expected \"all\", \"classic\" or an array of model names, "
                      f"got {include!r}")
    for name in names:
        if name not in available():
            raise t.error("include", f"unknown model {name!r}; known: {', '.join(available())}")
    labels = [k for k in t.data if k != "include"]
    for name in names:
        if name not in labels:
            out.append(ModelSpec(name, name, included=True))
    for label in labels:
        sub = t.sub(label, required=True)
        assert sub is not None
        if not _SAFE.match(label):
            raise t.error(label, "model labels name files: letters, digits and _.+- only")
        model = sub.get("model", "str", label)
        if model not in available():
            raise sub.error("model" if "model" in sub.data else "",
                            f"unknown model {model!r}; known: {', '.join(available())} (name it "
                            "with model = \"...\" when the label is not a registry name)")
        grid = sub.sub("grid")
        quick = sub.sub("quick")
        combos = _grid(grid)
        params = {param_key(k): v for k, v in sub.data.items()
                  if k not in ("model", "grid", "quick")}
        sub.used.update(sub.data)
        for key in combos:
            if key in params:
                raise grid.error(key, "is both a fixed parameter and a grid axis")
        quick_params = _params(quick)
        for key in quick_params:
            if key in combos:
                raise quick.error(key, "--quick cannot override a grid axis")
        out.append(ModelSpec(label, model, params, combos, quick_params,
                             included=label in names))
    t.finish()
    if not out:
        raise ctx.error(("models",), "no models: add [models.NAME] tables or include = [...]")
    return tuple(out)


def _grid(t: _Table) -> dict[str, tuple[Any, ...]]:
    from movierec.models import param_key

    out: dict[str, tuple[Any, ...]] = {}
    for key, values in t.data.items():
        t.used.add(key)
        if not isinstance(values, list) or not values:
            raise t.error(key, f"a grid axis is a non-empty array of values, got {values!r} "
                          "(fixed values go in the model table itself)")
        shown = [_show(v) for v in values]
        if len(set(shown)) != len(shown):
            raise t.error(key, f"repeated value in grid {values!r}")
        if any("/" in s or "\\" in s for s in shown):
            raise t.error(key, "grid values name files: no / or \\")
        out[param_key(key)] = tuple(values)
    return out


def _output(t: _Table) -> tuple[bool, tuple[int, int] | None]:
    lists = t.get("lists", "bool", True)
    recommend = None
    if "recommend" in t.data:
        rec = t.sub("recommend")
        k = rec.get("k", "int", 10)
        if k < 1:
            raise rec.error("k", f"must be >= 1, got {k}")
        recommend = (rec.get("user", "int"), k)
        rec.finish()
    t.finish()
    return lists, recommend


def _check_models(exp: Experiment, ctx: _Ctx, check_params: bool) -> None:
    from movierec.models import get, get_class

    for spec in exp.models:
        try:
            cls = get_class(spec.model)
        except MovieRecError as exc:
            raise ctx.error(("models", spec.label), str(exc)) from None
        for split in exp.splits:
            if split.models is not None and spec.label not in split.models:
                continue
            if not spec.included and not _produces(cls, split.evaluation,
                                                   [p for _, p in spec.combinations()]):
                where = f" in split {split.name!r}" if exp.multi_split else ""
                raise ctx.error(("models", spec.label), f"{spec.model} does not predict ratings,"
                                f" and only rating metrics are asked for{where}")
        if not check_params:
            continue
        names = cls.param_names()
        quick = {k: v for k, v in exp.quick_params.items() if k in names}
        for _, params in spec.combinations():
            for values in (params, {**params, **quick, **spec.quick}):
                try:
                    get(spec.model, **values)
                except (ValueError, TypeError) as exc:
                    key = next((k for k in values if str(exc).startswith(k)
                                or repr(k) in str(exc)), None)
                    section = ("grid",) if key in spec.grid else ("quick",) if (
                        key in spec.quick) else ()
                    path = ("models", spec.label, *section, *([key] if key else []))
                    raise ctx.error(path, str(exc)) from None
    for split in exp.splits:
        for label in split.models or ():
            if label not in {m.label for m in exp.models}:
                raise ctx.error(("splits", split.name, "models"), f"no model labelled {label!r}")
    all_names = {n for m in exp.models for n in get_class(m.model).param_names()}
    for key in exp.quick_params:
        if check_params and key not in all_names and key not in DEFAULT_QUICK:
            raise ctx.error(("quick", "params", key), "no model of this experiment takes it")


