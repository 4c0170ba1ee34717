"""`movierec train | recommend | similar`: one model, saved as an artifact, then used."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from movierec.cli._app import (
    DataDirOpt,
    DatasetOpt,
    KcoreOpt,
    KOpt,
    MinItemOpt,
    MinUserOpt,
    ProgressOpt,
    RelevanceOpt,
    SepOpt,
    SplitOpt,
    TestFileOpt,
    TestSizeOpt,
    ThreadsOpt,
    TrainFileOpt,
    ValidFileOpt,
    ValidSizeOpt,
    _friendly_errors,
    announce_split,
    app,
    build_split,
    console,
    err_console,
    parse_int_list,
    parse_params,
)
from movierec.errors import MovieRecError, UnknownIdError
from movierec.models import available

ModelDirArg = Annotated[Path, typer.Argument(help="Model folder written by `movierec train`.")]


@app.command()
@_friendly_errors
def train(
    model: Annotated[str, typer.Option(help="Registry name: " + ", ".join(available()) + ".")],
    out: Annotated[Path, typer.Option(help="Model folder to write (replaced only once the new "
                                      "one is complete).")],
    dataset: DatasetOpt = None,
    split: SplitOpt = "user-random",
    test_size: TestSizeOpt = 0.2,
    valid_size: ValidSizeOpt = None,
    train: TrainFileOpt = None,
    test: TestFileOpt = None,
    valid: ValidFileOpt = None,
    sep: SepOpt = None,
    param: Annotated[list[str] | None, typer.Option(
        help="KEY=VALUE hyper-parameter (or MODEL.KEY=VALUE), repeatable, e.g. epochs=20.")]
    = None,
    seed: Annotated[int, typer.Option(help="Seed of the split and the model.")] = 42,
    k: KOpt = "5,10,20",
    relevance: RelevanceOpt = 4.0,
    min_user_ratings: MinUserOpt = 0,
    min_item_ratings: MinItemOpt = 0,
    kcore: KcoreOpt = 0,
    device: Annotated[str | None, typer.Option(
        help="auto, cpu or cuda (neural models; default: the model's own, auto).")] = None,
    checkpoint_dir: Annotated[Path | None, typer.Option(
        help="Per-epoch checkpoints of neural models (default: OUT.ckpt beside OUT).")] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue a neural model from its last complete epoch in the checkpoint folder.")]
    = False,
    data_dir: DataDirOpt = None,
    threads: ThreadsOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Train one model, evaluate it on the test part, and save it with its item table.

    Under `torchrun --nproc_per_node=N -m movierec train ...` neural models train data-parallel,
    the evaluation is sharded by test users, and rank 0 alone prints and writes the checkpoints
    and the model folder.
    """
    from movierec import distributed

    distributed.init()
    try:
        _train(model=model, out=out, dataset=dataset, split=split, test_size=test_size,
               valid_size=valid_size, train=train, test=test, valid=valid, param=param,
               seed=seed, k=k, relevance=relevance, min_user_ratings=min_user_ratings,
               min_item_ratings=min_item_ratings, kcore=kcore, device=device,
               checkpoint_dir=checkpoint_dir, resume=resume, data_dir=data_dir,
               threads=threads, progress=progress, main=distributed.is_main(), sep=sep)
    finally:
        distributed.shutdown()


