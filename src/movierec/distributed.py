"""Data-parallel training across processes with `torch.distributed`, launched by `torchrun`.

`torchrun --nproc_per_node=N -m movierec train ...` starts N processes and sets `WORLD_SIZE`,
`RANK`, `LOCAL_RANK`, `MASTER_ADDR` and `MASTER_PORT`; `init()` reads them and joins the process
group once, with the gloo backend for CPU tensors and NCCL for CUDA ones (both registered when
CUDA is available, so a model kept on the CPU still works on a GPU box). A process group the
caller created itself (e.g. under `torch.multiprocessing.spawn`) is used as it is. Without
`WORLD_SIZE` > 1 and without a process group everything here is a cheap no-op: world size 1,
rank 0, `is_main()` true.

The trainer (`movierec.training.Trainer`) averages gradients with `all_reduce_sum`, shards
validation by users and lets only the main process write checkpoints and artifacts.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "all_reduce_sum",
    "backend",
    "barrier",
    "broadcast",
    "init",
    "is_distributed",
    "is_main",
    "local_device",
    "rank",
    "shutdown",
    "world_size",
]

logger = logging.getLogger(__name__)

_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}"
                         ) from None


def _dist() -> Any:
    import torch.distributed as dist

    return dist


def _initialized() -> bool:
    dist = _dist()
    return bool(dist.is_available() and dist.is_initialized())


def backend() -> str:
    """The backend `init` uses: "cpu:gloo,cuda:nccl" when CUDA is available, else "gloo"."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def init() -> int:
    """Join the process group torchrun describes (once); return the world size.

    Does nothing when a process group already exists or when `WORLD_SIZE` is unset or 1.

    Raises:
        ValueError: `WORLD_SIZE`, `RANK` or `LOCAL_RANK` is not an integer, or `RANK` is
            outside [0, WORLD_SIZE).
    """
    if _initialized():
        return int(_dist().get_world_size())
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1:
        return 1
    r = _env_int("RANK", -1)
    if not 0 <= r < size:
        raise ValueError(f"environment variable RANK must be in [0, {size}) when WORLD_SIZE="
                         f"{size}, got {os.environ.get('RANK')!r}")
    dist = _dist()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if torch.cuda.is_available():
        # One GPU per process: NCCL needs the current device set before its first collective.
        torch.cuda.set_device(_env_int("LOCAL_RANK", 0) % torch.cuda.device_count())
    dist.init_process_group(backend=backend())
    logger.info("joined process group: rank %d of %d (%s)", r, size, backend())
    return size


def is_distributed() -> bool:
    """Whether this process is one of several (after `init`, or under a caller's group)."""
    return _initialized() and int(_dist().get_world_size()) > 1


def world_size() -> int:
    """Number of processes in the group (1 when not distributed)."""
    return int(_dist().get_world_size()) if _initialized() else 1


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return int(_dist().get_rank()) if _initialized() else 0


def is_main() -> bool:
    """True on rank 0, the only process that writes files and prints."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """`device` with CUDA pinned to this process's GPU (`LOCAL_RANK`) when distributed."""
    if device.type == "cuda" and device.index is None and is_distributed():
        return torch.device("cuda", _env_int("LOCAL_RANK", 0) % torch.cuda.device_count())
    return device


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum `tensor` over all processes in place (identity when not distributed); returns it."""
    if is_distributed():
        _dist().all_reduce(tensor, op=_dist().ReduceOp.SUM)
    return tensor


def broadcast(tensor: Tensor, src: int = 0) -> Tensor:
    """Overwrite `tensor` with rank `src`'s copy in place (identity when not distributed)."""
    if is_distributed():
        _dist().broadcast(tensor, src=src)
    return tensor


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if is_distributed():
        _dist().barrier()


def shutdown() -> None:
    """Leave the process group if `init` (or anyone) created one."""
    if _initialized():
        _dist().destroy_process_group()
