"""Leak-free splits of a Dataset into train / (valid) / test.

Every splitter is a function that takes keyword `rng` and returns a `Split`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from movierec.data.dataset import Dataset
from movierec.errors import SplitError


@dataclass(frozen=True, eq=False)
class Split:
    """Train / optional validation / test parts of one dataset.

    Attributes:
        train, test, valid: Datasets sharing the side tables of the source dataset.
        name: the strategy ("random", "user-random", "user-time", "time", "loo", "u1", "files").
        params: what the strategy was called with (fractions, seed, ...), for results.json.
    """

    train: Dataset
    test: Dataset
    valid: Dataset | None = None
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def report(self) -> dict[str, int]:
        """Counts of test (and valid) rows, users and items unseen in train: reported, not dropped."""
        out: dict[str, int] = {"train_ratings": self.train.n_ratings,
                               "test_ratings": self.test.n_ratings}
        parts = [("test", self.test)] + ([("valid", self.valid)] if self.valid is not None else [])
        if self.valid is not None:
            out["valid_ratings"] = self.valid.n_ratings
        for label, part in parts:
            users = part.ratings["user_id"].to_numpy()
            items = part.ratings["item_id"].to_numpy()
            new_u = self.train.user_vocab.codes(users, missing="negative") < 0
            new_i = self.train.item_vocab.codes(items, missing="negative") < 0
            out[f"{label}_unseen_users"] = int(len(np.unique(users[new_u])))
            out[f"{label}_unseen_items"] = int(len(np.unique(items[new_i])))
            out[f"{label}_rows_with_unseen"] = int((new_u | new_i).sum())
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for results files."""
        return {"name": self.name, **self.params, **self.report}


__all__ = ["Split", "SplitError"]
