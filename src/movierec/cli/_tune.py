"""`movierec tune`: Optuna search on a validation part; the test part is never read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from movierec.cli._app import (
    DataDirOpt,
    DatasetOpt,
    ImdbDirOpt,
    KcoreOpt,
    MinItemOpt,
    MinUserOpt,
    ProgressOpt,
    SepOpt,
    SplitOpt,
    TestSizeOpt,
    ThreadsOpt,
    _friendly_errors,
    app,
    console,
    err_console,
    parse_params,
    parse_sep,
)


@app.command()
@_friendly_errors
def tune(
    model: Annotated[str, typer.Option(help="Registry name of the model to tune; it must declare "
                                       "a search space (see README, Tuning).")],
    out: Annotated[Path, typer.Option(help="Folder for best.json, trials.csv and the SQLite "
                                      "study (study.db); rerunning continues the study.")],
    dataset: DatasetOpt = None,
    split: SplitOpt = "user-random",
    test_size: TestSizeOpt = 0.2,
    train: Annotated[Path | None, typer.Option(
        help="Training ratings file (instead of --dataset/--split); nothing else is read.")]
    = None,
    valid: Annotated[Path | None, typer.Option(
        help="Validation ratings file; default: a per-user --valid-size share of the training "
        "data: seeded random, or each user's latest ratings when --split is time-ordered "
        "(user-time, time, loo).")] = None,
    valid_size: Annotated[float, typer.Option(
        help="Validation share carved per user from the training part when --valid is not "
        "given.")] = 0.1,
    metric: Annotated[str, typer.Option(
        help="Validation metric: rmse, mae, or a ranking metric at k (ndcg@10, recall@10, "
        "precision@5, map@10, hit@10, mrr@10, f1@10). rmse/mae are minimised, the rest "
        "maximised.")] = "rmse",
    relevance: Annotated[float, typer.Option(
        help="Validation ratings >= this are relevant for ranking metrics (0 = all); 4.0 as in "
        "`benchmark`, so a tuned model is chosen for the task it is judged on.")] = 4.0,
    trials: Annotated[int, typer.Option(
        help="Finished trials the study should reach (a rerun only runs the missing ones).")]
    = 20,
    timeout: Annotated[float | None, typer.Option(
        help="Stop starting new trials after this many seconds.")] = None,
    seed: Annotated[int, typer.Option(help="Seeds the split, the validation carve-out, the TPE "
                                      "sampler and every trial's model.")] = 42,
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage URL shared by several workers, e.g. "
        "postgresql://user@host/db or sqlite:///path/study.db (default: sqlite in --out).")]
    = None,
    study: Annotated[str | None, typer.Option(
        help="Study name in the storage (default MODEL-METRIC).")] = None,
    param: Annotated[list[str] | None, typer.Option(
        help="Fixed KEY=VALUE (or MODEL.KEY=VALUE) parameter, repeatable; removed from the "
        "search, e.g. epochs=30.")] = None,
    prune: Annotated[bool, typer.Option(
        help="Stop neural trials early when their per-epoch validation metric is worse than "
        "the median of earlier trials (median pruner).")] = True,
    min_user_ratings: MinUserOpt = 0,
    min_item_ratings: MinItemOpt = 0,
    kcore: KcoreOpt = 0,
    data_dir: DataDirOpt = None,
    imdb_dir: ImdbDirOpt = None,
    sep: SepOpt = None,
    threads: ThreadsOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Tune one model's hyper-parameters with Optuna (TPE) on validation data only."""
    from movierec import tune as T

    if trials < 1:
        raise ValueError(f"--trials must be ≥ 1, got {trials}")
    T.check_metric(metric)
    fixed = parse_params([p if "." in p.split("=", 1)[0] else f"{model}.{p}"
                          for p in (param or [])], [model])
    fit_part, valid_part, source = _parts(
        dataset=dataset, split=split, test_size=test_size, train=train, valid=valid,
        valid_size=valid_size, seed=seed, min_user_ratings=min_user_ratings,
        min_item_ratings=min_item_ratings, kcore=kcore, data_dir=data_dir, sep=sep,
        imdb_dir=imdb_dir)
    err_console.print(f"tuning [bold]{model}[/bold] on {source}: fit {fit_part.n_ratings:,} / "
                      f"validation {valid_part.n_ratings:,} ratings; metric {metric}; "
                      f"{trials} trials → {out}", highlight=False)

    def live(record: dict[str, Any]) -> None:
        value = "-" if record["value"] is None else f"{record['value']:.4f}"
        err_console.print(f"  trial {record['number']:>3} {record['state']:<8} {value}",
                          highlight=False)

    from movierec.pipeline import set_threads

    set_threads(threads)
    result = T.tune(model, fit_part, valid_part, metric=metric, trials=trials, timeout=timeout,
                    rng=seed, relevance=relevance, fixed=fixed.get(model, {}), storage=storage,
                    study_name=study, out=out, prune=prune,
                    progress=progress and sys.stderr.isatty(), on_trial=live)
    console.print(f"best {result.metric} = {result.value:.4f} after {result.trials} trials "
                  f"({result.complete} complete, {result.pruned} pruned, {result.failed} failed)")
    tuned = {k: result.params[k] for k in result.tuned if k in result.params}
    console.print("tuned parameters: " + ", ".join(f"{k}={_fmt(v)}" for k, v in tuned.items()))
    err_console.print(f"wrote {out / T.BEST_FILE} and {out / T.TRIALS_FILE}; use it with "
                      f"movierec benchmark --params-file {out / T.BEST_FILE}", highlight=False)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _parts(*, dataset: str | None, split: str, test_size: float, train: Path | None,
           valid: Path | None, valid_size: float, seed: int, min_user_ratings: int,
           min_item_ratings: int, kcore: int, data_dir: Path | None,
           sep: str | None = None, imdb_dir: Path | None = None) -> tuple[Any, Any, str]:
    """(fit part, validation part, description); the test part of a split is dropped unread."""
    from movierec.data import load
    from movierec.data.files import load_ratings_file
    from movierec.split import carve_validation

    if not 0 < valid_size < 1:
        raise ValueError(f"--valid-size must be in (0, 1), got {valid_size}")
    if train is not None:
        base = load(dataset, data_dir=data_dir, imdb_dir=imdb_dir) if dataset else None
        fit = load_ratings_file(train, sep=parse_sep(sep))
        fit = fit if base is None else base.with_ratings(fit.ratings)
        if valid is None:
            fit, held = carve_validation(fit, valid_size, seed)
            return fit, held, f"{train} (validation: {valid_size:.0%} per user, seed {seed})"
        held = load_ratings_file(valid, sep=parse_sep(sep))
        held = held if base is None else base.with_ratings(held.ratings)
        return fit, held, f"{train} (validation: {valid})"
    if dataset is None:
        raise ValueError("give --dataset NAME [--split KIND], or --train FILE [--valid FILE]")
    if valid is not None:
        raise ValueError("--valid goes with --train; with --dataset the validation part is "
                         "carved from the split's training part (--valid-size)")
    from movierec.cli._app import build_split

    the_split = build_split(dataset=dataset, split=split, test_size=test_size, valid_size=0.0,
                            train=None, test=None, valid=None, seed=seed,
                            min_user_ratings=min_user_ratings,
                            min_item_ratings=min_item_ratings, kcore=kcore, data_dir=data_dir,
                            sep=sep, imdb_dir=imdb_dir)
    # A time-ordered test asks the validation part to be the future too: each user's latest.
    latest = bool(the_split.params.get("time_aware"))
    fit, held = carve_validation(the_split.train, valid_size, seed, time_ordered=latest)
    how = "the latest" if latest else f"a random (seed {seed})"
    return fit, held, (f"{dataset} {split} training part (test part unused; validation: "
                       f"{how} {valid_size:.0%} per user)")
