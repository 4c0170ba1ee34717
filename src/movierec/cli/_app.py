"""The Typer app, error handling, option parsing and table printing shared by commands."""

from __future__ import annotations

import ast
import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from movierec import __version__
from movierec.errors import MovieRecError

app = typer.Typer(
    help="movierec: load MovieLens data, split it without leakage, train and compare "
    "recommenders under one evaluation protocol.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="MovieLens releases: list them, describe one, write a synthetic one.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

# Tables are wide: when printing to a file or pipe, don't fold them at 80 columns.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)
_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])


def _friendly_errors(func: F) -> F:
    """Print `error: <message>` and exit 2 on expected errors; a traceback only with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (MovieRecError, ValueError, KeyError, FileNotFoundError, OSError) as exc:
            if _state["debug"]:
                raise
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            # soft_wrap: one line however narrow the terminal, so scripts can grep it.
            err_console.print(f"[red]error:[/red] {escape(str(msg))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"movierec {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and debug logs.")]
    = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


# --- option parsing helpers --------------------------------------------------------------------
def parse_int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{option}: expected comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"{option}: expected positive integers, got {text!r}")
    return values


def parse_params(items: list[str], models: list[str]) -> dict[str, dict[str, Any]]:
    """`model.key=value` strings -> {model: {keyword: value}} (`lambda` -> `lambda_`)."""
    from movierec.models import param_key

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        lhs, eq, raw = item.partition("=")
        model, dot, key = lhs.partition(".")
        if not eq or not dot or not model or not key:
            raise ValueError(f"--param {item!r}: expected MODEL.KEY=VALUE, e.g. ease.lambda=500")
        if model not in models:
            raise ValueError(f"--param {item!r}: model {model!r} is not among --models {models}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw  # a bare word such as cosine
        out.setdefault(model, {})[param_key(key)] = value
    return out


def _model_names(text: str) -> list[str]:
    """Names from --models: a comma list, "classic", or "all" (every model whose extra is
    installed; the ones left out are named on stderr)."""
    from movierec.models import CLASSIC, available, installed

    if text.strip() == "classic":
        return list(CLASSIC)
    if text.strip() == "all":
        names = installed()
        missing = [m for m in available() if m not in names]
        if missing:
            err_console.print(f"skipping {', '.join(missing)}: their optional dependencies are "
                              "not installed (see README, Install)", highlight=False)
        return names
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in available()]
    if unknown:
        raise ValueError(f"--models: unknown model(s) {unknown}; known: {', '.join(available())}")
    return names


def print_table(table: Any, title: str) -> None:
    """Print a models x metrics frame as two tables: accuracy, then beyond accuracy and time.

    Means over seeds, with ±std where several seeds ran; '-' where a model cannot compute a metric.
    """
    metrics = [c for c in table.columns if not c.endswith("_std")]
    accuracy = [c for c in metrics if c in ("rmse", "mae", "mse", "rmse_scaled")
                or c.endswith("_rated") or c.split("@")[0].removeprefix("sampled_") in
                ("precision", "recall", "f1", "ndcg", "map", "mrr", "hit")]
    rest = [c for c in metrics if c not in accuracy]
    for cols, part in ((accuracy, "accuracy"), (rest, "beyond accuracy and seconds")):
        out = Table(title=f"{title} — {part}", title_justify="left")
        out.add_column("model")
        for c in cols:
            out.add_column(_short(c), justify="right")
        for model, row in table.iterrows():
            out.add_row(str(model), *(_cell(row, c) for c in cols))
        console.print(out)


_SHORT = {"precision": "P", "recall": "R", "f1": "F1", "ndcg": "NDCG", "map": "MAP",
          "mrr": "MRR", "hit": "HR", "coverage": "cov", "diversity": "div", "novelty": "nov",
          "arp": "ARP", "personalization": "pers", "fit_seconds": "fit s",
          "recommend_seconds": "rec s", "rmse": "RMSE", "mae": "MAE", "mse": "MSE",
          "rmse_scaled": "RMSE[0,1]", "precision_rated": "P_rated", "recall_rated": "R_rated",
          "f1_rated": "F1_rated", "sampled_hit": "sHR", "sampled_ndcg": "sNDCG"}


def _short(col: str) -> str:
    name, _, k = col.partition("@")
    return _SHORT.get(name, name) + (f"@{k}" if k else "")


def _cell(row: Any, col: str) -> str:
    v = row[col]
    if v != v:  # NaN: the model cannot compute it
        return "-"
    digits = 2 if col.endswith("_seconds") or col.startswith(("arp", "novelty")) else 4
    text = f"{v:.{digits}f}"
    std = row.get(f"{col}_std")
    if std is not None and std == std:
        text += f"±{std:.{digits}f}"
    return text




# --- options shared by `benchmark` and `train` -------------------------------------------------
DatasetOpt = Annotated[str | None, typer.Option(
    help="Release name (ml-100k, ml-latest-small, ...) or folder. With --train/--test it only "
    "supplies the item and user tables.")]
SplitOpt = Annotated[str, typer.Option(
    help="Split kind: random, user-random, user-time, time, loo, u1..u5, ua, ub (ML-100K's "
    "predefined folds).")]
TestSizeOpt = Annotated[float, typer.Option(help="Test fraction for ratio splits.")]
ValidSizeOpt = Annotated[float, typer.Option(
    help="Validation fraction carved from train (0 = none); neural models early-stop on it.")]
TrainFileOpt = Annotated[Path | None, typer.Option(
    help="Training ratings file (CSV/TSV/parquet, header optional); use with --test.")]
TestFileOpt = Annotated[Path | None, typer.Option(help="Test ratings file.")]
ValidFileOpt = Annotated[Path | None, typer.Option(help="Validation ratings file.")]
KOpt = Annotated[str, typer.Option("--k", help="List lengths, comma-separated.")]
RelevanceOpt = Annotated[float, typer.Option(
    help="Test ratings >= this are relevant (0 = every test rating).")]
MinUserOpt = Annotated[int, typer.Option(help="Drop users with fewer ratings.")]
MinItemOpt = Annotated[int, typer.Option(help="Drop items with fewer ratings.")]
KcoreOpt = Annotated[int, typer.Option(help="Iterative k-core on users and items (0 = off).")]
DataDirOpt = Annotated[Path | None, typer.Option(
    help="Folder of releases (default: $MOVIEREC_DATA_DIR, then the cache, then download).")]
ProgressOpt = Annotated[bool, typer.Option(help="Show progress bars (on terminals).")]


def build_split(*, dataset: str | None, split: str, test_size: float, valid_size: float,
                train: Path | None, test: Path | None, valid: Path | None, seed: int,
                min_user_ratings: int, min_item_ratings: int, kcore: int,
                data_dir: Path | None) -> Any:
    """The Split that the options describe (files, or a release split by `split`)."""
    from movierec.data import load
    from movierec.split import PREDEFINED_FOLDS, files_split, make_split

    if (train is None) != (test is None):
        raise ValueError("--train and --test go together")
    if train is not None and test is not None:
        base = load(dataset, data_dir=data_dir) if dataset else None
        return files_split(train, test, valid, base=base)
    if dataset is None:
        raise ValueError("give --dataset NAME, or --train FILE --test FILE")
    ds = load(dataset, data_dir=data_dir)
    filters = {key: value for key, value in (("min_user_ratings", min_user_ratings),
               ("min_item_ratings", min_item_ratings), ("kcore", kcore)) if value}
    if filters:
        ds = ds.filter(**filters)
    extra: dict[str, Any] = {}
    if split in PREDEFINED_FOLDS:
        extra["data_dir"] = _release_folder(dataset, data_dir)
    made = make_split(ds, split, test_size=test_size, valid_size=valid_size, rng=seed, **extra)
    # Record the filters with the split, so that results.json says how to rebuild it.
    return dataclasses.replace(made, params={**made.params, "filters": filters}) if filters \
        else made


def _release_folder(dataset: str, data_dir: Path | None) -> Path:
    from movierec.data.movielens import resolve
    from movierec.data.releases import get_release

    if Path(dataset).is_dir():
        return Path(dataset)
    return resolve(get_release(dataset), data_dir=data_dir)


def announce_split(the_split: Any, seed: int) -> None:
    """One line on stderr: sizes of the split and what is unseen in train."""
    rep = the_split.report
    err_console.print(
        f"[bold]{the_split.train.name}[/bold] split={the_split.name} seed={seed}: "
        f"train {rep['train_ratings']:,} / test {rep['test_ratings']:,} ratings"
        + (f" / valid {rep['valid_ratings']:,}" if "valid_ratings" in rep else "")
        + f"; test users unseen in train: {rep['test_unseen_users']}, items: "
        f"{rep['test_unseen_items']}", highlight=False)
