"""Experiment files: one TOML file names the data, filters, split(s), models, seeds and metrics.

`load_experiment(path)` parses a file with the standard library's `tomllib` into typed dataclasses
and validates everything it can before any data is read: an unknown key, a wrong type, an unknown
model or parameter, or a malformed grid raises one `ExperimentError` naming the key and its line.
`run_experiment(exp, out)` then runs it into a folder laid out like `movierec benchmark --out`
(results.json, results.csv, lists/), so `movierec report DIR` works on it.

File format (every table but [dataset] and one of [split]/[splits.NAME] is optional)::

    [experiment]   name, description, seeds = [42], checkpoints = false
    [dataset]      release = "ml-100k"  |  path = "folder or ratings file"
                   |  train = "...", test = "...", valid = "..." (files; no [split] then)
    [dataset.filters]  keyword arguments of `Dataset.filter` (min_item_ratings, require_genres,
                   min_year, ...)
    [split]        kind, test_size, valid_size, seed, and test_n / min_train / cut by kind
    [splits.NAME]  several splits instead of one: each runs into DIR/NAME/ and may hold
                   `models = [labels]` and an `evaluation` table overriding [evaluation]
    [evaluation]   protocols = ["full", "sampled", "rated-items"], k = [5, 10, 20],
                   relevance = 4.0, rated_threshold (default: relevance), n_negatives = 100,
                   metrics = [...] (default: every metric the protocols give)
    [models]       include = "all" | "classic" | [names]: registry models with default parameters
    [models.LABEL] model = "neumf" (default: LABEL), then keyword parameters: fixed values
    [models.LABEL.grid]   parameter = [value, value, ...]: one run per combination
    [models.LABEL.quick]  parameters that --quick overrides for this model
    [quick.params] parameters that --quick overrides for every model that takes them
                   (default epochs = 1); --quick also runs only the first seed
    [output]       lists = true, recommend = { user = 1, k = 10 } (top-k of one user per run)

Grids: a value written directly in [models.LABEL] is always ONE value, even an array
(`layers = [128, 64, 32]` is NeuMF's tower); only arrays in [models.LABEL.grid] expand, one run per
element, so a grid over tuples is an array of arrays. A grid run is named
`LABEL[key=value,...]`, e.g. `ngcf[n_layers=2,sampling=full,loss=bpr]`.

Metrics: a name selects every key of that metric: "precision" gives precision@k (full protocol)
and precision_rated (rated-items); "ndcg" gives ndcg@k and sampled_ndcg@k; "rmse" gives rmse and,
with rated-items, rmse_scaled; "mse" is rmse squared. A model that can give none of the selected
metrics (a ranking-only model where only rating metrics are asked) is an error when the file names
it, and is skipped when it came from `include`.

Resuming: each finished run is written atomically to DIR/runs/<run>-seed<seed>.json (after its
lists), and a re-run skips the runs found there whose settings are unchanged; results.json and
results.csv are assembled from those records at the end.
"""

from __future__ import annotations

from movierec.experiment._parse import load_experiment, parse_experiment
from movierec.experiment._runner import (
    evaluate_run,
    load_data,
    make_experiment_split,
    protocol_record,
    run_experiment,
)
from movierec.experiment._spec import (
    PROTOCOLS,
    DatasetSpec,
    EvaluationSpec,
    Experiment,
    ExperimentError,
    ModelSpec,
    RunSpec,
    SplitSpec,
)

__all__ = [
    "PROTOCOLS", "DatasetSpec", "EvaluationSpec", "Experiment", "ExperimentError", "ModelSpec",
    "RunSpec", "SplitSpec", "evaluate_run", "load_data", "load_experiment",
    "make_experiment_split", "parse_experiment", "protocol_record", "run_experiment",
]
