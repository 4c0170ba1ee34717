"""`movierec data list | describe`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from movierec.cli._app import _friendly_errors, console, data_app


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


