"""The training package: the one loop of every neural model and what it is made of.

- `TorchRecommender` (`_base`): the base class; a model gives its maths (module, batches, loss,
  scores) and optional hooks (pre-training, module initialisation, stages).
- `Trainer`, `Stage` (`_trainer`): the only training loop — optimizer steps, clipping, early
  stopping on `movierec.evaluate`, progress, checkpoints and resume, data-parallel training.
- `TrainerParams` (`_params`): the shared trainer parameters, documented and checked once.
- losses (`_losses`), negative sampling and batches (`_sampling`), devices (`_devices`),
  data-parallel gradient sums (`_parallel`), the checkpoint format (`_checkpoint`).
"""

from movierec.training._base import TorchRecommender, validation_metric
from movierec.training._checkpoint import CHECKPOINT, CHECKPOINT_FORMAT, CHECKPOINT_JSON
from movierec.training._devices import is_device, resolve_device, seeded_torch
from movierec.training._losses import LOSSES, bce_loss, bpr_loss, mse_loss, scaled_logit
from movierec.training._params import TRAINER_PARAMS, TrainerParams, check_trainer_params
from movierec.training._sampling import NegativeSampler, iterate_batches, sample_negatives
from movierec.training._trainer import Resume, Stage, Trainer

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_JSON",
    "LOSSES",
    "NegativeSampler",
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
