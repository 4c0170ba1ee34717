"""Compatibility module: the training code lives in the `movierec.training` package.

`from movierec.train import TorchRecommender, Trainer, ...` keeps working; new code imports
from `movierec.training`.
"""

from movierec.training import *  # noqa: F403 - the package's public names, re-exported
from movierec.training import __all__ as _package_all
from movierec.training._base import MODULE_PREFIX, Objective

__all__ = [*_package_all, "MODULE_PREFIX", "Objective"]
