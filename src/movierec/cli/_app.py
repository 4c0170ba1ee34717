"""The Typer app, error handling, option parsing and table printing shared by commands."""

from __future__ import annotations

import ast
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
    """Names from --models: a comma list, "classic", or "all".

    "all" is every model whose extra is installed; the ones left out are named on stderr.
    """
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
    from movierec import metrics as M

    metrics = [c for c in table.columns if not c.endswith("_std")]
    accuracy = [c for c in metrics if c.split("@")[0] in M.CATALOGUE
                and M.CATALOGUE[c.split("@")[0]].family != "beyond"]
    rest = [c for c in metrics if c not in accuracy]
    for cols, part in ((accuracy, "accuracy"), (rest, "beyond accuracy and seconds")):
        out = Table(title=f"{title} — {part}", title_justify="left")
        out.add_column("model")
        for c in cols:
            out.add_column(_short(c), justify="right")
        for model, row in table.iterrows():
            out.add_row(str(model), *(_cell(row, c) for c in cols))
        console.print(out)


_SECONDS = {"fit_seconds": "fit s", "recommend_seconds": "rec s"}


def _short(col: str) -> str:
    from movierec import metrics as M

    return _SECONDS.get(col) or M.short_label(col)


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
ValidSizeOpt = Annotated[float | None, typer.Option(
    help="Validation fraction carved from train, for every model (per user; the latest ratings "
    "on time-ordered splits; from the --train file when no --valid file is given). Default: "
    "none, except that models which early-stop (the neural ones) carve 0.1 of the training "
    "part for themselves, said in the run record; 0 turns that off.")]
ThreadsOpt = Annotated[int | None, typer.Option(
    help="PyTorch threads for training and scoring (default 1, or $MOVIEREC_THREADS: the "
    "neural models' small batches run fastest on one thread; see docs). Results repeat "
    "exactly for the same thread count.", min=1)]
TrainFileOpt = Annotated[Path | None, typer.Option(
    help="Training ratings file (CSV/TSV/parquet, header optional); use with --test.")]
TestFileOpt = Annotated[Path | None, typer.Option(help="Test ratings file.")]
ValidFileOpt = Annotated[Path | None, typer.Option(help="Validation ratings file.")]
SepOpt = Annotated[str | None, typer.Option(
    help="Field separator of the --train/--test/--valid files: tab (or \\t), ',', ';', '|', "
    "'::' or whitespace (default: detected from the first lines).")]
KOpt = Annotated[str, typer.Option("--k", help="List lengths, comma-separated.")]
RelevanceOpt = Annotated[float, typer.Option(
    help="Test ratings >= this are relevant (0 = every test rating).")]
MinUserOpt = Annotated[int, typer.Option(help="Drop users with fewer ratings.")]
MinItemOpt = Annotated[int, typer.Option(help="Drop items with fewer ratings.")]
KcoreOpt = Annotated[int, typer.Option(help="Iterative k-core on users and items (0 = off).")]
DataDirOpt = Annotated[Path | None, typer.Option(
    help="Folder of releases (default: $MOVIEREC_DATA_DIR, then the cache, then download).")]
ImdbDirOpt = Annotated[Path | None, typer.Option(
    help="Folder of IMDb's TSV files that you downloaded (title.basics.tsv.gz, ...; never "
         "downloaded by movierec): the item table gains directors, writers, actors, runtime "
         "and IMDb ratings (see `movierec data describe NAME --imdb-dir DIR`).")]
ProgressOpt = Annotated[bool, typer.Option(help="Show progress bars (on terminals).")]


_SEP_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|",
              "space": "whitespace", "spaces": "whitespace", "whitespace": "whitespace"}


def parse_sep(text: str | None) -> str | None:
    r"""--sep as `load_ratings_file` takes it: names (tab, whitespace) and "\t" unescaped."""
    if text is None:
        return None
    sep = _SEP_NAMES.get(text.lower(), text)
    if not sep or any(c in sep for c in "\r\n\""):
        raise ValueError(f"--sep: unusable separator {text!r}; use tab, ',', ';', '|', '::' "
                         "or whitespace")
    return sep


def build_split(*, dataset: str | None, split: str, test_size: float, valid_size: float | None,
                train: Path | None, test: Path | None, valid: Path | None, seed: int,
                min_user_ratings: int, min_item_ratings: int, kcore: int,
                data_dir: Path | None, sep: str | None = None,
                imdb_dir: Path | None = None) -> Any:
    """The Split that the options describe (files, or a release split by `split`).

    `valid_size` None builds no validation part, as 0 does (whether a run carves one by itself is
    the caller's choice); `sep` is --sep, the separator of the files (None: detected).
    """
    from movierec.pipeline import SplitSpec

    filters = {key: value for key, value in (("min_user_ratings", min_user_ratings),
               ("min_item_ratings", min_item_ratings), ("kcore", kcore)) if value}
    spec = SplitSpec(kind=split, dataset=dataset, test_size=test_size,
                     valid_size=valid_size or 0.0, seed=seed, filters=filters, train=train,
                     test=test, valid=valid,
                     read_options={"sep": parse_sep(sep)} if sep is not None else {},
                     imdb_dir=imdb_dir)
    return spec.build(data_dir=data_dir)


def announce_split(the_split: Any, seed: int) -> None:
    """One line on stderr: sizes of the split and what is unseen in train."""
    rep = the_split.report
    err_console.print(
        f"[bold]{the_split.train.name}[/bold] split={the_split.name} seed={seed}: "
        f"train {rep['train_ratings']:,} / test {rep['test_ratings']:,} ratings"
        + (f" / valid {rep['valid_ratings']:,}" if "valid_ratings" in rep else "")
        + f"; test users unseen in train: {rep['test_unseen_users']}, items: "
        f"{rep['test_unseen_items']}", highlight=False)
