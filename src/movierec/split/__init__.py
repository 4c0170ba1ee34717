"""Leak-free splits of a Dataset into train / (valid) / test.

Every splitter is a function that returns a `Split` whose `name` and `params` record how it was
made (for results.json), and calls `check_leakage` before returning. Stochastic splitters take
keyword `rng` (an int seed, a Generator, or None); with None a fresh seed is drawn and recorded in
`params["seed"]`, so every split can be reproduced from its record.

Shared rules:

* Parts keep the rows of the source dataset unchanged, in source order, and the source's side
  tables (`Dataset.with_ratings`). Users or items that occur in test/valid but not in train are
  kept and counted in `Split.report`, never dropped.
* Counts are rounded half up (``floor(x + 0.5)``): 2.5 ratings -> 3.
* `valid_size` is a fraction of the *training part* (what the test split left), carved out with the
  same kind of rule as the test part: random for random splits, latest for time-aware splits.
"""

from __future__ import annotations

from typing import Any

from movierec.data.dataset import Dataset
from movierec.errors import SplitError
from movierec.random import RNGLike
from movierec.split._base import PREDEFINED_FOLDS, SPLIT_KINDS, Split
from movierec.split._files import files_split, predefined_split
from movierec.split._folds import FOLD_KINDS, FOLD_SETS, fold_labels, kfold_split
from movierec.split._leakage import check_leakage
from movierec.split._strategies import (
    carve_validation,
    leave_one_out,
    random_split,
    time_split,
    user_random_split,
    user_time_split,
)


def make_split(
    ds: Dataset,
    kind: str,
    *,
    test_size: float = 0.2,
    valid_size: float = 0.0,
    rng: RNGLike = None,
    **kw: Any,
) -> Split:
    """Split `ds` with the strategy named `kind` (one of `SPLIT_KINDS`).

    Args:
        ds: the dataset to split.
        kind: "random", "user-random", "user-time", "time", "loo", or a predefined ML-100K fold
            "u1".."u5", "ua", "ub" (these need `data_dir=`).
        test_size: test fraction; ignored by "loo" and the predefined folds. Default 0.2.
        valid_size: validation fraction of the training part; for "loo" any value > 0 means one
            validation rating per user. Default 0.
        rng: seed or Generator, passed to the strategies that use one.
        **kw: strategy-specific options (min_train, test_n, cut, valid, data_dir; fold and
            folds for one fold of a K-fold cross-validation, see `kfold_split`).
    """
    if "folds" in kw or "fold" in kw:
        if "folds" not in kw or "fold" not in kw:
            raise SplitError("a cross-validation fold needs both fold= and folds=")
        return kfold_split(ds, kind, fold=kw.pop("fold"), folds=kw.pop("folds"),
                           valid_size=valid_size, rng=rng, **kw)
    if kind == "random":
        return random_split(ds, test_size=test_size, valid_size=valid_size, rng=rng, **kw)
    if kind == "user-random":
        return user_random_split(ds, test_size=test_size, valid_size=valid_size, rng=rng, **kw)
    if kind == "user-time":
        return user_time_split(ds, test_size=test_size, valid_size=valid_size, rng=rng, **kw)
    if kind == "time":
        return time_split(ds, test_size=test_size, valid_size=valid_size, **kw)
    if kind == "loo":
        valid = bool(kw.pop("valid", valid_size > 0))
        return leave_one_out(ds, valid=valid, rng=rng, **kw)
    if kind in PREDEFINED_FOLDS:
        if "data_dir" not in kw:
            raise SplitError(f"split kind {kind!r} reads ML-100K's fold files: pass data_dir=")
        return predefined_split(ds, kind, valid_size=valid_size, rng=rng, **kw)
    raise SplitError(f"unknown split kind {kind!r}; expected one of {SPLIT_KINDS}")


# --- leakage -----------------------------------------------------------------------------------


__all__ = [
    "FOLD_KINDS",
    "FOLD_SETS",
    "SPLIT_KINDS",
    "Split",
    "SplitError",
    "carve_validation",
    "check_leakage",
    "files_split",
    "fold_labels",
    "kfold_split",
    "leave_one_out",
    "make_split",
    "predefined_split",
    "random_split",
    "time_split",
    "user_random_split",
    "user_time_split",
]
