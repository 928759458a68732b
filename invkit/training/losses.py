"""The write-up's losses: MSE for L_y, multi-scale inverse-multiquadric MMD for L_z and L_x.

The MMD builds one pairwise-distance matrix over [x; y] and one kernel sum over all widths,
then reads MMD^2 off it as w^T K w with w = (1/n, ..., -1/m, ...): one matrix instead of the
straightforward three (K_xx, K_yy, K_xy), each evaluated once per width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def pairwise_sq_dists(a: Tensor) -> Tensor:
    """Squared Euclidean distances between all rows of ``a`` (clamped at 0 against round-off)."""
    sq = (a * a).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (a @ a.T)
    return d2.clamp_min_(0.0)


def imq_kernel_sum(d2: Tensor, widths: Sequence[float]) -> Tensor:
    """sum_a a^2 / (a^2 + d^2): heavy tails keep gradients alive for far-apart samples."""
    k = torch.zeros_like(d2)
    for a in widths:
        a2 = float(a) ** 2
        k.add_(a2 / (a2 + d2))
    return k


def mmd2(x: Tensor, y: Tensor, widths: Sequence[float]) -> Tensor:
    """Biased MMD^2 between sample sets x (n, d) and y (m, d) with the multi-width IMQ kernel."""
    n, m = x.shape[0], y.shape[0]
    k = imq_kernel_sum(pairwise_sq_dists(torch.cat([x, y], dim=0)), widths)
    w = torch.cat([x.new_full((n,), 1.0 / n), y.new_full((m,), -1.0 / m)])
    return w @ (k @ w)


def mmd2_reference(x: Tensor, y: Tensor, widths: Sequence[float]) -> Tensor:
    """The straightforward form (three matrices per width); kept for tests and benchmarks."""
    xx, yy, xy = x @ x.T, y @ y.T, x @ y.T
    rx, ry = xx.diag(), yy.diag()
    dxx = rx[:, None] + rx[None, :] - 2 * xx
    dyy = ry[:, None] + ry[None, :] - 2 * yy
    dxy = rx[:, None] + ry[None, :] - 2 * xy
    total = x.new_zeros(())
    for a in widths:
        a2 = float(a) ** 2
        total = total + (a2 / (a2 + dxx)).mean() + (a2 / (a2 + dyy)).mean()
        total = total - 2 * (a2 / (a2 + dxy)).mean()
    return total


def mse(a: Tensor, b: Tensor) -> Tensor:
    return torch.mean((a - b) ** 2)


def inverse_weight_ramp(fraction: float) -> float:
    """The authors' ramp of the inverse-MMD weight: min(1, 2 * 0.002^(1 - t)), t in [0, 1]."""
    return min(1.0, 2.0 * 0.002 ** (1.0 - fraction))
