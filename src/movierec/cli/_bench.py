"""`movierec benchmark`."""

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
    _model_names,
    announce_split,
    app,
    build_split,
    err_console,
    parse_int_list,
    parse_params,
    print_table,
)


@app.command()
@_friendly_errors
def benchmark(
    dataset: DatasetOpt = None,
    split: SplitOpt = "user-random",
    test_size: TestSizeOpt = 0.2,
    valid_size: ValidSizeOpt = None,
    train: TrainFileOpt = None,
    test: TestFileOpt = None,
    valid: ValidFileOpt = None,
    sep: SepOpt = None,
    models: Annotated[str, typer.Option(help="Comma-separated registry names; 'classic' (mean, "
                                        "bias, pop, userknn, itemknn, ease); or 'all' (every "
                                        "model whose extra is installed).")] = "classic",
    k: KOpt = "5,10,20",
    relevance: RelevanceOpt = 4.0,
    seed: Annotated[int, typer.Option(help="Seed of the split and the models.")] = 42,
    seeds: Annotated[str | None, typer.Option(help="Several model seeds, e.g. 1,2,3 (mean and "
                                              "std are reported). They change only the models' "
                                              "initialisation and sampling, not the split (see "
                                              "--split-seeds); models whose fit ignores the seed "
                                              "(mean, bias, pop, kNN, EASE) are fitted once.")]
    = None,
    split_seeds: Annotated[str | None, typer.Option(
        help="Several split seeds, e.g. 1,2,3: the whole benchmark runs once per split, each "
        "into OUT/split-seed-<s>/, and the table shows mean ± std over splits.")] = None,
    folds: Annotated[int | None, typer.Option(
        help="K-fold cross-validation (random, user-random; user-time: rolling folds per user): "
        "fold i runs into OUT/fold-<i>/, OUT/folds.json sums up, and the table shows the mean "
        "over folds ± the half-width of its 95 % t-interval. --split ml100k-5fold runs "
        "ML-100K's own u1..u5.", min=2)] = None,
    baseline: Annotated[str | None, typer.Option(
        help="Model the table marks the others against: ▲/▼ significantly better/worse, = tied "
        "(paired t-test over users, Holm-corrected; default: the best by NDCG@k).")] = None,
    param: Annotated[list[str] | None, typer.Option(help="MODEL.KEY=VALUE hyper-parameter, "
                                                    "repeatable, e.g. ease.lambda=500.")] = None,
    params_file: Annotated[list[Path] | None, typer.Option(
        help="best.json written by `movierec tune`, repeatable (one per model): its parameters "
        "are applied to that model; --param overrides them.")] = None,
    min_user_ratings: MinUserOpt = 0,
    min_item_ratings: MinItemOpt = 0,
    kcore: KcoreOpt = 0,
    data_dir: DataDirOpt = None,
    imdb_dir: ImdbDirOpt = None,
    out: Annotated[Path | None, typer.Option(help="Write results.json, results.csv and "
                                             "lists/*.parquet here, each run as it finishes; "
                                             "a re-run skips the runs already there.")] = None,
    max_memory_mb: Annotated[float | None, typer.Option(
        help="Working memory for scoring one block of users, in MB (10^6 bytes): users per "
        "block = MB / (items x 20 bytes). Default: 1024 users, fewer past 250 MB. Results do "
        "not depend on it.")] = None,
    threads: ThreadsOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Train every model on the same split and print one comparison table."""
    import pandas as pd

    from movierec import benchmark as bench
    from movierec import metrics as M
    from movierec.pipeline import set_threads
    from movierec.split import FOLD_SETS

    n_threads = set_threads(threads)
    ks = parse_int_list(k, "--k")
    names = _model_names(models)
    params = _file_params(params_file or [], names)
    for name, values in parse_params(param or [], names).items():
        params.setdefault(name, {}).update(values)
    seed_list = parse_int_list(seeds, "--seeds") if seeds else [seed]
    split_seed_list = parse_int_list(split_seeds, "--split-seeds") if split_seeds else [seed]
    kk = M.default_k(ks)
    if baseline is not None and baseline not in names:
        raise ValueError(f"--baseline {baseline!r} is not among --models {names}")

    def live(record: dict[str, Any]) -> None:
        m = record["metrics"]
        done = " (already done)" if record.get("resumed") else ""
        ndcg = m.get(f"ndcg@{kk}")
        err_console.print(f"  {record['model']:<10} seed {record['seed']}: "
                          f"ndcg@{kk}={float('nan') if ndcg is None else ndcg:.4f} "
                          f"fit {record['fit_seconds']:.2f}s{done}", highlight=False)

    if folds is not None or split in FOLD_SETS:
        if split_seeds:
            raise ValueError("give --folds or --split-seeds, not both")
        run_kwargs = {"seeds": seed_list, "ks": ks, "relevance": relevance, "params": params,
                      "progress": progress and sys.stderr.isatty(),
                      "keep_lists": out is not None, "on_run": live,
                      "max_memory_mb": max_memory_mb, "auto_valid": valid_size is None,
                      "threads": n_threads}
        _cross_validate(names, _spec(dataset, split, test_size, valid_size, train, test, seed,
                                     min_user_ratings, min_item_ratings, kcore, imdb_dir),
                        folds, out, data_dir, run_kwargs, baseline, kk, relevance, n_threads)
        return
    tables = []
    per_split = {}
    for split_seed in split_seed_list:
        the_split = build_split(dataset=dataset, split=split, test_size=test_size,
                                valid_size=valid_size, train=train, test=test, valid=valid,
                                seed=split_seed, min_user_ratings=min_user_ratings,
                                min_item_ratings=min_item_ratings, kcore=kcore,
                                data_dir=data_dir, sep=sep, imdb_dir=imdb_dir)
        announce_split(the_split, split_seed)
        folder = out if out is None or len(split_seed_list) == 1 else \
            out / f"split-seed-{split_seed}"
        result = bench.run(names, the_split, seeds=seed_list, ks=ks, relevance=relevance,
                           params=params, progress=progress and sys.stderr.isatty(),
                           keep_lists=out is not None, on_run=live,
                           max_memory_mb=max_memory_mb, out=folder,
                           auto_valid=valid_size is None, threads=n_threads)
        per_split[f"split-seed-{split_seed}"] = result
        if len(split_seed_list) > 1:
            tables.append(result.frame().assign(split_seed=split_seed))
        if folder is not None:
            err_console.print(f"wrote {folder / 'results.json'} and {folder / 'results.csv'}")
    title = (f"{result.dataset} · {the_split.name} split · relevance ≥ {relevance} · full "
             f"ranking over unseen items · {n_threads} thread{'s' if n_threads > 1 else ''}")
    if len(split_seed_list) == 1:
        table = result.table()
    else:
        table = _over_splits(pd.concat(tables, ignore_index=True), kk)
        title += f" · mean ± std over split seeds {','.join(map(str, split_seed_list))}"
    _print_marked(table, title, per_split, baseline, kk)


def _spec(dataset: str | None, split: str, test_size: float, valid_size: float | None,
          train: Path | None, test: Path | None, seed: int, min_user_ratings: int,
          min_item_ratings: int, kcore: int, imdb_dir: Path | None = None) -> Any:
    """The SplitSpec of a cross-validation's options (folds are added by `fold_specs`)."""
    from movierec.pipeline import SplitSpec

    if train is not None or test is not None:
        raise ValueError("--folds / --split ml100k-5fold: the folds are cut from --dataset; "
                         "they cannot come from --train/--test files")
    filters = {key: value for key, value in (("min_user_ratings", min_user_ratings),
               ("min_item_ratings", min_item_ratings), ("kcore", kcore)) if value}
    return SplitSpec(kind=split, dataset=dataset, test_size=test_size,
                     valid_size=valid_size or 0.0, seed=seed, filters=filters, imdb_dir=imdb_dir)


def _cross_validate(names: list[str], spec: Any, folds: int | None, out: Path | None,
                    data_dir: Path | None, run_kwargs: dict[str, Any], baseline: str | None,
                    k: int, relevance: float, n_threads: int) -> None:
    """Run every fold, write OUT/fold-<i>/ and OUT/folds.json, print the table over folds."""
    import pandas as pd

    from movierec import benchmark as bench

    if spec.dataset is None:
        raise ValueError("--folds: give --dataset NAME")
    specs = bench.fold_specs(spec, folds)

    def announce(i: int, the_split: Any) -> None:
        err_console.print(f"fold {i}/{len(specs)}:", highlight=False, end=" ")
        announce_split(the_split, spec.seed)

    results = bench.cross_validate(names, specs, out=out, data_dir=data_dir,
                                   on_split=announce, **run_kwargs)
    if out is not None:
        err_console.print(f"wrote {out}/fold-1..{len(specs)}/ and {out / bench.FOLDS_FILE}")
    table = bench.fold_table(results, k)
    half = {c: (table[f"{c}_high"] - table[f"{c}_low"]) / 2 for c in table.columns
            if f"{c}_high" in table}
    shown = table[list(half)].join(pd.DataFrame(half).add_suffix("_std"))
    title = (f"{results[0].dataset} · {len(specs)} folds of {spec.kind} · relevance ≥ "
             f"{relevance} · full ranking · mean over folds ± half-width of its 95 % "
             f"t-interval · {n_threads} thread{'s' if n_threads > 1 else ''}")
    _print_marked(shown, title, {f"fold-{i}": r for i, r in enumerate(results, start=1)},
                  baseline, k)


def _print_marked(table: Any, title: str, results: dict[str, Any], baseline: str | None,
                  k: int) -> None:
    """`print_table`, with the accuracy cells marked ▲/▼/= against the baseline.

    Significance: paired t-test over (fold, user) pairs of per-user values, Holm-corrected over
    the models of each metric at α = 0.05 (`movierec.compare.marks`).
    """
    from movierec import compare as C
    from movierec import metrics as M

    frame = C.per_user_frame(results)
    base = baseline or _best(table, k)
    judged = [c for c in table.columns if not c.endswith("_std") and M.best_direction(c)]
    marks = {} if frame.empty or base is None else C.marks(frame, judged, base)
    if not marks:
        print_table(table, title=title)
        return
    marked = table.copy()
    for metric, per_model in marks.items():
        # The mark follows the last number of the cell: the value, or its "±" part.
        for model, mark in per_model.items():
            col = f"{metric}_std"
            if col not in table or table.loc[model, col] != table.loc[model, col]:
                col = metric
            marked[col] = marked[col].astype(object)
            marked.loc[model, col] = _Marked(float(table.loc[model, col]), mark)
    marked.index = [f"{m} (baseline)" if m == base else m for m in marked.index]
    print_table(marked, title=title)
    err_console.print(f"▲/▼ significantly better/worse than {base}, = no significant difference "
                      "(paired t-test over users, Holm-corrected over the models, α = 0.05); "
                      "`movierec compare OUT` for intervals and p-values.", highlight=False)


def _best(table: Any, k: int) -> str | None:
    """The best model by NDCG@k (else the first ranking metric, else RMSE) in `table`."""
    from movierec import metrics as M

    order = [f"ndcg@{k}", *(f"{m}@{k}" for m in M.names("ranking")), "rmse"]
    for col in order:
        if col in table and table[col].notna().any():
            values = table[col].astype(float)
            return str(values.idxmax() if M.direction(col) == "higher" else values.idxmin())
    return None


class _Marked(float):
    """A table value that prints with its significance mark ("0.3812▲")."""

    mark: str

    def __new__(cls, value: float, mark: str) -> _Marked:
        obj = super().__new__(cls, value)
        obj.mark = mark
        return obj

    def __format__(self, spec: str) -> str:
        return f"{float(self):{spec}}{self.mark}"


def _over_splits(frame: Any, k: int) -> Any:
    """Models x metrics: each split's model mean, then mean and std over the splits."""
    from movierec.benchmark import BenchmarkResult

    cols = [c for c in BenchmarkResult.table_columns(k) if c in frame]
    per_split = frame.groupby(["model", "split_seed"], sort=False)[cols].mean()
    grouped = per_split.groupby(level="model", sort=False)
    return grouped.mean().join(grouped.std(ddof=1).add_suffix("_std"))


def _file_params(paths: list[Path], names: list[str]) -> dict[str, dict[str, Any]]:
    """{model: params} from tune's best.json files; each must name a model of the run."""
    from movierec.tune import load_params_file

    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        model, values = load_params_file(path)
        if model not in names:
            raise ValueError(f"--params-file {path}: it is for model {model!r}, which is not "
                             f"among --models {names}")
        if model in out:
            raise ValueError(f"--params-file {path}: a second file for model {model!r}")
        out[model] = values
    return out
