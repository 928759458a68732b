"""Subnetworks for coupling blocks: dense layers with leaky ReLU, last layer zero-initialised.

Zero-initialising the last layer makes every block start as the identity, which keeps
untrained wide networks from blowing up (FrEIA 0.2 with default init can give |z| ~ 1e4).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def dense_subnet(width: int, depth: int, slope: float) -> Callable[[int, int], nn.Module]:
    """A constructor ``f(c_in, c_out)`` as FrEIA's blocks expect (called positionally)."""

    def construct(c_in: int, c_out: int) -> nn.Module:
        layers: list[nn.Module] = []
        size = c_in
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.LeakyReLU(slope)]
            size = width
        last = nn.Linear(size, c_out)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        return nn.Sequential(*layers)

    return construct
