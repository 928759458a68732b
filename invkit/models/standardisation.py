"""Fixed per-dimension standardisation of x and y, shared by the model kinds that use it.

The shift and scale are buffers (so checkpoints, loading and resume keep them) set once from a
training batch; ``standardised`` records that they were set, so a resumed model keeps its own.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def add_buffers(module: nn.Module, dim_x: int, dim_y: int) -> None:
    """Identity maps until ``set_from_batch``: x_shift/x_scale, y_shift/y_scale, standardised."""
    module.register_buffer("x_shift", torch.zeros(dim_x))
    module.register_buffer("x_scale", torch.ones(dim_x))
    module.register_buffer("y_shift", torch.zeros(dim_y))
    module.register_buffer("y_scale", torch.ones(dim_y))
    module.register_buffer("standardised", torch.zeros((), dtype=torch.bool))


def batch_stats(t: Tensor) -> tuple[Tensor, Tensor]:
    """Per-dimension (mean, std) of a batch, in float64; a constant or undefined std is 1."""
    t = t.detach().double()
    std = t.std(dim=0) if t.shape[0] > 1 else torch.ones_like(t[0])
    std = torch.where(torch.isfinite(std) & (std > 1e-8), std, torch.ones_like(std))
    return t.mean(dim=0), std


@torch.no_grad()
def set_from_batch(module: nn.Module, x: Tensor, y: Tensor) -> None:
    """Set the buffers of ``add_buffers`` from a batch (mean, std; constant dims: 1)."""
    for (shift, scale), t in (((module.x_shift, module.x_scale), x),
                              ((module.y_shift, module.y_scale), y)):
        mean, std = batch_stats(t)
        shift.copy_(mean)
        scale.copy_(std)
    module.standardised.fill_(True)
