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
    ImdbDirOpt,
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
from movierec.explain import MIN_SUPPORT, SHRINKAGE
from movierec.models import available
from movierec.pipeline import set_threads

ModelDirArg = Annotated[Path, typer.Argument(help="Model folder written by `movierec train`.")]


@app.command()
@_friendly_errors
def train(
    model: Annotated[str, typer.Option(help="Registry name: " + ", ".join(available()) + ".")],
    out: Annotated[Path | None, typer.Option(help="Model folder to write (replaced only once "
                                             "the new one is complete).")] = None,
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
    imdb_dir: ImdbDirOpt = None,
    threads: ThreadsOpt = None,
    progress: ProgressOpt = True,
    models_root: Annotated[Path | None, typer.Option(
        help="Also (or, without --out, only) write the model as the next version DIR/vNNNN of "
        "this models root and make it DIR/current (see `movierec models list`).")] = None,
    keep: Annotated[int, typer.Option(
        help="With --models-root: keep the newest N versions (plus the current one and the "
        "one a rollback returns to).", min=1)] = 5,
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
               threads=threads, progress=progress, main=distributed.is_main(), sep=sep,
               models_root=models_root, keep=keep, imdb_dir=imdb_dir)
    finally:
        distributed.shutdown()


def _train(*, model: str, out: Path | None, dataset: str | None, split: str, test_size: float,
           valid_size: float | None, train: Path | None, test: Path | None,
           valid: Path | None, sep: str | None, param: list[str] | None, seed: int, k: str,
           relevance: float, min_user_ratings: int, min_item_ratings: int, kcore: int,
           device: str | None, checkpoint_dir: Path | None, resume: bool,
           data_dir: Path | None, threads: int | None, progress: bool, main: bool,
           models_root: Path | None = None, keep: int = 5,
           imdb_dir: Path | None = None) -> None:
    from movierec.models import get_class
    from movierec.pipeline import EvaluationSpec, fit_evaluate

    if out is None and models_root is None:
        raise ValueError("give --out FOLDER, --models-root DIR, or both")
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
                            sep=sep, imdb_dir=imdb_dir)
    if main:
        announce_split(the_split, seed)
    target = out if out is not None else Path(models_root or ".") / "train"  # names the ckpt
    ckpt = (checkpoint_dir or target.with_name(target.name + ".ckpt")) \
        if cls.trains_by_epochs else None
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
    if out is not None:
        fitted.save(out, catalog=the_split.train.items, extra=extra)
    _print_metrics(model, extra["metrics"], ks)
    if out is not None:
        err_console.print(f"saved {out} (fit {record.fit_seconds:.1f}s)")
    if models_root is not None:
        from movierec import versions
        from movierec.retrain import source_record

        source = source_record(dataset, data_dir=data_dir, train=train, test=test, valid=valid,
                               sep=sep)
        version = versions.write_version(models_root, fitted, catalog=the_split.train.items,
                                         extra={**extra, "source": source})
        versions.set_current(models_root, version, reason="train")
        pruned = versions.prune(models_root, keep)
        err_console.print(f"saved {models_root / version}, now {models_root / 'current'}"
                          + (f"; pruned {', '.join(pruned)}" if pruned else ""),
                          highlight=False)


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


def _movies(catalog: pd.DataFrame | None) -> dict[int, dict[str, Any]]:
    """item_id -> {"item_id", "title", "year", "genres": [..]}, the API's shape of a movie."""
    if catalog is None:
        return {}
    years = catalog["year"] if "year" in catalog else pd.Series([None] * len(catalog))
    return {int(i): {"item_id": int(i), "title": str(t),
                     "year": None if y is None or y != y else int(y), "genres": list(g or ())}
            for i, t, y, g in zip(catalog["item_id"], catalog["title"], years,
                                  catalog["genres"], strict=True)}


def _movie(movies: dict[int, dict[str, Any]], item_id: int) -> dict[str, Any]:
    return movies.get(item_id, {"item_id": item_id, "title": f"item {item_id}", "year": None,
                                "genres": []})


@app.command()
@_friendly_errors
def recommend(
    model_dir: ModelDirArg,
    user: Annotated[int, typer.Option(help="Original user id (as in the ratings file).")],
    k: Annotated[int, typer.Option("-k", "--k", help="Number of recommendations.")] = 10,
    exclude_seen: Annotated[bool, typer.Option(
        help="Leave out movies the user rated in training.")] = True,
    explain: Annotated[bool, typer.Option(
        help="Show, for each recommendation, the movies the user liked (rated 4 or more, or "
        "above their own mean rating) that support it most.")] = True,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON: each movie as GET /users/{id}/recommendations gives it.")]
    = False,
    threads: ThreadsOpt = None,
) -> None:
    """Top-k movies for a known user, with titles, genres, score and 'because you liked'.

    The score is the model's ranking score (higher is better; not a rating). Models that
    predict ratings also show the predicted rating.
    """
    if not 0 < k <= 1000:
        raise ValueError(f"-k must be between 1 and 1000, got {k}")
    set_threads(threads)
    recommender, catalog = _load(model_dir)
    movies = _movies(catalog)
    try:
        recs = recommender.recommend([user], k=k, exclude_seen=exclude_seen)
    except UnknownIdError:
        raise UnknownIdError(f"user {user} is not in the training data of {model_dir}") from None
    items = recs["item_id"].to_numpy()
    predicted = (recommender.predict(np.full(len(items), user), items)
                 if recommender.rates and len(items) else None)
    why = recommender.explain(user, items, n=2) if explain else {}
    rows = []
    for r, row in enumerate(recs.itertuples(index=False)):
        iid = int(row.item_id)
        rows.append({**_movie(movies, iid), "rank": int(row.rank), "score": float(row.score),
                     "predicted_rating": None if predicted is None else float(predicted[r]),
                     "because_you_liked": [
                         {"item_id": j, "title": _movie(movies, j)["title"], "similarity": s}
                         for j, s in why.get(iid, [])]})
    if as_json:
        console.print_json(json.dumps({"user": user, "model": recommender.name,
                                       "recommendations": rows}))
        return
    _print_recommendations(rows, title=f"Top {k} for user {user} ({recommender.name})",
                           rated=predicted is not None, explain=explain)


