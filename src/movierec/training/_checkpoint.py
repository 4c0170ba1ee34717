"""Per-epoch checkpoints: `last.safetensors` (the commit record) and a readable `last.json`.

Format 1 (unchanged since the first release, so old checkpoints resume): tensors
"module.<name>" (the weights), "best.<name>" (the best validation weights, when kept),
"optim.<param index>.<key>" (the optimizer state's tensors) and "generator" (the CPU torch
generator's state); the safetensors metadata "checkpoint" holds the JSON that `last.json` copies:
format, model, params, train_fingerprint, epoch, history, best_metric, best_epoch, bad_epochs,
stopped, has_best, optimizer (its non-tensor state). Multi-stage training adds "stage" (the index
of the stage the epoch belongs to; absent: 0).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from movierec import distributed
from movierec.errors import ArtifactError, MovieRecError
from movierec.io import atomic_write_bytes, atomic_write_text, json_default

if TYPE_CHECKING:
    from movierec.training._base import TorchRecommender

__all__ = ["CHECKPOINT", "CHECKPOINT_FORMAT", "CHECKPOINT_JSON", "RunState", "check_shapes",
           "found_everywhere", "load_checkpoint", "save_checkpoint"]

CHECKPOINT = "last.safetensors"
CHECKPOINT_JSON = "last.json"
CHECKPOINT_FORMAT = 1


class RunState:
    """Everything the loop needs to continue exactly where it stopped."""

    def __init__(self) -> None:
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best_metric: float | None = None
        self.best_epoch = 0
        self.bad_epochs = 0
        self.stopped = False
        self.best_weights: dict[str, Tensor] | None = None
        # Multi-stage training: the stage of `epoch`, and that of the best weights.
        self.stage = 0
        self.best_stage = 0


def save_checkpoint(folder: Path, model: TorchRecommender, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, run: RunState) -> None:
    """Write last.safetensors (the commit record, one atomic file) and last.json (a copy)."""
    from safetensors.torch import save

    tensors: dict[str, Tensor] = {}
    for k, v in model.module_.state_dict().items():
        tensors[f"module.{k}"] = v.detach().cpu().contiguous()
    for k, v in (run.best_weights or {}).items():
        tensors[f"best.{k}"] = v.detach().cpu().contiguous()
    optim_json: dict[str, dict[str, Any]] = {}
    for pid, pstate in optimizer.state_dict()["state"].items():
        entry = optim_json.setdefault(str(pid), {})
        for key, value in pstate.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
                entry[key] = "tensor"
            else:
                entry[key] = value
    tensors["generator"] = generator.get_state()
    meta = {
        "format": CHECKPOINT_FORMAT,
        "model": model.name,
        "params": model.params(),
        "train_fingerprint": model.train_fingerprint_,
        "epoch": run.epoch,
        "history": run.history,
        "best_metric": run.best_metric,
        "best_epoch": run.best_epoch,
        "bad_epochs": run.bad_epochs,
        "stopped": run.stopped,
        "has_best": run.best_weights is not None,
        "optimizer": optim_json,
    }
    if run.stage or run.best_stage:  # single-stage checkpoints keep the first release's keys
        meta.update(stage=run.stage, best_stage=run.best_stage)
    text = json.dumps(meta, indent=2, default=json_default)
    atomic_write_bytes(folder / CHECKPOINT, save(tensors, metadata={"checkpoint": text}))
    atomic_write_text(folder / CHECKPOINT_JSON, text)


def load_checkpoint(folder: Path, model: TorchRecommender,
                    optimizer_for: Callable[[int], torch.optim.Optimizer],
                    generator: torch.Generator) -> tuple[RunState, torch.optim.Optimizer]:
    """Restore module, optimizer and generator from last.safetensors.

    Args:
        folder: the checkpoint folder.
        model: the model being trained (its module built, its data set up).
        optimizer_for: the optimizer of a stage index (the checkpoint's stage is restored).
        generator: the CPU generator of the run, set to its saved state.

    Returns:
        The loop state and the restored optimizer.

    Raises:
        MovieRecError: not a checkpoint, of another model or data, or damaged.
        ArtifactError: a saved tensor's shape differs from the module's (other parameters).
    """
    from safetensors import SafetensorError, safe_open

    path = folder / CHECKPOINT
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = json.loads((fh.metadata() or {})["checkpoint"])
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - not a dict
    # A damaged file (truncated by a disk fault or a partial copy) raises SafetensorError.
    except (OSError, KeyError, ValueError, json.JSONDecodeError, SafetensorError) as exc:
        raise MovieRecError(f"{path}: not a movierec checkpoint ({exc})") from None
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("model") != model.name:
        raise MovieRecError(f"{path}: checkpoint of model {meta.get('model')!r} (format "
                            f"{meta.get('format')!r}), expected {model.name!r}")
    if meta.get("train_fingerprint") != model.train_fingerprint_:
        raise MovieRecError(f"{path}: checkpoint was trained on data with fingerprint "
                            f"{meta.get('train_fingerprint')!r}, not {model.train_fingerprint_!r}")

    def part(prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    weights = part("module.")
    check_shapes(path, model, weights, meta.get("params"))
    try:
        model.module_.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise MovieRecError(f"{path}: weights do not fit the module ({first})") from None
    # A file damaged inside its tensors or metadata (the header still parses) fails here, e.g.
    # "Invalid mt19937 state" from the generator: a clear error, not a traceback.
    try:
        stage = int(meta.get("stage", 0))
        optimizer = optimizer_for(stage)
        state: dict[int, dict[str, Any]] = {}
        for pid, entry in meta["optimizer"].items():
            state[int(pid)] = {key: tensors[f"optim.{pid}.{key}"] if value == "tensor" else value
                               for key, value in entry.items()}
        optimizer.load_state_dict({"state": state,
                                   "param_groups": optimizer.state_dict()["param_groups"]})
        generator.set_state(tensors["generator"])
        run = RunState()
        run.epoch = int(meta["epoch"])
        run.history = list(meta["history"])
        run.best_metric = meta["best_metric"]
        run.best_epoch = int(meta["best_epoch"])
        run.bad_epochs = int(meta["bad_epochs"])
        run.stopped = bool(meta["stopped"])
        run.stage, run.best_stage = stage, int(meta.get("best_stage", 0))
        if meta.get("has_best"):
            device = model.device_
            run.best_weights = {k: v.to(device) for k, v in part("best.").items()}
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
        raise MovieRecError(f"{path}: damaged checkpoint ({type(exc).__name__}: {exc})"
                            ) from None
    return run, optimizer


def check_shapes(path: Path, model: TorchRecommender, weights: dict[str, Tensor],
                 saved_params: dict[str, Any] | None) -> None:
    """One-line ArtifactError when the saved weights do not have the module's names and shapes.

    Names the first differing tensor with both shapes and the hyper-parameters that differ
    between the checkpoint and the model (the usual cause: resuming with other `--param`s).
    """
    own = model.module_.state_dict()
    problem = None
    for name, tensor in own.items():
        saved = weights.get(name)
        if saved is None:
            problem = f"has no tensor {name!r} of the model's {model.name}"
        elif tuple(saved.shape) != tuple(tensor.shape):
            problem = (f"tensor {name!r} has shape {list(saved.shape)}, the model's "
                       f"{list(tensor.shape)}")
        if problem:
            break
    extra = sorted(set(weights) - set(own))
    if problem is None and extra:
        problem = f"holds tensor {extra[0]!r} that the model does not have"
    if problem is None:
        return
    current = model.params()
    changed = [f"{k}={(saved_params or {}).get(k)!r} (now {v!r})" for k, v in current.items()
               if saved_params is not None and k in saved_params and saved_params[k] != v
               and not _same(saved_params[k], v)]
    because = (f"; it was written with {', '.join(changed)}" if changed else "")
    raise ArtifactError(f"{path}: checkpoint {problem}{because}: resume with the parameters it "
                        "was written with, or train without --resume")


def _same(saved: Any, current: Any) -> bool:
    """Equal once JSON has turned tuples into lists."""
    if isinstance(current, tuple | list) and isinstance(saved, list):
        return list(current) == saved
    return False


def found_everywhere(path: Path) -> bool:
    """Whether `path` exists; data-parallel, refuse when only some ranks can see it."""
    found = path.is_file()
    if not distributed.is_distributed():
        return found
    count = int(distributed.all_reduce_sum(torch.tensor([float(found)]))[0])
    if 0 < count < distributed.world_size():
        raise MovieRecError(f"{path}: checkpoint visible to {count} of "
                            f"{distributed.world_size()} processes; resuming data-parallel "
                            "needs the checkpoint folder on a filesystem every node shares")
    return count > 0
