"""Data-parallel pieces of the Trainer: batch shards, hand-summed gradients, weight broadcast.

See `Trainer` for why gradients are all-reduced by hand rather than by DistributedDataParallel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from movierec import distributed
from movierec.errors import MovieRecError

if TYPE_CHECKING:
    from movierec.training._base import TorchRecommender

__all__ = ["broadcast_module", "shard", "sum_gradients"]


def shard(model: TorchRecommender, batch: dict[str, Tensor], rank: int, world: int
           ) -> tuple[dict[str, Tensor], int]:
    """This rank's contiguous slice of a global batch, and the global batch's size."""
    sizes = {k: len(v) for k, v in batch.items()}
    n = next(iter(sizes.values()))
    if any(size != n for size in sizes.values()):
        raise MovieRecError(f"{type(model).__name__} cannot be trained data-parallel: its batches "
                            f"hold tensors of different lengths {sizes}, so they cannot be split "
                            "by rows; run it in one process")
    lo, hi = n * rank // world, n * (rank + 1) // world
    return {k: v[lo:hi] for k, v in batch.items()}, n


def sum_gradients(params: Sequence[Tensor], loss: float, device: torch.device,
                   row_sparse: list[bool] | None = None) -> float:
    """All-reduce the (pre-weighted) gradients of `params` and the loss; return the global loss.

    A parameter without a gradient on every rank keeps `grad = None`, so Adam skips it exactly as
    in one process. Gradients are summed densely; those of `row_sparse` parameters (embedding
    tables trained with `sparse_updates`) become row-sparse again over the rows that any rank
    touched, so that LazyAdam updates the rows one process would have. The touched-row masks
    travel with the loss and the has-gradient flags: two collectives a step.
    """
    row_sparse = row_sparse or [False] * len(params)
    grads = [p.grad for p in params]
    flat = torch.cat([torch.zeros(p.numel(), dtype=p.dtype, device=p.device) if g is None
                      else (g.to_dense() if g.is_sparse else g).reshape(-1) for p, g in
                      zip(params, grads, strict=True)]) if params else torch.zeros(0)
    masks = []
    for p, g, rs in zip(params, grads, row_sparse, strict=True):
        if rs:
            mask = torch.zeros(p.shape[0], dtype=torch.float64)
            if g is not None:
                mask[g.coalesce().indices()[0].cpu()] = 1.0
            masks.append(mask)
    meta = torch.cat([torch.tensor([loss] + [float(g is not None) for g in grads],
                                   dtype=torch.float64), *masks])
    distributed.all_reduce_sum(flat)
    distributed.all_reduce_sum(meta)
    offset, row_offset = 0, 1 + len(params)
    for p, has, rs in zip(params, meta[1:1 + len(params)].tolist(), row_sparse, strict=True):
        dense = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
        if rs:
            rows = torch.nonzero(meta[row_offset:row_offset + p.shape[0]]).ravel().to(p.device)
            row_offset += p.shape[0]
            p.grad = torch.sparse_coo_tensor(rows[None, :], dense[rows], p.shape)
        else:
            p.grad = dense.clone() if has else None
    return float(meta[0])


def broadcast_module(module: torch.nn.Module) -> None:
    """Make every rank start from rank 0's weights (they already agree when seeded alike)."""
    if distributed.is_distributed():
        for tensor in module.state_dict().values():
            distributed.broadcast(tensor)
