"""The kernels invkit compares sample sets with, and the squared distances they act on.

One home for them: the training losses (the multi-width inverse multiquadric of Ardizzone et
al.), the benchmark's Err_post kernel (Kruse et al.) and the calibration diagnostics' KDE all
start from the pairwise squared distances here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Kernel = Callable[[Tensor], Tensor]
"""``kernel(d2) -> k``: maps squared distances to kernel values, elementwise, same shape."""

_SQRT_01 = math.sqrt(0.1)


def inplace_ok(t: Tensor) -> bool:
    """In-place fast paths are only safe when autograd does not track ``t``."""
    return not (t.requires_grad and torch.is_grad_enabled())


def sq_dists(a: Tensor, b: Tensor, inplace: bool = False) -> Tensor:
    """Pairwise squared distances (B, r, c) between a (B, r, d) and b (B, c, d), one bmm.

    [-2a, |a|^2, 1] . [b, 1, |b|^2] = |a - b|^2; callers centre their inputs so the expansion
    loses little precision in float32. Tiny negatives from rounding are clamped to 0.
    """
    aa = a.square().sum(-1, keepdim=True)
    bb = b.square().sum(-1, keepdim=True)
    a_aug = torch.cat([a * -2.0, aa, torch.ones_like(aa)], dim=-1)
    b_aug = torch.cat([b, torch.ones_like(bb), bb], dim=-1)
    d2 = torch.bmm(a_aug, b_aug.transpose(1, 2))
    return d2.clamp_min_(0.0) if inplace else d2.clamp_min(0.0)


def benchmark_kernel(d2: Tensor) -> Tensor:
    """Kernel of the Kruse et al. benchmark's Err_post:
    k(d^2) = 0.5/(0.5+d^2) + 0.2/(0.2+d^2) + sqrt(0.1/(0.2+d^2)).

    Without autograd it runs a fused in-place form (same values up to float rounding), since this
    elementwise kernel dominates the cost of Err_post. ``d2`` itself is never modified.
    """
    if not inplace_ok(d2):
        return 0.5 / (0.5 + d2) + 0.2 / (0.2 + d2) + torch.sqrt(0.1 / (0.2 + d2))
    u = d2 + 0.2
    out = u.rsqrt().mul_(_SQRT_01)  # sqrt(0.1 / (0.2 + d2))
    out.add_(u.reciprocal_(), alpha=0.2)  # 0.2 / (0.2 + d2)
    u = torch.add(d2, 0.5, out=u).reciprocal_()
    return out.add_(u, alpha=0.5)  # 0.5 / (0.5 + d2)


def imq_kernel(d2: Tensor, widths: Sequence[float]) -> Tensor:
    """Multi-scale inverse multiquadric kernel of the training losses: sum_a a^2 / (a^2 + d^2).

    Summing several widths keeps gradients informative at both small and large distances, and
    the heavy tails keep them alive for far-apart samples. Differentiable; allocation-light
    when autograd is off. (The fused training MMD, ``invkit.training.losses``, evaluates the
    same kernel and its derivative inline.)
    """
    widths = [float(a) for a in widths]
    if not widths:
        raise ValueError("imq_kernel needs at least one width")
    if not inplace_ok(d2):
        return sum(a * a / (a * a + d2) for a in widths)  # type: ignore[return-value]
    out = torch.zeros_like(d2)
    buf = torch.empty_like(d2)
    for a in widths:
        torch.add(d2, a * a, out=buf).reciprocal_()
        out.add_(buf, alpha=a * a)
    return out