def _train(*, model: str, out: Path, dataset: str | None, split: str, test_size: float,
           valid_size: float | None, train: Path | None, test: Path | None,
           valid: Path | None, sep: str | None, param: list[str] | None, seed: int, k: str,
           relevance: float, min_user_ratings: int, min_item_ratings: int, kcore: int,
           device: str | None, checkpoint_dir: Path | None, resume: bool,
           data_dir: Path | None, threads: int | None, progress: bool, main: bool) -> None:
    from movierec.models import get_class
    from movierec.pipeline import EvaluationSpec, fit_evaluate

    ks = parse_int_list(k, "--k")
    cls = get_class(model)
    params = parse_params([p if "." in p.split("=", 1)[0] else f"{model}.{p}"
                           for p in (param or [])], [model]).get(model, {})
    if device is not None:
        if "device" not in cls.param_names():
            raise ValueError(f"--device: model {model!r} has no device (it runs on the CPU)")
        params["device"] = device
    if resume and not cls.trains_by_epochs:
        raise ValueError(f"--resume: model {model!r} is not trained epoch by epoch")
    the_split = build_split(dataset=dataset, split=split, test_size=test_size,
                            valid_size=valid_size, train=train, test=test, valid=valid,
                            seed=seed, min_user_ratings=min_user_ratings,
                            min_item_ratings=min_item_ratings, kcore=kcore, data_dir=data_dir,
                            sep=sep)
    if main:
        announce_split(the_split, seed)
    ckpt = (checkpoint_dir or out.with_name(out.name + ".ckpt")) if cls.trains_by_epochs \
        else None
    try:
        # Data-parallel, every rank holds the same weights and scores its share of the test
        # users; all of them get the same results, and rank 0 alone prints and writes.
        record = fit_evaluate(model, the_split, params=params, seed=seed,
                              evaluation=EvaluationSpec(k=tuple(ks), relevance=relevance),
                              progress=progress and sys.stderr.isatty(), checkpoint_dir=ckpt,
                              resume=resume, auto_valid=valid_size is None, threads=threads)
    except KeyboardInterrupt:
        if main and ckpt is not None:
            err_console.print(f"interrupted: the last complete epoch is in {ckpt}; continue "
                              "with the same command and --resume", highlight=False)
        raise
    if not main:
        return
    fitted = record.fitted
    assert fitted is not None
    resumed = getattr(fitted, "resumed_from_epoch_", None)
    if resumed is not None:
        err_console.print(f"resumed from epoch {resumed} in {ckpt}", highlight=False)
    if record.validation.startswith("carved"):
        err_console.print(f"validation: {record.validation} (--valid-size 0 turns this off)",
                          highlight=False)
    extra = {
        "dataset": the_split.train.name,
        "split": the_split.describe(),
        "seed": seed,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fit_seconds": round(record.fit_seconds, 3),
        "protocol": {"protocol": "full", "relevance": float(relevance), "k": list(ks),
                     "candidates": "all-unseen"},
        "validation": record.validation,
        "threads": record.threads,
        "metrics": record.metrics,
    }
    fitted.save(out, catalog=the_split.train.items, extra=extra)
    _print_metrics(model, extra["metrics"], ks)
    err_console.print(f"saved {out} (fit {record.fit_seconds:.1f}s)")


def _print_metrics(model: str, metrics: dict[str, Any], ks: list[int]) -> None:
    table = Table(title=f"{model} on the test part")
    table.add_column("metric")
    table.add_column("value", justify="right")
    kk = 10 if 10 in ks else max(ks)
    for key, value in metrics.items():
        if value is not None and ("@" not in key or key.endswith(f"@{kk}")):
            table.add_row(key, f"{value:.4f}")
    console.print(table)


# --- using a saved model -----------------------------------------------------------------------
def _load(path: Path) -> tuple[Any, pd.DataFrame | None]:
    from movierec.artifact import load_catalog
    from movierec.models import load

    return load(path), load_catalog(path)


def _titles(catalog: pd.DataFrame | None) -> dict[int, tuple[str, str]]:
    """item_id -> ("Title", "Genre|Genre")."""
    if catalog is None:
        return {}
    return {int(i): (str(t), "|".join(g)) for i, t, g in
            zip(catalog["item_id"], catalog["title"], catalog["genres"], strict=True)}


def _name(titles: dict[int, tuple[str, str]], item_id: int) -> str:
    return titles.get(item_id, (f"item {item_id}", ""))[0]


