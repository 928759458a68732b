"""The 4-DoF planar arm of the inverse kinematics benchmark (Kruse et al.), in pure torch.

x = (shoulder height, three joint angles); the angles are cumulative, so each joint turns
relative to the previous segment. y is the end point (horizontal, vertical). Everything is
batched and device-agnostic; randomness comes only from the generator passed in.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from invkit.errors import InvkitError

LENGTHS = (0.5, 0.5, 1.0)
"""Segment lengths l1, l2, l3 (shoulder to end point)."""
SIGMA = (0.25, 0.5, 0.5, 0.5)
"""Prior standard deviations of (shoulder height, angle 1, angle 2, angle 3)."""
DIM_X = 4
DIM_Y = 2

_LOG_NORM = sum(math.log(s) for s in SIGMA) + 0.5 * DIM_X * math.log(2 * math.pi)
_CONSTANTS: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor, Tensor]] = {}


def _constants(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """(sigma, lengths, W) on a device, cached so a GPU hot loop does no host-to-device copies.

    W maps [cos(a1..a3), sin(a1..a3)] to (horizontal, vertical) in one matmul.
    """
    key = (device, dtype)
    if key not in _CONSTANTS:
        sigma = torch.tensor(SIGMA, device=device, dtype=dtype)
        lengths = torch.tensor(LENGTHS, device=device, dtype=dtype)
        w = torch.zeros(6, 2, device=device, dtype=dtype)
        w[:3, 0] = lengths
        w[3:, 1] = lengths
        _CONSTANTS[key] = (sigma, lengths, w)
    return _CONSTANTS[key]


def _check_x(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != DIM_X:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InvkitError(
            f"The arm expects x of shape (n, {DIM_X}) (shoulder height and three joint angles), "
            f"got {shape}. Reshape a single configuration with x.reshape(1, {DIM_X})."
        )


def sample_prior(n: int, generator: torch.Generator) -> Tensor:
    """n draws of x ~ N(0, diag(SIGMA^2)), float32 on the generator's device."""
    sigma, _, _ = _constants(generator.device, torch.float32)
    z = torch.randn((n, DIM_X), generator=generator, device=generator.device)
    return z * sigma


def prior_log_prob(x: Tensor) -> Tensor:
    """log p(x) for x of shape (n, 4): the prior is a product of centred normals."""
    _check_x(x)
    sigma, _, _ = _constants(x.device, x.dtype)
    return -0.5 * ((x / sigma) ** 2).sum(-1) - _LOG_NORM


def forward(x: Tensor) -> Tensor:
    """End point y (n, 2) of each configuration x (n, 4); cumulative angles."""
    _check_x(x)
    _, _, w = _constants(x.device, x.dtype)
    angles = torch.cumsum(x[:, 1:], dim=1)
    y = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1) @ w
    y[:, 1] += x[:, 0]
    return y


def arm_points(x: Tensor) -> Tensor:
    """Joint positions (n, 4, 2): shoulder, elbow, wrist, end point; for drawing the arm."""
    _check_x(x)
    _, lengths, _ = _constants(x.device, x.dtype)
    angles = torch.cumsum(x[:, 1:], dim=1)
    segments = torch.stack([torch.cos(angles), torch.sin(angles)], dim=2) * lengths[:, None]
    shoulder = torch.stack([torch.zeros_like(x[:, 0]), x[:, 0]], dim=1)
    joints = shoulder[:, None, :] + torch.cumsum(segments, dim=1)
    return torch.cat([shoulder[:, None, :], joints], dim=1)
