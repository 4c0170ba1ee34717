"""Devices ("auto", "cpu", "cuda:1") and the seeded, restored global torch RNG."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["is_device", "resolve_device", "seeded_torch"]


def is_device(device: str) -> bool:
    """Whether `device` is "auto" or a device string torch understands ("cpu", "cuda:1")."""
    if device == "auto":
        return True
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        return False
    return True


def resolve_device(device: str) -> torch.device:
    """"auto" → cuda when available, else cpu; anything else is passed to `torch.device`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def seeded_torch(generator: torch.Generator, device: torch.device) -> Iterator[None]:
    """Seed the global torch RNG from `generator` inside a fork that restores it afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        torch.manual_seed(seed)
        yield
