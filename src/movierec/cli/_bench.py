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
    SplitOpt,
    TestFileOpt,
    TestSizeOpt,
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
    valid_size: ValidSizeOpt = 0.0,
    train: TrainFileOpt = None,
    test: TestFileOpt = None,
    valid: ValidFileOpt = None,
    models: Annotated[str, typer.Option(help="Comma-separated registry names; 'classic' (mean, "
                                        "bias, pop, userknn, itemknn, ease); or 'all' (every "
                                        "model whose extra is installed).")] = "classic",
    k: KOpt = "5,10,20",
    relevance: RelevanceOpt = 4.0,
    seed: Annotated[int, typer.Option(help="Seed of the split and the models.")] = 42,
    seeds: Annotated[str | None, typer.Option(help="Several model seeds, e.g. 1,2,3 "
                                              "(mean and std are reported); the split uses "
                                              "--seed.")] = None,
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
                                             "lists/*.parquet here.")] = None,
    max_memory_mb: Annotated[float | None, typer.Option(
        help="Working memory for scoring one block of users, in MB (10^6 bytes): users per "
        "block = MB / (items x 20 bytes). Default: 1024 users, fewer past 250 MB. Results do "
        "not depend on it.")] = None,
    progress: ProgressOpt = True,
) -> None:
    """Train every model on the same split and print one comparison table."""
    from movierec import benchmark as bench

    ks = parse_int_list(k, "--k")
    names = _model_names(models)
    params = _file_params(params_file or [], names)
    for name, values in parse_params(param or [], names).items():
        params.setdefault(name, {}).update(values)
    seed_list = parse_int_list(seeds, "--seeds") if seeds else [seed]
    the_split = build_split(dataset=dataset, split=split, test_size=test_size,
                            valid_size=valid_size, train=train, test=test, valid=valid,
                            seed=seed, min_user_ratings=min_user_ratings,
                            min_item_ratings=min_item_ratings, kcore=kcore, data_dir=data_dir)
    announce_split(the_split, seed)

    def live(record: dict[str, Any]) -> None:
        m = record["metrics"]
        kk = bench._default_k(ks)
        err_console.print(f"  {record['model']:<10} seed {record['seed']}: "
                          f"ndcg@{kk}={m.get(f'ndcg@{kk}', float('nan')):.4f} "
                          f"fit {record['fit_seconds']:.2f}s", highlight=False)

    result = bench.run(names, the_split, seeds=seed_list, ks=ks, relevance=relevance,
                       params=params, progress=progress and sys.stderr.isatty(),
                       keep_lists=out is not None, on_run=live, max_memory_mb=max_memory_mb)
    print_table(result.table(), title=f"{result.dataset} · {the_split.name} split · relevance "
                f"≥ {relevance} · full ranking over unseen items")
    if out is not None:
        result.save(out)
        err_console.print(f"wrote {out / 'results.json'} and {out / 'results.csv'}")


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
