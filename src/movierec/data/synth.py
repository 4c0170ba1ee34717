"""Deprecated: the former home of `write_release_like`; import from `movierec.data.synthetic`.

Every name of `movierec.data.synthetic` (and of its release-size part) still imports from here,
with a DeprecationWarning naming the new module.
"""

from __future__ import annotations

import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from movierec.data import synthetic
    from movierec.data.synthetic import _release

    for module in (synthetic, _release):
        if hasattr(module, name):
            warnings.warn(f"movierec.data.synth is deprecated; import {name} from "
                          "movierec.data.synthetic", DeprecationWarning, stacklevel=2)
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
