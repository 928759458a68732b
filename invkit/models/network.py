"""The invertible network both model kinds are made of: FrEIA coupling blocks, each followed by
a seeded random permutation, as a ``FrEIA.framework.SequenceINN``.

Subnetworks are dense layers with leaky ReLUs whose last layer is zero-initialised, so every
block starts as the identity: untrained wide networks otherwise blow up (FrEIA 0.2 with default
init can give |z| ~ 1e4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import FrEIA.framework as Ff
import FrEIA.modules as Fm
import numpy as np
import torch
from torch import Tensor, nn

from invkit.errors import ConfigError
from invkit.models.spline import RQSplineCouplingBlock

BLOCKS: dict[str, type] = {
    "glow": Fm.GLOWCouplingBlock,
    "rnvp": Fm.RNVPCouplingBlock,
    "allinone": Fm.AllInOneBlock,
    "spline": RQSplineCouplingBlock,
}


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


@contextmanager
def numpy_rng_preserved() -> Iterator[None]:
    """FrEIA 0.2's PermuteRandom(seed=k) reseeds numpy's global RNG; undo that side effect."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


def coupling_chain(width: int, *, n_blocks: int, block: str = "glow", clamp: float = 2.0,
                   subnet_width: int = 256, subnet_depth: int = 2, leaky_slope: float = 0.01,
                   cond_width: int = 0, seed: int = 0, spline_bins: int = 8,
                   spline_bound: float = 3.0) -> Ff.SequenceINN:
    """``n_blocks`` coupling blocks on vectors of ``width``, each followed by a permutation.

    ``cond_width > 0`` conditions every block on one vector of that width (``c=[y]`` at call
    time). ``clamp`` applies to the affine blocks, ``spline_bins`` and ``spline_bound`` to the
    spline block (:mod:`invkit.models.spline`). The caller seeds torch's RNG for the weights
    (:func:`seeded`); the permutations are seeded by ``seed`` and the block index. Numpy seeds
    must fit 32 bits, so seeds below 4294967 give distinct permutations.
    """
    if block not in BLOCKS:
        raise ConfigError(f"model.block must be one of {', '.join(BLOCKS)}, got {block!r}.")
    subnet = dense_subnet(subnet_width, subnet_depth, leaky_slope)
    args: dict = {"subnet_constructor": subnet}
    if block == "spline":
        args.update(bins=spline_bins, bound=spline_bound)
    else:
        args["affine_clamping" if block == "allinone" else "clamp"] = clamp  # AllInOne's name
    if cond_width:
        args.update(cond=0, cond_shape=(cond_width,))
    net = Ff.SequenceINN(width)
    for k in range(n_blocks):
        net.append(BLOCKS[block], **args)
        net.append(Fm.PermuteRandom, seed=(seed * 1000 + k) % 2**32)
    return net


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Build a network from ``seed`` alone, leaving the caller's torch and numpy RNGs as they
    were (AllInOneBlock draws its permutation from numpy's global RNG, so it is seeded too)."""
    with numpy_rng_preserved(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        yield


def run_chain(net: Ff.SequenceINN, u: Tensor, c: Tensor | None = None,
              rev: bool = False) -> tuple[Tensor, Tensor]:
    """``(out, log|det J|)`` of the direction computed; a tensor even when every block is
    volume preserving (SequenceINN then returns the float 0.0)."""
    out, log_jac = net(u, c=None if c is None else [c], rev=rev, jac=True)
    if not torch.is_tensor(log_jac):
        log_jac = u.new_zeros(u.shape[0])
    return out, log_jac


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)
