"""The shared trainer parameters: declared, documented and validated once.

Every neural model takes some of these keyword arguments (with its own defaults, written in its
constructor's signature, which `Recommender.params()` reads); `Trainer` reads them from the
model. A model's docstring lists only its own parameters and refers here for these.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from movierec.models.base import check_param, is_int, is_number
from movierec.training._devices import is_device

__all__ = ["TRAINER_PARAMS", "TrainerParams", "check_trainer_params", "trainer_params_doc"]


class TrainerParams:
    """The hyper-parameters that `Trainer` reads from a model (a mixin of `TorchRecommender`).

    Each model declares the ones it has as keyword-only constructor arguments, with its own
    defaults, and validates them with `check_trainer_params`:

    Attributes:
        epochs: maximum passes over the training data (an integer ≥ 1); with validation data
            and `patience`, training may stop earlier.
        batch_size: training examples per optimizer step (an integer ≥ 1; what an example is —
            a rating, an item row, a sequence — is the model's choice). Under torchrun, the
            global batch split across processes.
        learning_rate: Adam step size (a number > 0).
        weight_decay: Adam weight decay of every parameter at every step (a number ≥ 0; with
            `sparse_updates`, of the touched rows only).
        patience: with validation data, stop after this many epochs without a better
            validation metric (RMSE for rating objectives, NDCG@10 for ranking ones) and keep
            the best epoch's weights (an integer ≥ 1; None: run every epoch, keep the best).
            Without validation data it is unused, and the Trainer logs a warning.
        grad_clip: clip the global gradient norm to this value before each step (a number
            > 0; None: no clipping).
        sparse_updates: train embedding tables with row-sparse gradients and
            `movierec.optim.LazyAdam`, so a step's cost follows the batch, not the tables
            (large catalogs); False: dense Adam. Not with `grad_clip`.
        device: "auto" (cuda when available), "cpu", "cuda" or "cuda:<n>"; a saved model
            loads on the loading machine's "auto" device.
    """

    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    patience: int | None
    grad_clip: float | None
    sparse_updates: bool
    device: str


#: name → (validity test given the value and all parameters, what is expected).
TRAINER_PARAMS: dict[str, tuple[Callable[[Any, Mapping[str, Any]], bool], str]] = {
    "epochs": (lambda x, p: is_int(x, 1), "an integer ≥ 1"),
    "batch_size": (lambda x, p: is_int(x, 1), "an integer ≥ 1"),
    "learning_rate": (lambda x, p: is_number(x) and x > 0, "a number > 0"),
    "weight_decay": (lambda x, p: is_number(x) and x >= 0, "a number ≥ 0"),
    "patience": (lambda x, p: x is None or is_int(x, 1), "an integer ≥ 1 or None"),
    "grad_clip": (lambda x, p: x is None or (is_number(x) and x > 0), "a number > 0 or None"),
    "sparse_updates": (lambda x, p: isinstance(x, bool) and not (x and p.get("grad_clip")),
                       "a bool (and False when grad_clip is set)"),
    "device": (lambda x, p: isinstance(x, str) and is_device(x),
               '"auto", "cpu", "cuda" or "cuda:<n>"'),
}


def check_trainer_params(params: Mapping[str, Any], *, skip: tuple[str, ...] = ()) -> None:
    """ValueError naming the first invalid shared trainer parameter present in `params`.

    Args:
        params: a constructor's arguments (e.g. its `locals()`); other names are ignored.
        skip: names the model checks itself (e.g. GLocal-K allows `epochs=0`).
    """
    for name, (ok, expected) in TRAINER_PARAMS.items():
        if name in params and name not in skip:
            value = params[name]
            check_param(name, value, bool(ok(value, params)), expected)


def trainer_params_doc(cls: type) -> str:
    """The shared trainer parameters `cls` takes, with its defaults, as a docstring paragraph.

    `TorchRecommender.__init_subclass__` appends it to each model's docstring.
    """
    try:
        signature = inspect.signature(cls.__init__)  # type: ignore[misc]
    except (TypeError, ValueError):
        return ""
    shared = [(name, p.default) for name, p in signature.parameters.items()
              if name in TRAINER_PARAMS and p.default is not inspect.Parameter.empty]
    if not shared:
        return ""
    defaults = ", ".join(f"{name}={default!r}" for name, default in shared)
    return ("Shared trainer parameters (documented in `movierec.training.TrainerParams`), "
            f"this model's defaults: {defaults}.")
