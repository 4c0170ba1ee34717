"""Hyper-parameter search spaces, declared by each model next to its code.

A model lists the parameters worth tuning as a class attribute::

    search_space: ClassVar[SearchSpace] = {
        "learning_rate": Float(1e-4, 1e-2, log=True),
        "embedding_size": Int(16, 256, log=True),
        "layers": Choice([(64, 32), (128, 64, 32)]),
    }

This module imports nothing heavy; `movierec.tune` turns a space into Optuna suggestions. Every
parameter not in the space keeps its constructor default (or the value fixed by the user).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Choice", "Float", "Int", "SearchSpace", "check_space"]


@dataclass(frozen=True)
class Float:
    """A real parameter in [low, high], sampled on a log scale when `log`."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high):
            raise ValueError(f"Float({self.low}, {self.high}): need finite low ≤ high")
        if self.log and self.low <= 0:
            raise ValueError(f"Float({self.low}, {self.high}, log=True): need low > 0")

    def contains(self, value: Any) -> bool:
        """Whether `value` is a number in [low, high]."""
        return isinstance(value, int | float) and self.low <= value <= self.high


@dataclass(frozen=True)
class Int:
    """An integer parameter in [low, high] (a multiple of `step` from low), log scale if `log`."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def __post_init__(self) -> None:
        if self.low > self.high or self.step < 1:
            raise ValueError(f"Int({self.low}, {self.high}, step={self.step}): need low ≤ high, "
                             "step ≥ 1")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError(f"Int({self.low}, {self.high}, log=True): need low ≥ 1 and step 1")

    def contains(self, value: Any) -> bool:
        """Whether `value` is an int (not a bool) in [low, high]."""
        return (isinstance(value, int) and not isinstance(value, bool)
                and self.low <= value <= self.high)


@dataclass(frozen=True)
class Choice:
    """One of a fixed list of values (any JSON-like values: numbers, strings, bools, tuples)."""

    choices: Sequence[Any]

    def __post_init__(self) -> None:
        if len(self.choices) == 0:
            raise ValueError("Choice([]): need at least one choice")
        object.__setattr__(self, "choices", tuple(self.choices))

    def contains(self, value: Any) -> bool:
        """Whether `value` is one of the choices."""
        return value in self.choices


SearchSpace = Mapping[str, Float | Int | Choice]


def check_space(model: str, space: SearchSpace, param_names: Sequence[str]) -> None:
    """Raise ValueError when a space names a parameter the model does not take."""
    unknown = sorted(set(space) - set(param_names))
    if unknown:
        raise ValueError(f"model {model!r}: search space names unknown parameter(s) {unknown}")
