"""Input checks and warnings shared by the ABC samplers."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from invkit import InvkitError, Problem

WARN_LIST = 10
"""Targets named in a warning at most."""


def check_targets(problem: Problem, y: Any) -> Tensor:
    y = torch.as_tensor(y)
    dim_y = problem.dim_y
    if y.dim() == 1 and y.shape[0] == dim_y:
        y = y[None]
    if y.dim() != 2 or y.shape[1] != dim_y or y.shape[0] == 0:
        raise InvkitError(
            f"ABC targets for problem {problem.name!r} must have shape (m, {dim_y}) (one "
            f"observation per row), got {tuple(y.shape)}."
        )
    if not y.is_floating_point():
        y = y.float()
    if not torch.isfinite(y).all():
        raise InvkitError("ABC targets contain NaN or infinite values; pass finite observations.")
    return y


LARGEST = 2**50
"""Largest budget or size ABC takes (about 1e15: weeks of simulation, still exact in float)."""


def positive_int(value: Any, what: str) -> int:
    try:
        ok = not isinstance(value, bool) and float(value).is_integer() and value >= 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise InvkitError(f"ABC {what} must be a positive integer, got {value!r}.")
    if value > LARGEST:
        raise InvkitError(f"ABC {what} must be at most {LARGEST:.3g} (2**50), got {value!r}.")
    return int(value)


def format_target(y: Tensor) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in y.tolist()) + ")"


def warn(info: dict[str, Any], message: str, loud: bool = True) -> None:
    info.setdefault("warnings", []).append(message)
    if loud:  # under torchrun only rank 0 says it
        warnings.warn(message, stacklevel=3)
