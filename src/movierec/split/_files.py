"""ML-100K's predefined folds and user-supplied train/test files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.dataset import Dataset
from movierec.errors import SplitError
from movierec.random import RNGLike
from movierec.split._base import PREDEFINED_FOLDS, Split, _check_fraction, _round_half_up, _seeded
from movierec.split._leakage import check_leakage


def _read_fold(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise SplitError(f"predefined split file not found: {path}")
    return pd.read_csv(
        path,
        sep="\t",
        header=None,
        names=["user_id", "item_id", "rating", "timestamp"],
        dtype={
            "user_id": np.int32,
            "item_id": np.int32,
            "rating": np.float32,
            "timestamp": np.int64,
        },
    )


def predefined_split(
    ds: Dataset,
    fold: str = "u1",
    *,
    data_dir: str | Path,
    valid_size: float = 0.0,
    rng: RNGLike = None,
) -> Split:
    """One of ML-100K's shipped folds (u1..u5: 80/20 five-fold; ua, ub: 10 test ratings per user).

    Reads `<data_dir>/<fold>.base` and `<fold>.test` (or the same under `<data_dir>/ml-100k/`),
    tab-separated user, item, rating, timestamp without header.

    Args:
        ds: the ML-100K dataset; every row of the fold files must be one of its ratings.
        fold: "u1".."u5", "ua" or "ub". Default "u1".
        data_dir: folder holding the fold files, or its parent.
        valid_size: fraction of the fold's training part moved to validation at random, in
            [0, 1). Default 0 (none).
        rng: seed or Generator for the validation carve-out (unused when valid_size is 0).

    Returns:
        Split named after the fold, whose parts keep `ds`'s side tables.

    Raises:
        SplitError: unknown fold, missing files (naming the path), or `ds` is not ML-100K.
    """
    if fold not in PREDEFINED_FOLDS:
        raise SplitError(f"fold must be one of {list(PREDEFINED_FOLDS)}, got {fold!r}")
    valid_size = _check_fraction("valid_size", valid_size, allow_zero=True)
    folder = Path(data_dir)
    if not (folder / f"{fold}.base").is_file() and (folder / "ml-100k" / f"{fold}.base").is_file():
        folder = folder / "ml-100k"
    base, test = _read_fold(folder / f"{fold}.base"), _read_fold(folder / f"{fold}.test")
    keys = ["user_id", "item_id", "timestamp"]
    both = pd.concat([base, test], ignore_index=True)[keys]
    found = both.merge(ds.ratings[keys].drop_duplicates(), on=keys, how="left", indicator=True)
    missing = int((found["_merge"] == "left_only").sum())
    if missing or len(both) != ds.n_ratings:
        raise SplitError(
            f"dataset {ds.name!r} ({ds.n_ratings} ratings) is not the ML-100K "
            f"release of {folder}: {missing} of {len(both)} fold rows are not in it"
        )
    params: dict[str, Any] = {
        "fold": fold,
        "path": str(folder),
        "valid_size": valid_size,
        "time_aware": False,
    }
    valid = None
    if valid_size:
        gen, params["seed"] = _seeded(rng)
        n_valid = int(np.clip(_round_half_up(valid_size * len(base)), 1, len(base) - 1))
        is_valid = np.zeros(len(base), dtype=bool)
        is_valid[gen.permutation(len(base))[:n_valid]] = True
        valid, base = ds.with_ratings(base[is_valid]), base[~is_valid]
    split = Split(
        train=ds.with_ratings(base),
        test=ds.with_ratings(test),
        valid=valid,
        name=fold,
        params=params,
    )
    check_leakage(split)
    return split


def files_split(
    train_path: str | Path,
    test_path: str | Path,
    valid_path: str | Path | None = None,
    *,
    base: Dataset | None = None,
    **read_kwargs: Any,
) -> Split:
    """A split the user brings as files, read with `movierec.data.files.load_ratings_file`.

    Args:
        train_path: rating file of the training part.
        test_path: rating file of the test part.
        valid_path: optional rating file of the validation part.
        base: the release the files come from; when given, every part takes its side tables
            (items, users, tags, links) and name.
        **read_kwargs: passed to `load_ratings_file` (sep, header, columns, rating_scale, name).

    Returns:
        Split named "files"; `check_leakage` rejects files that share (user, item, time) rows.
    """
    from movierec.data.files import load_ratings_file

    paths = {"train": train_path, "test": test_path, "valid": valid_path}
    parts: dict[str, Dataset | None] = {}
    for label, path in paths.items():
        if path is None:
            parts[label] = None
            continue
        part = load_ratings_file(path, **read_kwargs)
        parts[label] = part if base is None else base.with_ratings(part.ratings)
    train, test = parts["train"], parts["test"]
    assert train is not None and test is not None
    params = {
        "train_path": str(train_path),
        "test_path": str(test_path),
        "valid_path": None if valid_path is None else str(valid_path),
        "time_aware": False,
    }
    split = Split(train=train, test=test, valid=parts["valid"], name="files", params=params)
    check_leakage(split)
    return split


# --- dispatcher --------------------------------------------------------------------------------