@app.command()
@_friendly_errors
def recommend(
    model_dir: ModelDirArg,
    user: Annotated[int, typer.Option(help="Original user id (as in the ratings file).")],
    k: Annotated[int, typer.Option("-k", "--k", help="Number of recommendations.")] = 10,
    exclude_seen: Annotated[bool, typer.Option(
        help="Leave out movies the user rated in training.")] = True,
    explain: Annotated[bool, typer.Option(help="Show the user's movies that support each "
                                          "recommendation.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
) -> None:
    """Top-k movies for a known user, with titles, genres, score and 'because you liked'."""
    if not 0 < k <= 1000:
        raise ValueError(f"-k must be between 1 and 1000, got {k}")
    recommender, catalog = _load(model_dir)
    titles = _titles(catalog)
    try:
        recs = recommender.recommend([user], k=k, exclude_seen=exclude_seen)
    except UnknownIdError:
        raise UnknownIdError(f"user {user} is not in the training data of {model_dir}") from None
    items = recs["item_id"].to_numpy()
    predicted = (recommender.predict(np.full(len(items), user), items)
                 if recommender.rates else None)
    why = recommender.explain(user, items, n=2) if explain else {}
    rows = []
    for r, row in enumerate(recs.itertuples(index=False)):
        iid = int(row.item_id)
        title, genres = titles.get(iid, (f"item {iid}", ""))
        rows.append({"rank": int(row.rank), "item_id": iid, "title": title, "genres": genres,
                     "score": float(row.score),
                     "predicted_rating": None if predicted is None else float(predicted[r]),
                     "because_you_liked": [_name(titles, j) for j, _ in why.get(iid, [])]})
    if as_json:
        console.print_json(json.dumps({"user": user, "recommendations": rows}))
        return
    table = Table(title=f"Top {k} for user {user} ({recommender.name})")
    for col in ("#", "movie", "genres", "rating" if predicted is not None else "score",
                "because you liked"):
        table.add_column(col)
    for row in rows:
        value = row["predicted_rating"] if predicted is not None else row["score"]
        table.add_row(str(row["rank"]), row["title"], row["genres"], f"{value:.3f}",
                      "; ".join(row["because_you_liked"]))
    console.print(table)


@app.command()
@_friendly_errors
def similar(
    model_dir: ModelDirArg,
    movie: Annotated[str | None, typer.Option(help="Title or part of it (case-insensitive).")]
    = None,
    movie_id: Annotated[int | None, typer.Option(help="Original item id.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Number of similar movies.")] = 10,
) -> None:
    """Movies most similar to one movie, in the model's item space."""
    if not 0 < k <= 1000:
        raise ValueError(f"-k must be between 1 and 1000, got {k}")
    recommender, catalog = _load(model_dir)
    titles = _titles(catalog)
    if (movie is None) == (movie_id is None):
        raise ValueError("give --movie TITLE or --movie-id ID")
    if movie_id is None:
        movie_id = find_movie(catalog, str(movie), recommender.item_vocab_.index)
    if movie_id not in recommender.item_vocab_:
        raise UnknownIdError(f"movie {movie_id} is not in the training data of {model_dir}")
    result = recommender.similar_items(movie_id, k=k)
    table = Table(title=f"Movies like {_name(titles, movie_id)}")
    for col in ("#", "movie", "genres", "similarity"):
        table.add_column(col)
    for row in result.itertuples(index=False):
        title, genres = titles.get(int(row.item_id), (f"item {row.item_id}", ""))
        table.add_row(str(row.rank), title, genres, f"{row.similarity:.3f}")
    console.print(table)


def find_movie(catalog: pd.DataFrame | None, query: str, known: np.ndarray) -> int:
    """The item id whose title matches `query`; a clear error when none or several do.

    An exact title (case-insensitive, with or without the "(year)" suffix) wins; otherwise the
    query must be a substring of exactly one known movie's title.
    """
    if catalog is None:
        raise MovieRecError("this model was saved without an item table; use --movie-id")
    cat = catalog[catalog["item_id"].isin(known)]
    titles = cat["title"].str.lower()
    bare = titles.str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True)
    q = query.strip().lower()
    exact = cat[(titles == q) | (bare == q)]
    matches = exact if len(exact) else cat[titles.str.contains(q, regex=False)]
    if len(matches) == 1:
        return int(matches["item_id"].iloc[0])
    if len(matches) == 0:
        raise MovieRecError(f"no movie title contains {query!r}")
    listing = "; ".join(f"{t} (id {i})" for i, t in
                        zip(matches["item_id"].head(10), matches["title"].head(10), strict=True))
    more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
    raise MovieRecError(f"{len(matches)} movies match {query!r}: {listing}{more}; use a longer "
                        "title or --movie-id")
