"""The `movierec` command: parses options, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import ast
import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
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
data_app = typer.Typer(help="MovieLens releases: list them, describe one.", no_args_is_help=True)
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
            err_console.print(f"[red]error:[/red] {msg}", highlight=False, markup=True)
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
    from movierec.models import CLASSIC, available

    if text.strip() == "all":
        return list(CLASSIC)
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in available()]
    if unknown:
        raise ValueError(f"--models: unknown model(s) {unknown}; known: {', '.join(available())}")
    return names


# --- data --------------------------------------------------------------------------------------
@data_app.command("list")
@_friendly_errors
def data_list(
    data_dir: Annotated[Path | None, typer.Option(help="Folder of releases (default: "
                                                  "$MOVIEREC_DATA_DIR).")] = None,
) -> None:
    """List the supported MovieLens releases and where a local copy was found."""
    from movierec.data.movielens import resolve
    from movierec.data.releases import RELEASES
    from movierec.errors import DataError

    table = Table("name", "local copy", "url", "about")
    for name, rel in RELEASES.items():
        try:
            where = str(resolve(rel, data_dir=data_dir, download=False))
        except DataError:
            where = "- (downloaded on first use)"
        table.add_row(name, where, rel.url(), rel.description)
    console.print(table)


@data_app.command("describe")
@_friendly_errors
def data_describe(
    name: Annotated[str, typer.Argument(help="Release name (ml-100k, ...) or a folder path.")],
    data_dir: Annotated[Path | None, typer.Option(help="Folder of releases (default: "
                                                  "$MOVIEREC_DATA_DIR).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
    = False,
) -> None:
    """Counts, sparsity, rating histogram, time range and degree statistics of a release."""
    from movierec.data import load
    from movierec.data.describe import describe

    stats = describe(load(name, data_dir=data_dir))
    if as_json:
        console.print_json(json.dumps(stats, default=str))
        return
    summary = Table(title=str(stats.get("name", name)), show_header=False)
    for key, value in stats.items():
        if not isinstance(value, dict) and not _is_records(value):
            summary.add_row(key, _fmt(value))
    console.print(summary)
    for key, value in stats.items():
        if _is_records(value):
            table = Table(*value[0].keys(), title=key)
            for rec in value:
                table.add_row(*(_fmt(v) for v in rec.values()))
            console.print(table)
    for section, values in stats.items():
        if isinstance(values, dict):
            table = Table(title=section, show_header=False)
            for k, v in values.items():
                table.add_row(str(k), _fmt(v))
            console.print(table)


def _is_records(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict | list):
        return json.dumps(v, default=str)
    return str(v)


# --- benchmark ---------------------------------------------------------------------------------
@app.command()
@_friendly_errors
def benchmark(
    dataset: Annotated[str | None, typer.Option(help="Release name (ml-100k, ml-latest-small, "
                                                "...) or folder. With --train/--test it only "
                                                "supplies the item and user tables.")] = None,
    split: Annotated[str, typer.Option(help="Split kind: random, user-random, user-time, time, "
                                       "loo, u1..u5, ua, ub (ML-100K predefined).")]
    = "user-random",
    test_size: Annotated[float, typer.Option(help="Test fraction for ratio splits.")] = 0.2,
    valid_size: Annotated[float, typer.Option(help="Validation fraction carved from train "
                                              "(0 = none).")] = 0.0,
    train: Annotated[Path | None, typer.Option(help="Training ratings file (CSV/TSV/parquet); "
                                               "use with --test.")] = None,
    test: Annotated[Path | None, typer.Option(help="Test ratings file.")] = None,
    valid: Annotated[Path | None, typer.Option(help="Validation ratings file.")] = None,
    models: Annotated[str, typer.Option(help="Comma-separated registry names, or 'all'.")]
    = "all",
    k: Annotated[str, typer.Option("--k", help="List lengths, comma-separated.")] = "5,10,20",
    relevance: Annotated[float, typer.Option(help="Test ratings >= this are relevant "
                                             "(0 = every test rating).")] = 4.0,
    seed: Annotated[int, typer.Option(help="Seed of the split and the models.")] = 42,
    seeds: Annotated[str | None, typer.Option(help="Several model seeds, e.g. 1,2,3 "
                                              "(mean and std are reported); the split uses "
                                              "--seed.")] = None,
    param: Annotated[list[str] | None, typer.Option(help="MODEL.KEY=VALUE hyper-parameter, "
                                                    "repeatable, e.g. ease.lambda=500.")] = None,
    min_user_ratings: Annotated[int, typer.Option(help="Drop users with fewer ratings.")] = 0,
    min_item_ratings: Annotated[int, typer.Option(help="Drop items with fewer ratings.")] = 0,
    kcore: Annotated[int, typer.Option(help="Iterative k-core on users and items (0 = off).")]
    = 0,
    data_dir: Annotated[Path | None, typer.Option(help="Folder of releases (default: "
                                                  "$MOVIEREC_DATA_DIR, then the cache).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write results.json, results.csv and "
                                             "lists/*.parquet here.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train every model on the same split and print one comparison table."""
    from movierec import benchmark as bench
    from movierec.data import load
    from movierec.split import files_split, make_split

    ks = parse_int_list(k, "--k")
    names = _model_names(models)
    params = parse_params(param or [], names)
    seed_list = parse_int_list(seeds, "--seeds") if seeds else [seed]
    if (train is None) != (test is None):
        raise ValueError("--train and --test go together")
    if train is not None and test is not None:
        base = load(dataset, data_dir=data_dir) if dataset else None
        the_split = files_split(train, test, valid, base=base)
    elif dataset is not None:
        ds = load(dataset, data_dir=data_dir)
        if min_user_ratings or min_item_ratings or kcore:
            ds = ds.filter(min_user_ratings=min_user_ratings, min_item_ratings=min_item_ratings,
                           kcore=kcore)
        the_split = make_split(ds, split, test_size=test_size, valid_size=valid_size, rng=seed)
    else:
        raise ValueError("give --dataset NAME, or --train FILE --test FILE")

    rep = the_split.report
    err_console.print(
        f"[bold]{the_split.train.name}[/bold] split={the_split.name} seed={seed}: "
        f"train {rep['train_ratings']:,} / test {rep['test_ratings']:,} ratings; test users "
        f"unseen in train: {rep['test_unseen_users']}, items: {rep['test_unseen_items']}",
        highlight=False)

    def live(record: dict[str, Any]) -> None:
        m = record["metrics"]
        kk = bench._default_k(ks)
        err_console.print(f"  {record['model']:<10} seed {record['seed']}: "
                          f"ndcg@{kk}={m.get(f'ndcg@{kk}', float('nan')):.4f} "
                          f"fit {record['fit_seconds']:.2f}s", highlight=False)

    result = bench.run(names, the_split, seeds=seed_list, ks=ks, relevance=relevance,
                       params=params, progress=progress and sys.stderr.isatty(),
                       keep_lists=out is not None, on_run=live)
    print_table(result.table(), title=f"{result.dataset} · {the_split.name} split · relevance "
                f"≥ {relevance} · full ranking over unseen items")
    if out is not None:
        result.save(out)
        err_console.print(f"wrote {out / 'results.json'} and {out / 'results.csv'}")


def print_table(table: Any, title: str) -> None:
    """Print a models x metrics frame as two tables: accuracy, then beyond accuracy and time.

    Means over seeds, with ±std where several seeds ran; '-' where a model cannot compute a metric.
    """
    metrics = [c for c in table.columns if not c.endswith("_std")]
    accuracy = [c for c in metrics if c in ("rmse", "mae") or c.split("@")[0] in
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
          "recommend_seconds": "rec s", "rmse": "RMSE", "mae": "MAE"}


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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
