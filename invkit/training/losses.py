"""The losses of the INN's three-loss training (Ardizzone et al. 2019): MSE for L_y, the
multi-scale inverse-multiquadric MMD (:func:`invkit.kernels.imq_kernel`) for L_z and L_x.

The MMD works on the stacked samples p = [x; y] with weights w = (1/n, ..., -1/m, ...), so
MMD^2 = w^T K w: one pass over blocks of rows of the distance matrix computes the value and
the gradient together, instead of the straightforward three matrices (K_xx, K_yy, K_xy) per
width, each kept in memory for autograd.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from invkit.kernels import imq_kernel, sq_dists


def _chunk_rows(n: int, device: torch.device) -> int:
    """Rows per block: about 1 MB of kernel values on CPU (stays in cache), more on GPUs."""
    elements = 2**18 if device.type == "cpu" else 2**26
    return max(1, min(n, elements // max(1, n)))


def imq_mmd_rows(p: Tensor, w: Tensor, widths: Sequence[float],
                 rows: Sequence[tuple[int, int]], need_grad: bool
                 ) -> tuple[Tensor, Tensor | None]:
    """The part of w^T K w that the given row ranges of ``p`` contribute, and their gradients.

    Returns ``(sum_{i in rows} w_i (K w)_i`` in float64 (float32 on MPS), ``d(w^T K w)/dp_i``
    for those rows stacked in order, or None). The gradient of row i needs all columns but no
    other row's gradient, so the ranges may be split across processes (``invkit.distributed``).
    """
    n = p.shape[0]
    sq = (p * p).sum(1)
    n_rows = sum(r1 - r0 for r0, r1 in rows)
    grad = p.new_empty((n_rows, p.shape[1])) if need_grad else None
    acc = torch.float32 if p.device.type == "mps" else torch.float64  # MPS has no float64
    total = p.new_zeros((), dtype=acc)
    step = _chunk_rows(n, p.device)
    a2s = [float(a) ** 2 for a in widths]
    at = 0
    for r0, r1 in rows:
        for s in range(r0, r1, step):
            e = min(r1, s + step)
            pc = p[s:e]
            d2 = torch.addmm(sq[None, :], pc, p.T, beta=1.0, alpha=-2.0)
            d2.add_(sq[s:e, None]).clamp_(min=0.0)
            k = torch.zeros_like(d2)
            kp = torch.zeros_like(d2) if need_grad else None
            for a2 in a2s:
                r = torch.add(d2, a2).reciprocal_()
                k.add_(r, alpha=a2)
                if kp is not None:
                    kp.sub_(r.mul_(r), alpha=a2)
            total += (w[s:e] @ (k @ w)).to(acc)
            if grad is not None and kp is not None:
                g = kp.mul_(w[None, :])
                grad[at:at + e - s] = (4.0 * w[s:e, None]) * (pc * g.sum(1, keepdim=True)
                                                             - g @ p)
            at += e - s
    return total, grad


class _FusedIMQMMD(torch.autograd.Function):
    """MMD^2 = sum_ij w_i w_j k(|p_i - p_j|^2) and its gradient, in one blocked pass.

    The gradient 4 w_i sum_j w_j k'(d_ij) (p_i - p_j) is computed alongside the value, so no
    kernel matrix is kept for backward and each block of distances is touched while in cache.
    """

    @staticmethod
    def forward(ctx, p: Tensor, w: Tensor, widths: tuple[float, ...]) -> Tensor:  # type: ignore[override]
        total, grad = imq_mmd_rows(p, w, widths, [(0, p.shape[0])], ctx.needs_input_grad[0])
        ctx.save_for_backward(grad if grad is not None else p.new_zeros(0))
        return total.to(p.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return g * grad, None, None


def mmd2(x: Tensor, y: Tensor, widths: Sequence[float]) -> Tensor:
    """Biased MMD^2 between sample sets x (n, d) and y (m, d) with the multi-width IMQ kernel."""
    n, m = x.shape[0], y.shape[0]
    w = torch.cat([x.new_full((n,), 1.0 / n), y.new_full((m,), -1.0 / m)])
    return _FusedIMQMMD.apply(torch.cat([x, y], dim=0), w, tuple(float(a) for a in widths))


def mmd2_reference(x: Tensor, y: Tensor, widths: Sequence[float]) -> Tensor:
    """The straightforward form (three kernel matrices, kept for autograd); for tests and
    benchmarks of the fused one."""
    def mean_k(a: Tensor, b: Tensor) -> Tensor:
        return imq_kernel(sq_dists(a[None], b[None])[0], widths).mean()

    return mean_k(x, x) + mean_k(y, y) - 2 * mean_k(x, y)


def mse(a: Tensor, b: Tensor) -> Tensor:
    return torch.mean((a - b) ** 2)


def inverse_weight_ramp(fraction: float) -> float:
    """The authors' ramp of the inverse-MMD weight: min(1, 2 * 0.002^(1 - t)), t in [0, 1]."""
    return min(1.0, 2.0 * 0.002 ** (1.0 - fraction))
