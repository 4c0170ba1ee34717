"""`movierec run FILE.toml`: run an experiment file into a benchmark-style folder."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from movierec.cli._app import DataDirOpt, ProgressOpt, _friendly_errors, app, console, err_console


@app.command("run")
@_friendly_errors
def run_command(
    file: Annotated[Path, typer.Argument(help="Experiment file (TOML); see experiments/.")],
    quick: Annotated[bool, typer.Option(
        "--quick", help="Smoke run: the file's [quick] overrides (default epochs = 1) and only "
        "the first seed.")] = False,
    out: Annotated[Path | None, typer.Option(
        help="Run folder (default runs/<file name>, with -quick for --quick). Runs already "
        "finished there are skipped.")] = None,
    data_dir: DataDirOpt = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Only parse and validate the file; run nothing, write nothing.")] = False,
    progress: ProgressOpt = True,
) -> None:
    """Run every model, grid combination and seed of an experiment file; write results.json."""
    from movierec.experiment import load_experiment, run_experiment

    exp = load_experiment(file)
    if check:
        n = sum(len(exp.runs(s, quick=quick)) for s in exp.splits)
        console.print(f"{file}: valid; {len(exp.splits)} split(s), {n} run(s)"
                      + (" with --quick" if quick else ""), highlight=False)
        return
    folder = out if out is not None else Path("runs") / (exp.name + ("-quick" if quick else ""))
    t0 = time.perf_counter()
    results = run_experiment(exp, folder, quick=quick, data_dir=data_dir,
                             progress=progress and sys.stderr.isatty(),
                             on_message=lambda text: err_console.print(text, highlight=False,
                                                                      markup=False))
    for name, result in results.items():
        _print(result, f"{exp.name} · {name}" if exp.multi_split else exp.name)
    folders = [folder / n for n in results] if exp.multi_split else [folder]
    err_console.print(f"done in {time.perf_counter() - t0:.1f}s; wrote {folder}/ — see it with "
                      + " and ".join(f"`movierec report {f}`" for f in folders), highlight=False,
                      markup=False)


def _print(result: Any, title: str) -> None:
    """One row per run name (mean over seeds), every metric at k = 10 (or the largest k)."""
    frame = result.frame()
    if frame.empty:
        console.print(f"{title}: no runs")
        return
    ks = result.protocol.get("k", [10])
    k = 10 if 10 in ks else max(ks)
    cols = [c for c in frame.columns if c not in ("model", "seed")
            and ("@" not in c or c.endswith(f"@{k}"))]
    table = frame.groupby("model", sort=False)[cols].mean()
    out = Table(title=f"{title} — {result.protocol.get('protocol')} (mean over seeds)",
                title_justify="left")
    out.add_column("run")
    for c in cols:
        out.add_column(c.replace("_seconds", " s"), justify="right")
    for model, row in table.iterrows():
        out.add_row(escape(str(model)), *(_cell(v) for v in row))
    console.print(out)


def _cell(v: float) -> str:
    return "-" if v != v else f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
