"""`movierec retrain`, `movierec models list|rollback`, `movierec evaluate-feedback`.

Versioned models live under a models root (`movierec.versions`); retraining is
`movierec.retrain`, online evaluation `movierec.online`. This module parses and prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from movierec.cli._app import (
    DataDirOpt,
    ProgressOpt,
    ThreadsOpt,
    _friendly_errors,
    app,
    console,
    err_console,
)
from movierec.cli._keys import StoreOption, open_store

models_app = typer.Typer(help="Versioned models under a models root: list them, roll back.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")

RootOpt = Annotated[Path, typer.Option(
    "--models-root", metavar="DIR", help="Models root: DIR/v0001, DIR/v0002, ... and "
    "DIR/current (written by `movierec train --models-root`).")]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


@app.command()
@_friendly_errors
def retrain(
    models_root: RootOpt,
    store: StoreOption = None,
    params_file: Annotated[Path | None, typer.Option(
        help="best.json written by `movierec tune`: its model and parameters instead of the "
        "current version's.")] = None,
    tolerance: Annotated[float, typer.Option(
        help="How much worse the new version may score on held-out feedback and still become "
        "current: RMSE (rating models) or NDCG@k (ranking models), absolute.", min=0.0)]
    = 0.01,
    force: Annotated[bool, typer.Option(
        help="Make the new version current whatever the comparison says.")] = False,
    holdout: Annotated[float, typer.Option(
        help="Each user's newest share of feedback ratings held out for the comparison.",
        min=0.01, max=0.99)] = 0.2,
    k: Annotated[int, typer.Option("-k", "--k", help="List length of the comparison.", min=1)]
    = 10,
    relevance: Annotated[float, typer.Option(
        help="Held-out ratings at or above this are the movies to find.")] = 4.0,
    keep: Annotated[int, typer.Option(
        help="Keep the newest N versions (plus the current one and the one a rollback "
        "returns to).", min=1)] = 5,
    seed: Annotated[int | None, typer.Option(
        help="Seed of the model (default: the current version's).")] = None,
    data_dir: DataDirOpt = None,
    threads: ThreadsOpt = None,
    progress: ProgressOpt = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Retrain the current version on its training data plus the store's feedback.

    The new version DIR/vNNNN is always written; it becomes DIR/current only if it is not worse
    than the current one by more than --tolerance on each user's newest held-out feedback
    (RMSE for rating models, NDCG@k otherwise), or with --force. The store records the version,
    both sides' metrics and the decision. A running `movierec serve --models-root DIR --poll N`
    picks the new version up.
    """
    import sys

    from movierec.pipeline import set_threads
    from movierec.retrain import retrain as run

    set_threads(threads)
    with open_store(store) as st:
        result = run(models_root, st, params_file=params_file, tolerance=tolerance,
                     force=force, holdout=holdout, k=k, relevance=relevance, keep=keep,
                     seed=seed, data_dir=data_dir, progress=progress and sys.stderr.isatty())
    if as_json:
        console.print_json(json.dumps({
            "version": result.version, "path": str(result.path), "previous": result.previous,
            "accepted": result.accepted, "forced": result.forced, "metric": result.metric,
            "candidate": result.candidate, "current": result.current, "reason": result.reason,
            "feedback_ratings": result.n_feedback, "heldout_ratings": result.n_heldout,
            "pruned": result.pruned}))
        return
    table = Table(title=f"held-out feedback: {result.n_heldout:,} of {result.n_feedback:,} "
                  "stored ratings", title_justify="left")
    table.add_column("metric")
    table.add_column(f"{result.previous} (current)", justify="right")
    table.add_column(f"{result.version} (new)", justify="right")
    for key in result.candidate:
        table.add_row(key, _fmt(result.current.get(key)), _fmt(result.candidate.get(key)))
    console.print(table)
    outcome = "now current" if result.accepted else f"kept {result.previous} current"
    err_console.print(f"wrote {result.path}: {outcome} ({result.reason})"
                      + (f"; pruned {', '.join(result.pruned)}" if result.pruned else ""),
                      highlight=False)


