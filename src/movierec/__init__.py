"""movierec: personalized movie recommendation on MovieLens-style rating data.

Submodules are imported lazily: `import movierec` is cheap and pulls in no heavy dependency.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {"data", "models", "split", "metrics", "evaluate", "results", "benchmark",
               "artifact", "errors", "random", "io", "train", "explain", "fold_in", "analysis",
               "plots", "report", "serve", "ann"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"movierec.{name}")
    raise AttributeError(f"module 'movierec' has no attribute {name!r}")


__all__ = ["__version__", *sorted(_SUBMODULES)]
