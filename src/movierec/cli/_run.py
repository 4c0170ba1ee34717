"""`movierec run FILE.toml`: run an experiment file into a benchmark-style folder."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from movierec.cli._app import (
    DataDirOpt,
    ImdbDirOpt,
    ProgressOpt,
    ThreadsOpt,
    _friendly_errors,
    app,
    console,
    err_console,
)
from movierec.metrics import DEFAULT_K, default_k, metric_info


@app.command("run")
@_friendly_errors
def run_command(
    file: Annotated[Path, typer.Argument(help="Experiment file (TOML); see experiments/.")],
    quick: Annotated[bool, typer.Option(
        # "\\[": rich markup (typer's help renderer) would read "[quick]" as a style tag.
        "--quick", help="Smoke run: the file's \\[quick] overrides (default epochs = 1) and "
        "only the first seed.")] = False,
    out: Annotated[Path | None, typer.Option(
        help="Run folder (default runs/<file name>, with -quick for --quick). Runs already "
        "finished there are skipped.")] = None,
    data_dir: DataDirOpt = None,
    imdb_dir: ImdbDirOpt = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Only parse and validate the file; run nothing, write nothing.")] = False,
    threads: ThreadsOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Run every model, grid combination and seed of an experiment file; write results.json."""
    from movierec.experiment import load_experiment, run_experiment

    exp = load_experiment(file)
    if imdb_dir is not None:  # overrides the file's [dataset] imdb_dir
        from dataclasses import replace

        exp = replace(exp, dataset=replace(exp.dataset, imdb_dir=imdb_dir))
    if check:
        n = sum(len(exp.runs(s, quick=quick)) for s in exp.splits)
        console.print(f"{file}: valid; {len(exp.splits)} split(s), {n} run(s)"
                      + (" with --quick" if quick else ""), highlight=False)
        return
    folder = out if out is not None else Path("runs") / (exp.name + ("-quick" if quick else ""))
    t0 = time.perf_counter()
    results = run_experiment(exp, folder, quick=quick, data_dir=data_dir, threads=threads,
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
    """Tables of one row per run name: mean ± std over seeds.

    Every metric at k = 10 (or the largest k), grouped by kind so that no header or value is cut.
    """
    frame = result.frame()
    if frame.empty:
        console.print(f"{title}: no runs")
        return
    k = default_k(result.protocol.get("k", [DEFAULT_K]))
    cols = [c for c in frame.columns if c not in ("model", "seed")
            and ("@" not in c or c.endswith(f"@{k}"))]
    grouped = frame.groupby("model", sort=False)[cols]
    mean = grouped.mean()
    seeds = int(frame.groupby("model").size().max())
    std = grouped.std(ddof=1) if seeds > 1 else None
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed"
    for part, part_cols in _groups(cols):
        headers = [_header(c) for c in part_cols]
        rows = {str(model): [_cell(mean.at[model, c], None if std is None else
                                   std.at[model, c], c) for c in part_cols]
                for model in mean.index}
        run_width = min(max(len(r) for r in ["run", *rows]), 30)
        if _width(run_width, headers, rows) > console.width:  # too wide: ±std below the mean
            rows = {r: [cell.replace("±", "\n±") for cell in cells] for r, cells in rows.items()}
        for columns in _chunks(run_width, headers, rows, console.width):
            out = Table(title=f"{title} — {result.protocol.get('protocol')}: {part} ({spread})",
                        title_justify="left")
            # fold, never "…": a narrow terminal wraps a long run name instead.
            out.add_column("run", overflow="fold")
            for j in columns:
                out.add_column(escape(headers[j]), justify="right", no_wrap=True)
            for run, cells in rows.items():
                out.add_row(escape(run), *(escape(cells[j]) for j in columns))
            console.print(out)


def _column_widths(headers: list[str], rows: dict[str, list[str]]) -> list[int]:
    return [max(len(line) for text in (header, *(cells[j] for cells in rows.values()))
                for line in text.split("\n")) for j, header in enumerate(headers)]


def _width(run_width: int, headers: list[str], rows: dict[str, list[str]]) -> int:
    """Characters a table of these cells takes (rich: 3 per column for padding and border)."""
    return run_width + sum(_column_widths(headers, rows)) + 3 * (len(headers) + 1) + 1


def _chunks(run_width: int, headers: list[str], rows: dict[str, list[str]],
            limit: int) -> list[list[int]]:
    """Column indices split into tables that each fit `limit` characters.

    One column at least per table, so that no value is cut.
    """
    chunks: list[list[int]] = [[]]
    used = run_width + 4
    for j, width in enumerate(_column_widths(headers, rows)):
        if chunks[-1] and used + width + 3 > limit:
            chunks.append([])
            used = run_width + 4
        chunks[-1].append(j)
        used += width + 3
    return chunks


_GROUPS = (("errors", ("rating", "rated")), ("ranking", ("ranking", "sampled")),
           ("beyond accuracy and seconds", ("beyond", None)))


def _family(col: str) -> str | None:
    try:
        return metric_info(col).family
    except KeyError:  # seconds, or a metric the catalogue does not know
        return None


def _groups(cols: list[str]) -> list[tuple[str, list[str]]]:
    """The columns split into errors, ranking, and beyond accuracy + seconds.

    Empty groups are left out; each keeps the frame's order.
    """
    out = []
    for name, families in _GROUPS:
        part = [c for c in cols if _family(c) in families]
        if part:
            out.append((name, part))
    return out


def _header(col: str) -> str:
    if col.endswith("_seconds"):
        return col.removesuffix("_seconds").replace("recommend", "rec") + " s"
    name, _, k = col.partition("@")
    try:
        label = metric_info(name).label
    except KeyError:
        label = name
    return label + (f"@{k}" if k else "")


def _cell(v: float, std: float | None, col: str) -> str:
    if v != v:  # NaN: the run cannot compute it
        return "-"
    digits = 2 if col.endswith("_seconds") else 4 if abs(v) < 100 else 1
    text = f"{v:.{digits}f}"
    if std is not None and std == std:
        text += f"±{std:.{digits}f}"
    return text
