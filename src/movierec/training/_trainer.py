"""`Trainer`: the one training loop of every neural model, in stages.

The Trainer owns the optimizer, zero_grad/backward/step, clipping, the progress bar, early
stopping on a validation metric (RMSE for rating objectives, NDCG@10 for ranking ones, through
`movierec.evaluate`) with the best weights restored, per-epoch checkpoints (safetensors + JSON,
atomic) and exact resume, and data-parallel training under torchrun.

A model trains in one stage of Adam epochs by default; `TorchRecommender.training_stages` may
return several `Stage`s, each with its own epochs, parameters, optimizer and patience, run in
order with one history, one best epoch and one checkpoint file (GLocal-K: L-BFGS pre-training of
the autoencoder, then fine-tuning through the global kernel).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import torch
from torch import Tensor

from movierec import distributed
from movierec.data.dataset import Dataset
from movierec.errors import MovieRecError
from movierec.optim import LazyAdam, mark_sparse
from movierec.training._checkpoint import (
    CHECKPOINT,
    RunState,
    found_everywhere,
    load_checkpoint,
    save_checkpoint,
)
from movierec.training._devices import seeded_torch
from movierec.training._parallel import broadcast_module, shard, sum_gradients

if TYPE_CHECKING:
    from movierec.training._base import TorchRecommender

__all__ = ["Resume", "Stage", "Trainer"]

logger = logging.getLogger(__name__)

#: `fit(resume=...)`: True continues from the checkpoint (an error when there is none), "auto"
#: continues when there is one and starts over otherwise, False starts over.
Resume = bool | Literal["auto"]

#: `Stage.patience` default: the Trainer's (the model's `patience`).
TRAINER: Final = "trainer"


@dataclass(frozen=True)
class Stage:
    """One stage of training: `epochs` passes with one optimizer over some of the parameters.

    Attributes:
        epochs: passes over the training data in this stage (≥ 0; 0 skips the stage). Epochs
            are numbered across stages.
        name: recorded as "stage" in each history record when set (None: no such key).
        learning_rate: this stage's step size (None: the Trainer's).
        parameters: the parameters the stage optimizes, from the module (None: all).
        optimizer: factory from those parameters to an optimizer (None: Adam, or LazyAdam with
            `sparse_updates`, at the learning rate and the Trainer's weight decay).
        full_batch: each batch is one `optimizer.step(closure)` (the closure clears the
            gradients, computes the loss and its gradients and returns the loss; the step
            returns the loss it ends at), as L-BFGS needs. Data-parallel, such a stage is
            computed whole by every process (the same deterministic result everywhere).
        patience: early stopping within this stage, counted from its start ("trainer": the
            Trainer's; None: never stop early). The best epoch is chosen over every stage.
        on_start: called when the stage starts (or resumes), and after training when the
            kept best weights come from this stage (e.g. a flag that scoring reads).
        record: extra history fields of an epoch from its mean training loss (may replace
            `train_loss`, e.g. by a per-rating value).
        hint: the advice in the error raised when the training loss is not finite.
    """

    epochs: int
    name: str | None = None
    learning_rate: float | None = None
    parameters: Callable[[torch.nn.Module], list[torch.nn.Parameter]] | None = None
    optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer] | None = None
    full_batch: bool = False
    patience: int | None | Literal["trainer"] = TRAINER
    on_start: Callable[[], None] | None = None
    record: Callable[[float], Mapping[str, Any]] | None = None
    hint: str = "lower learning_rate or set grad_clip"


class Trainer:
    """The epoch loop shared by every `TorchRecommender`.

    Args:
        epochs: maximum number of passes over the training data (≥ 1) of the default stage.
        learning_rate: Adam step size (default 1e-3).
        weight_decay: Adam L2 weight decay (default 0).
        patience: stop after this many epochs without a better validation metric (None: never
            stop early); only used when `fit` gets validation data.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        progress: show a tqdm bar with the running loss (only on terminals; False: silent).
        checkpoint_dir: folder for `last.safetensors` (weights, best weights, optimizer and RNG
            state; its JSON header is the commit record) and a readable copy `last.json`,
            both replaced atomically after every epoch. None: no checkpoints.
        resume: True: continue from the checkpoint in `checkpoint_dir` (MovieRecError when
            there is none); the final weights then equal those of an uninterrupted run with the
            same seed (on CPU). "auto": continue when there is a checkpoint, else start over.
        on_epoch: called after every epoch (and its checkpoint) with the epoch's record
            {epoch, train_loss, valid_metric, metric, seconds}; an exception it raises ends
            training and propagates.
        sparse_updates: train the module's embedding tables with row-sparse gradients and
            `movierec.optim.LazyAdam` (only the rows a batch touches are updated, and decayed);
            the cost of a step then follows the batch instead of the tables (default False:
            dense `torch.optim.Adam`). Not with `grad_clip`.

    Data-parallel (several processes, see `movierec.distributed`): every process draws the same
    global batches from the shared seed (same permutation, same negatives), computes the loss on
    its contiguous 1/world slice of each, and the gradients are summed across processes weighted
    by slice size — the gradient of the global batch's mean loss, so `batch_size` is the global
    batch. Gradients are all-reduced by hand rather than by wrapping the module in
    DistributedDataParallel, because models compute losses through module methods other than
    `forward` (`user_terms`, `item_terms`...), which DDP's reducer does not see. Validation
    (`movierec.evaluate`) is sharded by users, every process takes the same early-stopping
    decision, and only rank 0 writes checkpoints and shows progress; `on_epoch` runs on every
    process.
    """

    def __init__(self, *, epochs: int, learning_rate: float = 1e-3, weight_decay: float = 0.0,
                 patience: int | None = None, grad_clip: float | None = None,
                 progress: bool = True, checkpoint_dir: str | Path | None = None,
                 resume: Resume = False,
                 on_epoch: Callable[[dict[str, Any]], None] | None = None,
                 sparse_updates: bool = False) -> None:
        if resume not in (True, False, "auto"):
            raise ValueError(f"resume must be True, False or 'auto', got {resume!r}")
        if resume and checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        if sparse_updates and grad_clip is not None:
            raise ValueError("sparse_updates cannot be combined with grad_clip (the global norm "
                             "of row-sparse gradients is not clipped here)")
        self.sparse_updates = sparse_updates
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.grad_clip = grad_clip
        self.progress = progress
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.resume = resume
        self.on_epoch = on_epoch

    @classmethod
    def for_model(cls, model: TorchRecommender, **kwargs: Any) -> Trainer:
        """A Trainer with the model's shared trainer parameters (`TrainerParams`).

        `kwargs` are the run's settings: progress, checkpoint_dir, resume, on_epoch.
        """
        return cls(sparse_updates=bool(getattr(model, "sparse_updates", False)),
                   epochs=int(getattr(model, "epochs", 10)),
                   learning_rate=float(getattr(model, "learning_rate", 1e-3)),
                   weight_decay=float(getattr(model, "weight_decay", 0.0)),
                   patience=getattr(model, "patience", None),
                   grad_clip=getattr(model, "grad_clip", None), **kwargs)

    def fit(self, model: TorchRecommender, train: Dataset, valid: Dataset | None,
            generator: torch.Generator, stages: Iterable[Stage] | None = None) -> None:
        """Train `model.module_` in place through `stages` (default: one of `epochs`).

        Sets `model.history_`, `model.best_epoch_` and `model.resumed_from_epoch_` (the
        checkpoint's epoch it continued from, None when it started afresh).
        """
        stages = list(stages) if stages is not None else [Stage(epochs=self.epochs)]
        module = model.module_
        if valid is None and any(self._patience(s) is not None for s in stages):
            logger.warning("%s: no validation data, so no early stopping: it trains all %d "
                           "epochs (patience=%s unused); pass a validation part (the CLI's "
                           "--valid-size)", type(model).__name__,
                           sum(s.epochs for s in stages), self.patience)
        sparse_layers = mark_sparse(module) if self.sparse_updates else []
        try:
            self._fit(model, module, train, valid, generator, stages)
        finally:
            mark_sparse(torch.nn.ModuleList(sparse_layers), False)

    def check_resumable(self) -> None:
        """Raise MovieRecError before any work when `resume=True` finds no checkpoint.

        This process's view only; `fit` checks again, across processes.
        """
        if self.resume is True and self.checkpoint_dir is not None \
                and not (self.checkpoint_dir / CHECKPOINT).is_file():
            raise self._no_checkpoint()

    def _no_checkpoint(self) -> MovieRecError:
        return MovieRecError(f"--resume: no checkpoint in {self.checkpoint_dir} ({CHECKPOINT} is "
                             "missing); train without --resume to start over")

    def _patience(self, stage: Stage) -> int | None:
        return self.patience if stage.patience == TRAINER else stage.patience

    def _optimizer(self, module: torch.nn.Module, stage: Stage) -> torch.optim.Optimizer:
        params = list(module.parameters()) if stage.parameters is None else stage.parameters(module)
        if stage.optimizer is not None:
            return stage.optimizer(params)
        lr = self.learning_rate if stage.learning_rate is None else stage.learning_rate
        if self.sparse_updates:
            return LazyAdam(params, lr=lr, weight_decay=self.weight_decay)
        return torch.optim.Adam(params, lr=lr, weight_decay=self.weight_decay)

    def _restore(self, model: TorchRecommender, module: torch.nn.Module, stages: list[Stage],
                 generator: torch.Generator) -> tuple[RunState, torch.optim.Optimizer | None]:
        """The loop state (and the current stage's optimizer) of a checkpoint, or a fresh one."""
        if not self.resume or self.checkpoint_dir is None:
            return RunState(), None
        if not found_everywhere(self.checkpoint_dir / CHECKPOINT):
            if self.resume is True:
                raise self._no_checkpoint()
            logger.info("no checkpoint in %s: training %s from scratch", self.checkpoint_dir,
                        type(model).__name__)
            return RunState(), None

        def optimizer_for(index: int) -> torch.optim.Optimizer:
            if not 0 <= index < len(stages):
                raise ValueError(f"stage {index} of a model trained in {len(stages)} stage(s)")
            return self._optimizer(module, stages[index])

        run, optimizer = load_checkpoint(self.checkpoint_dir, model, optimizer_for, generator)
        total = sum(s.epochs for s in stages)
        logger.info("resuming %s from %s after epoch %d of %d%s", type(model).__name__,
                    self.checkpoint_dir / CHECKPOINT, run.epoch, total,
                    " (it had stopped early)" if run.stopped else "")
        return run, optimizer

    def _fit(self, model: TorchRecommender, module: torch.nn.Module, train: Dataset,
             valid: Dataset | None, generator: torch.Generator, stages: list[Stage]) -> None:
        from tqdm.auto import tqdm

        data = model.training_data(train)
        batch_size = getattr(model, "batch_size", None)
        n_rows = len(next(iter(data.values())))
        n_batches = math.ceil(n_rows / int(batch_size)) if batch_size else 1
        run, optimizer = self._restore(model, module, stages, generator)
        model.resumed_from_epoch_ = run.epoch if optimizer is not None else None
        broadcast_module(module)
        higher = model.objective == "ranking"
        show = self.progress and distributed.is_main()
        total = sum(s.epochs for s in stages)
        bar = tqdm(total=total, initial=min(run.epoch, total), unit="epoch",
                   desc=type(model).__name__, disable=None if show else True, leave=False)
        try:
            offset = 0
            for index, stage in enumerate(stages):
                first, last = offset + 1, offset + stage.epochs
                offset = last
                if index < run.stage or stage.epochs == 0 or run.epoch >= last:
                    continue
                if index > run.stage or optimizer is None:  # a stage entered afresh
                    if index > run.stage:
                        run.stage, run.bad_epochs, run.stopped = index, 0, False
                    optimizer = self._optimizer(module, stage)
                if run.stopped:
                    continue
                if stage.on_start is not None:
                    stage.on_start()
                patience = self._patience(stage)
                for epoch in range(max(first, run.epoch + 1), last + 1):
                    if run.stopped:
                        break
                    t0 = time.perf_counter()
                    train_loss = self._epoch(model, module, optimizer, stage, data, generator,
                                             bar, n_batches, epoch)
                    record: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss,
                                              "valid_metric": None}
                    if stage.name is not None:
                        record["stage"] = stage.name
                    if stage.record is not None:
                        record.update(stage.record(train_loss))
                    if valid is not None:
                        name, value = model.validation_metric(valid, train)
                        record.update(valid_metric=value, metric=name)
                        better = run.best_metric is None or (
                            value > run.best_metric if higher else value < run.best_metric)
                        if better:
                            run.best_metric, run.best_epoch, run.bad_epochs = value, epoch, 0
                            run.best_stage = index
                            run.best_weights = {k: v.detach().clone()
                                                for k, v in module.state_dict().items()}
                        else:
                            run.bad_epochs += 1
                        run.stopped = patience is not None and run.bad_epochs >= patience
                    record["seconds"] = time.perf_counter() - t0
                    run.history.append(record)
                    run.epoch = epoch
                    bar.update(1)
                    bar.set_postfix(_postfix(record), refresh=False)
                    logger.info("epoch %d: %s", epoch, _postfix(record))
                    if self.checkpoint_dir is not None and distributed.is_main():
                        save_checkpoint(self.checkpoint_dir, model, optimizer, generator, run)
                    if self.on_epoch is not None:
                        self.on_epoch(dict(record))
        finally:
            bar.close()
        if run.best_weights is not None:
            module.load_state_dict(run.best_weights)
            best = stages[run.best_stage] if run.best_stage < len(stages) else None
            if best is not None and best.on_start is not None:
                best.on_start()
        model.history_ = run.history
        model.best_epoch_ = run.best_epoch if run.best_weights is not None else run.epoch

    def _epoch(self, model: TorchRecommender, module: torch.nn.Module,
               optimizer: torch.optim.Optimizer, stage: Stage, data: dict[str, Tensor],
               generator: torch.Generator, bar: Any, n_batches: int, epoch: int) -> float:
        module.train()
        if stage.full_batch:
            return self._full_batch_epoch(model, module, optimizer, stage, data, generator,
                                          epoch)
        if distributed.is_distributed():
            return self._parallel_epoch(model, module, optimizer, stage, data, generator, bar,
                                        n_batches, epoch)
        device = model.device_
        total, count = 0.0, 0
        with seeded_torch(generator, device):
            for b, batch in enumerate(model.batches(data, generator)):
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                optimizer.zero_grad(set_to_none=True)
                loss = model.batch_loss(module, batch)
                value = float(loss.detach())
                _check_finite(model, stage, value, b, epoch)
                loss.backward()
                if self.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)
                optimizer.step()
                size = len(next(iter(batch.values())))
                total, count = total + value * size, count + size
                if b % 25 == 0 and not bar.disable:
                    bar.set_postfix(loss=f"{total / count:.4f}", batch=f"{b + 1}/{n_batches}")
        return total / max(count, 1)

    def _full_batch_epoch(self, model: TorchRecommender, module: torch.nn.Module,
                          optimizer: torch.optim.Optimizer, stage: Stage,
                          data: dict[str, Tensor], generator: torch.Generator, epoch: int
                          ) -> float:
        """One `optimizer.step(closure)` per batch; the loss the step ends at (its mean)."""
        device = model.device_
        values: list[float] = []
        with seeded_torch(generator, device):
            for b, batch in enumerate(model.batches(data, generator)):
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}

                def closure(batch: dict[str, Tensor] = batch) -> Tensor:
                    optimizer.zero_grad(set_to_none=True)
                    loss = model.batch_loss(module, batch)
                    loss.backward()
                    return loss

                value = float(optimizer.step(closure))  # type: ignore[arg-type]
                _check_finite(model, stage, value, b, epoch)
                values.append(value)
        return values[0] if len(values) == 1 else sum(values) / max(len(values), 1)

    def _parallel_epoch(self, model: TorchRecommender, module: torch.nn.Module,
                        optimizer: torch.optim.Optimizer, stage: Stage,
                        data: dict[str, Tensor], generator: torch.Generator, bar: Any,
                        n_batches: int, epoch: int) -> float:
        """`_epoch` when data-parallel: this rank's slice of every global batch, summed grads."""
        device = model.device_
        world, rank = distributed.world_size(), distributed.rank()
        params = [p for p in module.parameters() if p.requires_grad]
        # Weights of the embedding layers `mark_sparse` set (sparse_updates): row-sparse grads.
        sparse_ids = {id(m.weight) for m in module.modules()
                      if isinstance(m, torch.nn.Embedding | torch.nn.EmbeddingBag) and m.sparse}
        row_sparse = [id(p) in sparse_ids for p in params]
        total, count = 0.0, 0
        with seeded_torch(generator, device):
            # Dropout masks differ by rank, as they would across the rows of one big batch.
            torch.manual_seed(torch.initial_seed() + rank)
            for b, batch in enumerate(model.batches(data, generator)):
                batch, n_global = shard(model, batch, rank, world)
                n_local = len(next(iter(batch.values())))
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                optimizer.zero_grad(set_to_none=True)
                local = 0.0
                if n_local:
                    loss = model.batch_loss(module, batch)
                    local = float(loss.detach())
                    # Backward on the weighted loss: the sum below is then the global mean's grad.
                    (loss * (n_local / n_global)).backward()
                value = sum_gradients(params, local * n_local / n_global, device, row_sparse)
                _check_finite(model, stage, value, b, epoch)
                if self.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)
                optimizer.step()
                total, count = total + value * n_global, count + n_global
                if b % 25 == 0 and not bar.disable:
                    bar.set_postfix(loss=f"{total / count:.4f}", batch=f"{b + 1}/{n_batches}")
        return total / max(count, 1)


def _check_finite(model: TorchRecommender, stage: Stage, value: float, batch: int,
                  epoch: int) -> None:
    if not math.isfinite(value):
        where = f"epoch {epoch}" + (f" ({stage.name})" if stage.name else "")
        raise MovieRecError(f"{type(model).__name__}: training loss is {value} in batch "
                            f"{batch} of {where}; {stage.hint}")


def _postfix(record: dict[str, Any]) -> dict[str, str]:
    out = {"loss": f"{record['train_loss']:.4f}"}
    if record.get("valid_metric") is not None:
        out[record["metric"]] = f"{record['valid_metric']:.4f}"
    return out
