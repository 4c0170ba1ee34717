"""`TorchRecommender`: the base of every neural model — its maths in, the training loop out.

A neural model subclasses `TorchRecommender` and gives only its maths:

- `_prepare(train)`: learned attributes the module is built from (`n_users_`, `global_mean_`...);
- `build_module()`: a fresh `torch.nn.Module` from those attributes alone (so `load` rebuilds it);
- `batches(data, generator)`: tensor batches (default: shuffled slices of `training_data(train)`);
- `batch_loss(module, batch)`: a scalar tensor (not `loss`: that name is the hyper-parameter
  choosing the objective, "mse", "bpr" or "bce");
- `score_block(module, user_codes, item_codes)` and, for rating models, `predict_pairs(...)`.

Optional hooks: `pretraining` (fit what the module starts from, e.g. NeuMF's branches),
`initialize_module` (start from it) and `training_stages` (several stages, each with its own
epochs, optimizer and parameters, e.g. GLocal-K's full-batch L-BFGS stages). `Trainer` owns the
loop itself; see `movierec.training._trainer`.

Randomness: one CPU `torch.Generator` derived from `rng` drives initialisation, shuffling,
negative sampling and dropout. Modules use the global torch RNG (e.g. `nn.Dropout`), so it is
seeded from that generator only inside `torch.random.fork_rng`, which restores the caller's state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import torch
from torch import Tensor

from movierec import distributed
from movierec.data.dataset import Dataset
from movierec.models.base import Recommender
from movierec.random import RNGLike, derive_seed
from movierec.ranking import user_blocks
from movierec.training._devices import resolve_device, seeded_torch
from movierec.training._params import TrainerParams, trainer_params_doc
from movierec.training._sampling import iterate_batches
from movierec.training._trainer import Resume, Stage, Trainer

__all__ = ["MODULE_PREFIX", "Objective", "TorchRecommender", "validation_metric"]

MODULE_PREFIX = "module."
Objective = Literal["rating", "ranking"]


class TorchRecommender(TrainerParams, Recommender):
    """Base of every neural model: fit through `Trainer`, score through the module in blocks.

    Hyper-parameters are declared by each subclass's keyword-only `__init__`; the trainer reads
    the shared ones (`TrainerParams`: epochs, batch_size, learning_rate, weight_decay, patience,
    grad_clip, sparse_updates, device) and `loss` when present (defaults: weight_decay 0,
    patience/grad_clip None, device "auto", loss "mse").

    Learned state: `module_` (saved as its state_dict under "module.*" tensors), `device_`,
    `history_` (one dict per epoch: epoch, train_loss, valid_metric, metric, seconds),
    `best_epoch_`, and `resumed_from_epoch_` (the checkpoint's epoch that `fit(...,
    resume=True)` continued from; None for a fresh run).
    """

    trains_by_epochs: ClassVar[bool] = True
    score_block_size: ClassVar[int] = 1024

    module_: torch.nn.Module
    device_: torch.device
    history_: list[dict[str, Any]]
    best_epoch_: int
    resumed_from_epoch_: int | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The shared parameters are documented once (TrainerParams); each model's help lists
        # its own defaults for them, read from its signature.
        if cls.__doc__ and "__init__" in cls.__dict__ and (extra := trainer_params_doc(cls)):
            cls.__doc__ = cls.__doc__.rstrip() + "\n\n    " + extra + "\n"

    # --- to implement --------------------------------------------------------------------------
    def _prepare(self, train: Dataset) -> None:
        """Set learned attributes the module is built from (called after `_setup`)."""
        self.n_users_ = train.n_users
        self.n_items_ = train.n_items
        self.global_mean_ = float(train.ratings["rating"].to_numpy(np.float64).mean())

    def build_module(self) -> torch.nn.Module:
        """A fresh module built only from learned attributes set in `_prepare`."""
        raise NotImplementedError

    def training_data(self, train: Dataset) -> dict[str, Tensor]:
        """Whole-epoch tensors (CPU) that `batches` slices: user, item codes and ratings."""
        u, i = train.codes
        return {"user": torch.from_numpy(np.asarray(u, dtype=np.int64)),
                "item": torch.from_numpy(np.asarray(i, dtype=np.int64)),
                "rating": torch.from_numpy(np.array(train.ratings["rating"], dtype=np.float32))}

    def batches(self, data: dict[str, Tensor], generator: torch.Generator
                ) -> Iterator[dict[str, Tensor]]:
        """Mini-batches of one epoch (CPU tensors; the trainer moves them to the device)."""
        return iterate_batches(data, int(getattr(self, "batch_size", 1024)), generator)

    def batch_loss(self, module: torch.nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """Scalar training loss of one batch (module in train mode)."""
        raise NotImplementedError

    def score_block(self, module: torch.nn.Module, user_codes: Tensor,
                    item_codes: Tensor | None) -> Tensor:
        """Scores [users, items] (all items when `item_codes` is None); higher is better."""
        raise NotImplementedError

    def predict_pairs(self, module: torch.nn.Module, user_codes: Tensor, item_codes: Tensor
                      ) -> Tensor:
        """Ratings [n] for code pairs; codes are −1 for unknown users/items."""
        raise NotImplementedError(f"{type(self).__name__} does not predict ratings")

    @property
    def objective(self) -> Objective:
        """"rating" (early stopping on RMSE) for loss="mse", else "ranking" (NDCG@10)."""
        return "rating" if getattr(self, "loss", "mse") == "mse" else "ranking"

    # --- optional hooks ------------------------------------------------------------------------
    def pretraining(self, train: Dataset, valid: Dataset | None, *, rng: RNGLike,
                    progress: bool) -> int:
        """Fit what the module starts from, before it is built; return the training seed.

        The default fits nothing and returns `derive_seed(rng)`, the seed of the generator
        that initialises the module and drives the Trainer. NeuMF fits its GMF and MLP
        branches here (see `initialize_module`).
        """
        return derive_seed(rng)

    def initialize_module(self, module: torch.nn.Module) -> None:
        """Change a freshly built module (on the CPU) before training; default: nothing."""

    def training_stages(self) -> list[Stage]:
        """The stages the Trainer runs in order; default one stage of `epochs` Adam epochs."""
        return [Stage(epochs=int(getattr(self, "epochs", 10)))]

    def validation_metric(self, valid: Dataset, train: Dataset) -> tuple[str, float]:
        """The early-stopping metric on `valid` (name, value); see `validation_metric`."""
        return validation_metric(self, valid, train)

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: RNGLike = None,
            progress: bool = True, checkpoint_dir: str | Path | None = None,
            resume: Resume = False, on_epoch: Callable[[dict[str, Any]], None] | None = None
            ) -> Self:
        """Train the module with `Trainer`; returns self.

        Launched by torchrun (`WORLD_SIZE` > 1) or inside a caller's process group, every process
        joins the group and trains data-parallel (see `Trainer` and `movierec.distributed`): same
        seed on every rank, `batch_size` is the global batch, rank 0 writes the checkpoints.

        Args:
            train: training data.
            valid: optional validation data for early stopping (best weights are restored).
            rng: seed or Generator; the same seed gives the same weights on CPU.
            progress: show a progress bar (only on terminals).
            checkpoint_dir: write last.safetensors + last.json there after every epoch.
            resume: True: continue from the checkpoint in `checkpoint_dir` (MovieRecError when
                there is none; sets `resumed_from_epoch_`); "auto": continue when there is one,
                else start over; False: start over.
            on_epoch: called with each epoch's history record (see `Trainer`); an exception it
                raises stops training and propagates (how `movierec tune` prunes a trial).

        Raises:
            MovieRecError: `resume=True` and no checkpoint, or one of other data or model.
            ArtifactError: the checkpoint's tensors do not fit this model's parameters.
        """
        trainer = Trainer.for_model(self, progress=progress, checkpoint_dir=checkpoint_dir,
                                    resume=resume, on_epoch=on_epoch)
        trainer.check_resumable()  # before pre-training, which may take long
        seed = self.pretraining(train, valid, rng=rng, progress=progress)
        self._setup(train)
        self._prepare(train)
        # Under torchrun every process joins the group here; each uses its own GPU (LOCAL_RANK).
        distributed.init()
        self.device_ = distributed.local_device(
            resolve_device(str(getattr(self, "device", "auto"))))
        generator = torch.Generator().manual_seed(seed)
        with seeded_torch(generator, self.device_):
            module = self.build_module()
        self.initialize_module(module)
        self.module_ = module.to(self.device_)
        trainer.fit(self, train, valid, generator, self.training_stages())
        return self

    # --- scoring -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _eval(self) -> Iterator[torch.nn.Module]:
        self._check_fitted()
        module = self.module_
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                yield module
        finally:
            module.train(was_training)

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        n_cols = self.n_items if item_codes is None else len(item_codes)
        out = np.empty((len(user_codes), n_cols), dtype=np.float32)
        with self._eval() as module:
            items = None if item_codes is None else _tensor(item_codes, self.device_)
            for blk in user_blocks(len(user_codes), self.score_block_size):
                users = _tensor(user_codes[blk], self.device_)
                out[blk] = self.score_block(module, users, items).float().cpu().numpy()
        return out

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        out = np.empty(len(user_codes), dtype=np.float32)
        with self._eval() as module:
            for blk in user_blocks(len(user_codes), 1 << 16):
                u = _tensor(user_codes[blk], self.device_)
                i = _tensor(item_codes[blk], self.device_)
                out[blk] = self.predict_pairs(module, u, i).float().cpu().numpy()
        return out

    # --- persistence ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        state = super()._state()
        module = state.pop("module_")
        state["device_"] = str(state["device_"])
        for key, value in module.state_dict().items():
            state[MODULE_PREFIX + key] = value.detach().cpu().numpy()
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        weights = {k[len(MODULE_PREFIX):]: torch.from_numpy(np.array(v))
                   for k, v in state.items() if k.startswith(MODULE_PREFIX)}
        super()._restore({k: v for k, v in state.items() if not k.startswith(MODULE_PREFIX)})
        # The machine that loads decides the device: a model trained on CUDA loads on a CPU box.
        self.device_ = resolve_device(str(getattr(self, "device", "auto")))
        module = self.build_module()
        module.load_state_dict(weights)
        self.module_ = module.to(self.device_)


def _tensor(codes: np.ndarray, device: torch.device) -> Tensor:
    return torch.from_numpy(np.asarray(codes, dtype=np.int64)).to(device)


# --- validation --------------------------------------------------------------------------------
def validation_metric(model: TorchRecommender, valid: Dataset, train: Dataset
                      ) -> tuple[str, float]:
    """("rmse", value) for rating objectives, ("ndcg@10", value) for ranking ones.

    Both come from `movierec.evaluate` on the split (train, test=valid): RMSE over every
    validation row (`rating_errors`; unknown users or items get the model's fallback), NDCG@10
    of `evaluate(..., ks=(10,), relevance=0)`: every training item outside the user's training
    history is ranked (full ranking) for the validation users known to the model, and every
    validation item is relevant. 0.0 when no validation user is known to the model.

    Data-parallel, `evaluate` shards the users (or rows) across the processes and every process
    gets the same value, so all take the same early-stopping decision.
    """
    from movierec.evaluate import evaluate, rating_errors
    from movierec.split import Split

    split = Split(train=train, test=valid, name="validation")
    if model.objective == "rating":
        return "rmse", float(rating_errors(model, split)["rmse"])
    value = float(evaluate(model, split, ks=(10,), relevance=0.0).summary["ndcg@10"])
    return "ndcg@10", value if np.isfinite(value) else 0.0