def _print_recommendations(rows: list[dict[str, Any]], *, title: str, rated: bool,
                           explain: bool) -> None:
    table = Table(title=title)
    columns = ["#", "movie", "genres", "score"]
    columns += ["predicted rating"] if rated else []
    columns += ["because you liked"] if explain else []
    for col in columns:
        table.add_column(col, justify="right" if col in ("score", "predicted rating") else "left")
    for row in rows:
        cells = [str(row["rank"]), row["title"], "|".join(row["genres"]), f"{row['score']:.3f}"]
        if rated:
            cells.append(f"{row['predicted_rating']:.2f}")
        if explain:
            cells.append("; ".join(s["title"] for s in row["because_you_liked"]))
        table.add_row(*cells)
    console.print(table)


@app.command()
@_friendly_errors
def similar(
    model_dir: ModelDirArg,
    movie: Annotated[str | None, typer.Option(
        help="Title or part of it; case, accents, punctuation and the article's place do not "
        "matter (\"the godfather\" finds \"Godfather, The (1972)\").")] = None,
    movie_id: Annotated[int | None, typer.Option(help="Original item id.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Number of similar movies.")] = 10,
    min_support: Annotated[int, typer.Option(
        help="Leave out movies with fewer training ratings (0 keeps all).")] = MIN_SUPPORT,
    shrinkage: Annotated[float, typer.Option(
        help="λ of the shrinkage n/(n+λ) of each similarity by the movie's number of training "
        "ratings n (0: none).")] = SHRINKAGE,
    threads: ThreadsOpt = None,
) -> None:
    """Movies most similar to one movie, in the model's own terms.

    EASE compares by its item weights, ItemKNN by its neighbourhoods, other models by the cosine
    of their item vectors or of co-occurrence; movies with fewer than --min-support training
    ratings are left out and the rest shrunk by n/(n+λ), so that movies that a handful of users
    rated do not top the list.
    """
    set_threads(threads)
    if not 0 < k <= 1000:
        raise ValueError(f"-k must be between 1 and 1000, got {k}")
    if min_support < 0:
        raise ValueError(f"--min-support must be ≥ 0, got {min_support}")
    if not (shrinkage >= 0 and np.isfinite(shrinkage)):
        raise ValueError(f"--shrinkage must be a number ≥ 0, got {shrinkage}")
    recommender, catalog = _load(model_dir)
    movies = _movies(catalog)
    if (movie is None) == (movie_id is None):
        raise ValueError("give --movie TITLE or --movie-id ID")
    if movie_id is None:
        from movierec.models.baseline import item_popularity

        ids = recommender.item_vocab_.index
        movie_id = find_movie(catalog, str(movie), ids,
                              popularity=dict(zip(ids.tolist(),
                                                  np.asarray(item_popularity(recommender)),
                                                  strict=True)))
    if movie_id not in recommender.item_vocab_:
        raise UnknownIdError(f"movie {movie_id} is not in the training data of {model_dir}")
    result = recommender.similar_items(movie_id, k=k, min_support=min_support,
                                       shrinkage=shrinkage)
    table = Table(title=f"Movies like {_movie(movies, movie_id)['title']}")
    for col in ("#", "movie", "genres", "similarity"):
        table.add_column(col, justify="right" if col == "similarity" else "left")
    for row in result.itertuples(index=False):
        found = _movie(movies, int(row.item_id))
        table.add_row(str(row.rank), found["title"], "|".join(found["genres"]),
                      f"{row.similarity:.3f}")
    console.print(table)


def find_movie(catalog: pd.DataFrame | None, query: str, known: np.ndarray,
               popularity: dict[int, float] | None = None) -> int:
    """The item id whose title matches `query`; a clear error when none or several do.

    The search is `movierec.data.search` (the API's /movies/search too): a title named exactly
    ("The Godfather" for "Godfather, The (1972)", with or without its "(year)") wins when it is
    the only one; otherwise the query must be part of exactly one known movie's title.

    Args:
        catalog: the model's item table (None: an error asking for --movie-id).
        query: the title or part of it.
        known: item ids the model knows.
        popularity: item_id -> number of training ratings, to order the listing of matches.
    """
    from movierec.data.search import TitleIndex

    if catalog is None:
        raise MovieRecError("this model was saved without an item table; use --movie-id")
    cat = catalog[catalog["item_id"].isin(known)].reset_index(drop=True)
    ids = cat["item_id"].to_numpy()
    counts = None if popularity is None else np.array([popularity.get(int(i), 0) for i in ids])
    index = TitleIndex(cat["title"].astype(str).tolist(), counts)
    exact = index.exact(query)
    matches: np.ndarray | list[Any] = exact if len(exact) else index.search(query)
    if len(matches) == 1:
        return int(ids[matches[0]])
    if len(matches) == 0:
        raise MovieRecError(f"no movie title contains {query!r}")
    if len(exact):  # several exact titles (remakes): list them in search order
        matches = [p for p in index.search(query) if p in set(exact.tolist())]
    shown = [f"{cat['title'].iloc[p]} (id {ids[p]})" for p in list(matches)[:10]]
    more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
    raise MovieRecError(f"{len(matches)} movies match {query!r}: {'; '.join(shown)}{more}; use "
                        "the title with its (year), a longer title, or --movie-id")
