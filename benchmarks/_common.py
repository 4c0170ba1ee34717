"""Helpers shared by the benchmark scripts (imported as `_common`: scripts run from this folder)."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

__all__ = ["json_default", "ml100k", "version"]


def version(module: str) -> str | None:
    """The installed version of `module` ("unknown" without `__version__`), None if absent."""
    if importlib.util.find_spec(module) is None:
        return None
    return str(getattr(__import__(module), "__version__", "unknown"))


def json_default(obj: Any) -> Any:
    """`json.dumps(default=...)` for result files: numpy scalars and arrays, else `str(obj)`."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def ml100k(data_dir: Any = None) -> tuple[Any, Any]:
    """(ML-100K Dataset, its release folder), for the scripts that split it by `u1` files."""
    from movierec.data import load
    from movierec.data.movielens import resolve
    from movierec.data.releases import RELEASES

    folder = resolve(RELEASES["ml-100k"], data_dir=data_dir)
    return load("ml-100k", data_dir=folder.parent), folder
