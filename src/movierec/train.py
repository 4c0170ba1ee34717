"""Compatibility module: the training code lives in the `movierec.training` package.

`from movierec.train import TorchRecommender, Trainer, ...` keeps working; new code imports
from `movierec.training`.
"""

from movierec.training import (
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    CHECKPOINT_JSON,
    LOSSES,
    TRAINER_PARAMS,
    NegativeSampler,
    Resume,
    Stage,
    TorchRecommender,
    Trainer,
    TrainerParams,
    bce_loss,
    bpr_loss,
    check_trainer_params,
    is_device,
    iterate_batches,
    mse_loss,
    resolve_device,
    sample_negatives,
    scaled_logit,
    seeded_torch,
    validation_metric,
)
from movierec.training._base import MODULE_PREFIX, Objective

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_JSON",
    "LOSSES",
    "MODULE_PREFIX",
    "NegativeSampler",
    "Objective",
    "Resume",
    "Stage",
    "TRAINER_PARAMS",
    "TorchRecommender",
    "Trainer",
    "TrainerParams",
    "bce_loss",
    "bpr_loss",
    "check_trainer_params",
    "is_device",
    "iterate_batches",
    "mse_loss",
    "resolve_device",
    "sample_negatives",
    "scaled_logit",
    "seeded_torch",
    "validation_metric",
]
