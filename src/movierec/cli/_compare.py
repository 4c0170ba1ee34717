"""`movierec compare`: paired significance tests between the models of a benchmark folder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from movierec.cli._app import _friendly_errors, app, console, err_console


@app.command()
@_friendly_errors
def compare(
    folder: Annotated[Path, typer.Argument(
        help="Benchmark folder written by `movierec benchmark --out` (per_user/*.parquet), or a "
        "cross-validation folder (fold-<i>/, split-seed-<s>/): pairs are pooled over folds.")],
    baseline: Annotated[str | None, typer.Option(
        help="Model every other model is compared with (default: the best by --metric).")]
    = None,
    metric: Annotated[str | None, typer.Option(
        help="Per-user metric, e.g. ndcg@10, recall@20, rmse (default ndcg@10, else rmse).")]
    = None,
    test: Annotated[str, typer.Option(
        help="Paired test over users: t (paired t-test), wilcoxon (signed-rank) or "
        "permutation (random sign flips).")] = "t",
    alpha: Annotated[float, typer.Option(help="Significance level of the corrected p-values.")]
    = 0.05,
    correction: Annotated[str, typer.Option(
        help="Multiple-comparison correction over the table's rows: holm, bonferroni or none.")]
    = "holm",
    pairs: Annotated[bool, typer.Option(
        "--pairs", help="Compare every pair of models, not each model with the baseline.")]
    = False,
    confidence: Annotated[float, typer.Option(help="Coverage of the bootstrap intervals.")]
    = 0.95,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.", min=100)] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and permutation test.")] = 0,
) -> None:
    """Mean difference, bootstrap interval, paired p-value (corrected) and effect size per model.

    Writes FOLDER/comparisons.csv and FOLDER/comparisons.json and prints the table.
    """
    from movierec import compare as C

    if not 0 < alpha < 1:
        raise ValueError(f"--alpha must be in (0, 1), got {alpha}")
    if not 0 < confidence < 1:
        raise ValueError(f"--confidence must be in (0, 1), got {confidence}")
    frame = C.load_per_user(folder)
    table = C.compare(frame, metric, baseline=baseline, test=test, alpha=alpha,
                      correction=correction, pairs=pairs, confidence=confidence,
                      n_resamples=resamples, rng=seed)
    meta = {"folder": str(folder), "metric": str(table["metric"].iloc[0]), "test": test,
            "alpha": alpha, "correction": correction, "pairs": pairs,
            "confidence": confidence, "bootstrap_resamples": resamples, "seed": seed,
            "pairing": "(fold, user); each model's value of a pair is its mean over seeds",
            "folds": sorted(set(frame["fold"])) if "fold" in frame else []}
    csv_path, json_path = C.write_comparisons(folder, table, meta)
    print_comparisons(table, confidence)
    err_console.print(f"wrote {csv_path} and {json_path}", highlight=False)


def print_comparisons(table: Any, confidence: float = 0.95) -> None:
    """Print a `movierec.compare.compare` table."""
    from rich.table import Table

    row0 = table.iloc[0]
    title = (f"{row0['metric']} · paired {row0['test']} test over users · "
             f"{row0['correction']}-corrected at α={row0['alpha']:g} · "
             f"{confidence:.0%} bootstrap interval")
    out = Table(title=title, title_justify="left")
    for col, justify in (("model", "left"), ("vs", "left"), ("users", "right"),
                         ("mean", "right"), ("vs mean", "right"), ("diff", "right"),
                         ("interval", "right"), ("p", "right"), ("p corr", "right"),
                         ("d_z", "right"), ("", "left")):
        out.add_column(col, justify=justify)  # type: ignore[arg-type]
    symbol = {"better": "▲ better", "worse": "▼ worse", "tied": "= tied"}
    for r in table.itertuples():
        interval = ("–" if math.isnan(r.ci_low) else f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]")
        out.add_row(str(r.model), str(r.baseline), f"{r.users:,}", f"{r.mean_model:.4f}",
                    f"{r.mean_baseline:.4f}", f"{r.diff:+.4f}", interval, _p(r.p_value),
                    _p(r.p_corrected), f"{r.effect_size:+.2f}", symbol[str(r.verdict)])
    console.print(out)


def _p(p: float) -> str:
    return "–" if p != p else "<1e-4" if p < 1e-4 else f"{p:.4f}"
