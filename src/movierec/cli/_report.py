"""`movierec report` and `movierec data plot`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from movierec.cli._app import DataDirOpt, _friendly_errors, app, console, data_app, err_console

#: `data plot` figure names -> plots function name.
EXPLORATION = {"rating-distribution": "rating_distribution",
               "ratings-over-time": "ratings_over_time", "top-genres": "top_genres",
               "long-tail": "long_tail", "degree-distributions": "degree_distributions",
               "sparsity": "sparsity", "bipartite-graph": "bipartite_graph",
               "demographics": "demographics", "release-years": "release_years"}


@app.command()
@_friendly_errors
def report(
    folder: Annotated[Path, typer.Argument(help="Benchmark folder written by `movierec "
                                           "benchmark --out` (results.json, lists/), or a "
                                           "tuning folder written by `movierec tune --out` "
                                           "(best.json, trials.csv, study.db).")],
    data_dir: DataDirOpt = None,
    dataset: Annotated[str | None, typer.Option(
        help="Release name or folder to load instead of the dataset named in results.json.")]
    = None,
    user: Annotated[int | None, typer.Option(
        help="User of the user card (default: one with a median-length history).")] = None,
    model: Annotated[str | None, typer.Option(
        help="Model of the user card (default: best NDCG@k).")] = None,
    k: Annotated[int | None, typer.Option("--k", help="List length of tables and analyses "
                                          "(default 10, or the largest evaluated).")] = None,
    graph_users: Annotated[int, typer.Option(help="Users sampled for the bipartite graph.")]
    = 20,
    graph_items: Annotated[int, typer.Option(help="Movies in the bipartite graph.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the graph's sample.")] = 0,
    store: Annotated[str | None, typer.Option(
        "--store", metavar="URL", help="Feedback store (sqlite:///FILE, postgresql://...): add "
        "the online evaluation per model version. With a FOLDER that holds no results.json, "
        "the page shows that section alone.")] = None,
) -> None:
    """Write FOLDER/report.html: one self-contained page with data, protocol, results, figures.

    For a tuning folder: best parameters, optimization history, parameter importances. With
    --store: the online evaluation of the store's model versions too.
    """
    from movierec.report import build_report, build_tuning_report, is_tuning_folder

    if k is not None and k <= 0:
        raise ValueError(f"--k must be positive, got {k}")
    if store is not None and not (folder / "results.json").is_file():
        if is_tuning_folder(folder):
            raise ValueError(f"--store: {folder} is a tuning folder; give a benchmark folder "
                             "or one without results.json")
        from movierec.report_online import build_online_report

        out = build_online_report(folder, store, k=k or 10)
        err_console.print(f"wrote {out}", highlight=False)
        return
    if is_tuning_folder(folder):
        out = build_tuning_report(folder)
        err_console.print(f"wrote {out} (figures in {folder / 'figures'})", highlight=False)
        return
    out = build_report(folder, data_dir=data_dir, dataset=dataset, user_id=user, model=model,
                       k=k, graph_users=graph_users, graph_items=graph_items, rng=seed,
                       store=store)
    err_console.print(f"wrote {out} (figures in {folder / 'figures'})", highlight=False)


@data_app.command("plot")
@_friendly_errors
def data_plot(
    name: Annotated[str, typer.Argument(help="Release name (ml-100k, ...) or a folder path.")],
    out: Annotated[Path, typer.Option(help="Folder for the PNG files.")],
    figure: Annotated[list[str] | None, typer.Option(
        help=f"Figure to draw, repeatable (default: all): {', '.join(EXPLORATION)}.")] = None,
    data_dir: DataDirOpt = None,
    graph_users: Annotated[int, typer.Option(help="Users sampled for the bipartite graph.")]
    = 20,
    graph_items: Annotated[int, typer.Option(help="Movies in the bipartite graph.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the graph's sample.")] = 0,
    dpi: Annotated[int, typer.Option(help="Resolution of the PNGs.")] = 110,
) -> None:
    """Draw the exploration figures of a release as PNG files in --out."""
    from movierec import plots
    from movierec.data import load

    names = figure or list(EXPLORATION)
    unknown = [f for f in names if f not in EXPLORATION]
    if unknown:
        raise ValueError(f"--figure: unknown figure(s) {unknown}; known: "
                         f"{', '.join(EXPLORATION)}")
    ds = load(name, data_dir=data_dir)
    for fig_name in names:
        if fig_name == "demographics" and ds.users is None and figure is None:
            err_console.print(f"skipped demographics: {ds.name} has no users table")
            continue
        draw = getattr(plots, EXPLORATION[fig_name])
        fig = (draw(ds, graph_users, graph_items, rng=seed) if fig_name == "bipartite-graph"
               else draw(ds))
        path = out / f"{fig_name}.png"
        plots.save_png(fig, path, dpi=dpi)
        console.print(str(path), highlight=False)
