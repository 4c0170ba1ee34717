"""`movierec data list | describe | synth`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from movierec.cli._app import ProgressOpt, _friendly_errors, console, data_app


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
    imdb_dir: Annotated[Path | None, typer.Option(
        help="Folder of IMDb's non-commercial TSV files that you downloaded (title.basics, "
        "title.principals, title.crew, title.ratings, name.basics; movierec never downloads "
        "them): join them to the movies and print the match report and the coverage of each "
        "new column.")] = None,
) -> None:
    """Counts, sparsity, rating histogram, time range and degree statistics of a release."""
    from movierec.data import load
    from movierec.data.describe import describe

    ds = load(name, data_dir=data_dir)
    imdb: dict[str, Any] | None = None
    if imdb_dir is not None:
        from movierec.data.imdb import enrich

        enriched = enrich(ds, imdb_dir)
        ds = enriched.dataset
        imdb = {"match": enriched.report.to_dict(), "coverage": enriched.coverage}
    stats = describe(ds)
    if imdb is not None:
        stats["imdb"] = imdb
    if as_json:
        console.print_json(json.dumps(stats, default=str))
        return
    # min_width: a table narrower than its title would wrap the title ("rating_histo / gram").
    title = str(stats.get("name", name))
    summary = Table(title=title, show_header=False, min_width=len(title))
    for key, value in stats.items():
        if not isinstance(value, dict) and not _is_records(value):
            summary.add_row(key, _fmt(value))
    console.print(summary)
    for key, value in stats.items():
        if _is_records(value):
            table = Table(*value[0].keys(), title=key, min_width=len(key))
            for rec in value:
                table.add_row(*(_fmt(v) for v in rec.values()))
            console.print(table)
    for section, values in stats.items():
        if section == "imdb":
            _print_imdb(values)
        elif isinstance(values, dict) and values:
            table = Table(title=section, show_header=False, min_width=len(section))
            for k, v in values.items():
                table.add_row(str(k), _fmt(v))
            console.print(table)


@data_app.command("synth")
@_friendly_errors
def data_synth(
    out: Annotated[Path, typer.Option(
        help="Folder to write. It must not exist or be empty (see --force); the files are "
        "written under a temporary name beside it and renamed when complete.")],
    layout: Annotated[str, typer.Option(
        help="Release whose csv layout and sizes to imitate: ml-20m, ml-25m or ml-32m.")]
    = "ml-25m",
    users: Annotated[int | None, typer.Option(
        help="Number of users, each rating 20 or more movies (default: the release's, "
        "162,541 for ml-25m).")] = None,
    items: Annotated[int | None, typer.Option(
        help="Number of rated movies, at least 20; movies.csv lists some unrated ones too "
        "(default: the release's, 59,047 for ml-25m).")] = None,
    ratings: Annotated[int | None, typer.Option(
        help="Number of ratings, from max(20 x users, items) to users x items (default: the "
        "release's, 25,000,095 for ml-25m).")] = None,
    seed: Annotated[int, typer.Option(
        help="Random seed: the same seed and sizes write the same bytes.")] = 0,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace --out when it exists and is not empty.")] = False,
    progress: ProgressOpt = True,
) -> None:
    """Write a random release in the official csv layout (ML-25M's size by default).

    Power-law popularity and activity, half-star ratings, timestamps, genres, tags, links.
    For measuring scale where the real release cannot be downloaded; load it like a release
    (`movierec data describe OUT`). Its README.txt says it is synthetic and how to rebuild it.
    """
    from movierec.data.synthetic import write_release_like

    made = write_release_like(out, layout=layout, users=users, items=items, ratings=ratings,
                              rng=seed, overwrite=force, progress=progress)
    console.print(f"wrote {made.path}: {made.ratings:,} ratings by {made.users:,} users on "
                  f"{made.items:,} movies ({made.movies:,} in movies.csv), {made.tags:,} tags; "
                  f"seed {made.seed}, {made.seconds:.1f} s", highlight=False)


def _print_imdb(imdb: dict[str, Any], shown: int = 10) -> None:
    """The IMDb match report (counts, then the first `shown` ambiguous and unmatched movies)."""
    match = imdb["match"]
    table = Table(title=f"IMDb match ({match['method']})", show_header=False, min_width=24)
    for key in ("items", "matched", "ambiguous", "unmatched", "seconds"):
        table.add_row(key, _fmt(match[key]))
    for key in ("ambiguous_items", "unmatched_items"):
        values = match[key]
        more = f" ... (+{len(values) - shown}; all in --json)" if len(values) > shown else ""
        table.add_row(key, _fmt(values[:shown]) + more)
    console.print(table)
    cover = Table("column", "coverage", title="IMDb columns", min_width=24)
    for col, share in imdb["coverage"].items():
        cover.add_row(col, f"{share:.1%}")
    console.print(cover)


def _is_records(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict | list):
        return json.dumps(v, default=str)
    return str(v)