@models_app.command("list")
@_friendly_errors
def list_models(
    models_root: RootOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The versions of a models root, oldest first; `*` marks the current one."""
    from movierec import versions

    infos = versions.version_info(models_root)
    pointer = versions.read_pointer(models_root)
    if as_json:
        console.print_json(json.dumps({
            "current": None if pointer is None else pointer.version,
            "previous": [] if pointer is None else list(pointer.previous),
            "versions": [{"version": v.version, "path": str(v.path), "model": v.model,
                          "trained_at": v.trained_at, "current": v.current,
                          "metrics": v.metrics, "note": v.note} for v in infos]}))
        return
    keys = [key for key in ("rmse", "ndcg@10", "recall@10")
            if any(v.metrics.get(key) is not None for v in infos)]
    table = Table(title=f"{len(infos)} version(s) in {models_root}", title_justify="left")
    for column in ("", "version", "model", "trained at", *keys, "note"):
        table.add_column(column, justify="right" if column in keys else "left")
    for v in infos:
        table.add_row("*" if v.current else "", v.version, v.model, v.trained_at or "-",
                      *(_fmt(v.metrics.get(key)) for key in keys), v.note)
    console.print(table)
    if pointer is None:
        err_console.print(f"no current version in {models_root}", highlight=False)


@models_app.command("rollback")
@_friendly_errors
def rollback(
    models_root: RootOpt,
    store: Annotated[str | None, typer.Option(
        "--store", metavar="URL", help="Also mark the version active in this store (default: "
        "the store is not touched).")] = None,
) -> None:
    """Point DIR/current back at the version that was current before (one command undo).

    A server started with `--models-root DIR --poll N` serves it within N seconds; one started
    without --poll after SIGHUP or POST /model/reload.
    """
    from movierec import versions

    before = versions.current(models_root)
    pointer = versions.rollback(models_root)
    if store is not None:
        with open_store(store) as st:
            if pointer.version in {v.version for v in st.model_versions()}:
                st.activate_model_version(pointer.version, note=f"rollback from {before}")
            else:
                st.register_model_version(pointer.version,
                                          str((models_root / pointer.version).resolve()),
                                          note=f"rollback from {before}")
                st.activate_model_version(pointer.version)
    console.print(f"{models_root / 'current'}: {before} -> {pointer.version}", highlight=False)


@app.command("evaluate-feedback")
@_friendly_errors
def evaluate_feedback(
    store: StoreOption = None,
    models_root: Annotated[Path | None, typer.Option(
        "--models-root", metavar="DIR", help="Also list this root's versions that showed no "
        "list yet.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Cut-off of hit rate and NDCG.", min=1)]
    = 10,
    relevance: Annotated[float, typer.Option(
        help="Ratings at or above this are 'liked'.")] = 4.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Online evaluation per model version, from the store's impressions and ratings.

    Each rating is credited to the latest list shown to the same user before it was written.
    Per version: lists shown, the share of lists after which a shown movie was rated, and
    among lists followed by a rating >= --relevance, hit@k and NDCG@k of those movies in the
    list as shown.
    """
    from movierec import versions
    from movierec.online import evaluate_feedback as run

    with open_store(store) as st:
        impressions = st.impressions_since(0.0)
        ratings = st.all_ratings()
        status = {v.version: v.status for v in st.model_versions()}
    names = [*status, *(versions.list_versions(models_root) if models_root else [])]
    frame = run(impressions, ratings, k=k, relevance=relevance, versions=names)
    frame.insert(1, "status", [status.get(v) for v in frame["version"]])
    if as_json:
        records = json.loads(frame.to_json(orient="records"))
        console.print_json(json.dumps({"k": k, "relevance": relevance, "versions": records}))
        return
    table = Table(title=f"online evaluation: {len(impressions):,} impressions, "
                  f"{len(ratings):,} ratings", title_justify="left")
    for column in frame.columns:
        table.add_column(column, justify="left" if column in ("version", "status") else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*(_fmt(v) for v in row))
    console.print(table)
