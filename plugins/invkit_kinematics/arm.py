"""The 4-DoF planar arm of the inverse kinematics benchmark (Kruse et al.), in pure torch.

x = (shoulder height, three joint angles); the angles are cumulative, so each joint turns
relative to the previous segment. y is the end point (horizontal, vertical). Everything is
batched and device-agnostic; randomness comes only from the generator passed in.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from invkit import InvkitError

LENGTHS = (0.5, 0.5, 1.0)
"""Segment lengths l1, l2, l3 (shoulder to end point)."""
SIGMA = (0.25, 0.5, 0.5, 0.5)
"""Prior standard deviations of (shoulder height, angle 1, angle 2, angle 3)."""
DIM_X = 4
DIM_Y = 2

_LOG_NORM = sum(math.log(s) for s in SIGMA) + 0.5 * DIM_X * math.log(2 * math.pi)
_CONSTANTS: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}
_TILED: dict[tuple[torch.device, str], Tensor] = {}


def _constants(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(sigma, lengths) on a device, cached so a GPU hot loop does no host-to-device copies."""
    key = (device, dtype)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = (torch.tensor(SIGMA, device=device, dtype=dtype),
                           torch.tensor(LENGTHS, device=device, dtype=dtype))
    return _CONSTANTS[key]


def _check_x(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != DIM_X:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InvkitError(
            f"The arm expects x of shape (n, {DIM_X}) (shoulder height and three joint angles), "
            f"got {shape}. Reshape a single configuration with x.reshape(1, {DIM_X})."
        )


_TILE = 1024
"""Rows scaled per vector in ``sample_prior`` (see there)."""


def sample_prior(n: int, generator: torch.Generator) -> Tensor:
    """n draws of x ~ N(0, diag(SIGMA^2)), float32 on the generator's device.

    Scaled in place, viewing blocks of _TILE rows as one row of 4 * _TILE values against SIGMA
    tiled to match: the same numbers as ``z * sigma``, but a broadcast over a last dimension
    of 4 ran 10x slower per element on CPU (14% of rejection ABC's time).
    """
    sigma, _ = _constants(generator.device, torch.float32)
    z = torch.randn((n, DIM_X), generator=generator, device=generator.device)
    full = n // _TILE * _TILE
    if full:
        z[:full].view(-1, _TILE * DIM_X).mul_(_tiled_sigma(generator.device))
    z[full:].mul_(sigma)
    return z


def _tiled_sigma(device: torch.device) -> Tensor:
    key = (device, "tiled")
    if key not in _TILED:
        _TILED[key] = _constants(device, torch.float32)[0].repeat(_TILE)
    return _TILED[key]


def prior_log_prob(x: Tensor) -> Tensor:
    """log p(x) for x of shape (n, 4): the prior is a product of centred normals."""
    _check_x(x)
    sigma, _ = _constants(x.device, x.dtype)
    return -0.5 * ((x / sigma) ** 2).sum(-1) - _LOG_NORM


def forward(x: Tensor) -> Tensor:
    """End point y (n, 2) of each configuration x (n, 4); cumulative angles.

    Works on the columns of x (contiguous rows of x.T, so every elementwise pass is one
    vector loop) and, without autograd, writes into one preallocated output: 2x the former
    cat-and-matmul form on one CPU core, which made it a third of rejection ABC's time.
    """
    _check_x(x)
    xt = x.T
    a1 = xt[1]
    a2 = a1 + xt[2]
    a3 = a2 + xt[3]
    l1, l2, l3 = LENGTHS
    if x.requires_grad and torch.is_grad_enabled():
        h = l1 * torch.cos(a1) + l2 * torch.cos(a2) + l3 * torch.cos(a3)
        v = xt[0] + l1 * torch.sin(a1) + l2 * torch.sin(a2) + l3 * torch.sin(a3)
        return torch.stack([h, v]).T
    y = torch.empty(2, x.shape[0], device=x.device, dtype=x.dtype)
    torch.cos(a1, out=y[0]).mul_(l1).add_(torch.cos(a2), alpha=l2).add_(torch.cos(a3), alpha=l3)
    torch.sin(a1, out=y[1]).mul_(l1).add_(torch.sin(a2), alpha=l2).add_(torch.sin(a3), alpha=l3)
    y[1].add_(xt[0])
    return y.T


def arm_points(x: Tensor) -> Tensor:
    """Joint positions (n, 4, 2): shoulder, elbow, wrist, end point; for drawing the arm."""
    _check_x(x)
    _, lengths = _constants(x.device, x.dtype)
    angles = torch.cumsum(x[:, 1:], dim=1)
    segments = torch.stack([torch.cos(angles), torch.sin(angles)], dim=2) * lengths[:, None]
    shoulder = torch.stack([torch.zeros_like(x[:, 0]), x[:, 0]], dim=1)
    joints = shoulder[:, None, :] + torch.cumsum(segments, dim=1)
    return torch.cat([shoulder[:, None, :], joints], dim=1)
