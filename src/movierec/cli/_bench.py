"""`movierec benchmark`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

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
    param: Annotated[list[str] | None, typer.Option(help="MODEL.KEY=VALUE hyper-parameter, "
                                                    "repeatable, e.g. ease.lambda=500.")] = None,
    params_file: Annotated[list[Path] | None, typer.Option(
        help="best.json written by `movierec tune`, repeatable (one per model): its parameters "
        "are applied to that model; --param overrides them.")] = None,
    min_user_ratings: MinUserOpt = 0,
    min_item_ratings: MinItemOpt = 0,
    kcore: KcoreOpt = 0,
    data_dir: DataDirOpt = None,
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

    n_threads = set_threads(threads)
    ks = parse_int_list(k, "--k")
    names = _model_names(models)
    params = _file_params(params_file or [], names)
    for name, values in parse_params(param or [], names).items():
        params.setdefault(name, {}).update(values)
    seed_list = parse_int_list(seeds, "--seeds") if seeds else [seed]
    split_seed_list = parse_int_list(split_seeds, "--split-seeds") if split_seeds else [seed]
    kk = M.default_k(ks)

    def live(record: dict[str, Any]) -> None:
        m = record["metrics"]
        done = " (already done)" if record.get("resumed") else ""
        ndcg = m.get(f"ndcg@{kk}")
        err_console.print(f"  {record['model']:<10} seed {record['seed']}: "
                          f"ndcg@{kk}={float('nan') if ndcg is None else ndcg:.4f} "
                          f"fit {record['fit_seconds']:.2f}s{done}", highlight=False)

    tables = []
    for split_seed in split_seed_list:
        the_split = build_split(dataset=dataset, split=split, test_size=test_size,
                                valid_size=valid_size, train=train, test=test, valid=valid,
                                seed=split_seed, min_user_ratings=min_user_ratings,
                                min_item_ratings=min_item_ratings, kcore=kcore,
                                data_dir=data_dir, sep=sep)
        announce_split(the_split, split_seed)
        folder = out if out is None or len(split_seed_list) == 1 else \
            out / f"split-seed-{split_seed}"
        result = bench.run(names, the_split, seeds=seed_list, ks=ks, relevance=relevance,
                           params=params, progress=progress and sys.stderr.isatty(),
                           keep_lists=out is not None, on_run=live,
                           max_memory_mb=max_memory_mb, out=folder,
                           auto_valid=valid_size is None, threads=n_threads)
        if len(split_seed_list) > 1:
            tables.append(result.frame().assign(split_seed=split_seed))
        if folder is not None:
            err_console.print(f"wrote {folder / 'results.json'} and {folder / 'results.csv'}")
    title = (f"{result.dataset} · {the_split.name} split · relevance ≥ {relevance} · full "
             f"ranking over unseen items · {n_threads} thread{'s' if n_threads > 1 else ''}")
    if len(split_seed_list) == 1:
        print_table(result.table(), title=title)
        return
    frame = pd.concat(tables, ignore_index=True)
    print_table(_over_splits(frame, kk), title=f"{title} · mean ± std over split seeds "
                f"{','.join(map(str, split_seed_list))}")


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
