"""Balanced training batches: observations that the prior makes rare are drawn more often.

Training pairs (x, y) come from the prior and the simulator, so an observation y that the prior
rarely produces (the edge of a robot arm's workspace, a tail of a summary statistic) is seen in
few batches, and its posterior is learnt last and worst. ``data.balance = a > 0`` draws each
training pair with probability proportional to w(y) = p(y)^-a, p a k-nearest-neighbour
density estimate of the training y's (standardised per dimension). The weight depends on y
alone, so every posterior p(x | y) of the reweighted pairs is the original one: only the mix
of observations changes, not what is learnt for each (the INN's losses compare [y, z] with
y's marginal times N(0, I) and (x, y) pairs with (x, y) pairs, both of the same reweighted
pairs, and the cINN's likelihood is maximised by p(x | y) under any mix of y). a = 1 makes
y's distribution about uniform over its support; a = 0 is the prior's mix.

The estimate: at ``TREE_POINTS`` of the training y's, chosen at random, the distance r_k to
the k-th nearest of them gives p ~ k / (m r_k^d); every training pair takes the estimate of
its nearest such point (a query of the whole training set for k neighbours took 10x longer:
~1 s for 10^6 pairs of the arm on one core this way). Weights are capped at ``cap`` times
their median (a few isolated y's must not take over the batches).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

NEIGHBOURS = 16
"""k of the k-nearest-neighbour density estimate."""
TREE_POINTS = 20_000
"""The density is estimated at this many of the training y's (all of them, when fewer)."""
DEFAULT_CAP = 30.0


def balance_weights(y: Tensor, exponent: float, *, cap: float = DEFAULT_CAP,
                    neighbours: int = NEIGHBOURS, seed: int = 0) -> Tensor:
    """Sampling weights (n,) float64 on y's device, mean 1: p(y)^-exponent, capped at ``cap``
    times the median weight. ``exponent`` 0 gives equal weights."""
    n, d = y.shape
    if exponent <= 0 or n < 2:
        return torch.ones(n, dtype=torch.float64, device=y.device)
    from scipy.spatial import cKDTree

    u = y.detach().to("cpu", torch.float64).numpy()
    u = (u - u.mean(0)) / np.where(u.std(0) > 0, u.std(0), 1.0)
    rng = np.random.default_rng(seed)
    pts = u if n <= TREE_POINTS else u[rng.choice(n, TREE_POINTS, replace=False)]
    k = max(1, min(neighbours, pts.shape[0] - 1))
    tree = cKDTree(pts)
    dist, _ = tree.query(pts, k=k + 1)  # k + 1: each point finds itself first
    log_density = -d * np.log(np.maximum(dist[:, -1], 1e-12))  # up to a constant
    if pts is not u:
        _, nearest = tree.query(u, k=1)
        log_density = log_density[nearest]
    log_w = -exponent * log_density
    log_w -= np.median(log_w)
    w = np.exp(np.minimum(log_w, np.log(cap)))
    w /= w.mean()
    return torch.from_numpy(w).to(y.device)


def cumulative(weights: Tensor) -> Tensor:
    """The normalised cumulative weights (n,) float64, for :func:`draw`."""
    c = torch.cumsum(weights.to(torch.float64), 0)
    return c / c[-1]


def draw(cdf: Tensor, size: int, gen: torch.Generator) -> Tensor:
    """``size`` indices drawn with replacement in proportion to the weights of ``cdf``."""
    u = torch.rand(size, generator=gen, device=cdf.device, dtype=torch.float64)
    return torch.searchsorted(cdf, u).clamp_(max=cdf.shape[0] - 1)
