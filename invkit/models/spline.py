"""A rational-quadratic spline coupling block (Durkan et al., "Neural Spline Flows", 2019) as a
FrEIA ``InvertibleModule``, so it goes wherever FrEIA's GLOW or RealNVP blocks go.

Each coordinate of the active half is mapped by a monotone rational-quadratic spline on
``[-bound, bound]`` with ``bins`` bins, whose knot widths, heights and interior derivatives
come from a subnetwork of the passive half (and the condition); outside the interval the map
is the identity (linear tails, derivative 1 at both ends, so the map is smooth there). Like
GLOW, one block couples both ways: the first half given the second, then the second given the
new first. The subnetwork's last layer is zero-initialised (:mod:`invkit.models.network`), and
the parametrisation is chosen so that a zero output is the identity map: uniform bins, every
derivative 1.

A spline can bend a density where an affine coupling can only shift and scale it, so fewer
blocks reach crescents, rings and sharp edges (two moons, bounded priors); the cost is about
``3 * bins`` subnetwork outputs per coordinate instead of 2. Both directions are exact (the
inverse solves one quadratic per coordinate) and give ``log|det J|``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from FrEIA.modules import InvertibleModule
from torch import Tensor, nn

MIN_BIN = 1e-3
"""Smallest bin width and height, as a fraction of the interval (keeps the map well
conditioned)."""
MIN_DERIVATIVE = 1e-3
"""Smallest derivative at a knot."""
_DERIVATIVE_SHIFT = math.log(math.expm1(1.0 - MIN_DERIVATIVE))
"""softplus(0 + shift) + MIN_DERIVATIVE = 1: a zero subnetwork output is slope 1."""


def _knots(raw: Tensor, bound: float) -> tuple[Tensor, Tensor]:
    """Bin sizes summing to ``2 * bound`` and the knot positions (``bins + 1``, from -bound to
    bound) from unnormalised values ``(..., bins)``."""
    bins = raw.shape[-1]
    sizes = MIN_BIN + (1 - MIN_BIN * bins) * torch.softmax(raw, dim=-1)
    edges = F.pad(torch.cumsum(sizes, dim=-1), (1, 0)) * (2 * bound) - bound
    edges = torch.cat([edges.new_full(edges.shape[:-1] + (1,), -bound), edges[..., 1:-1],
                       edges.new_full(edges.shape[:-1] + (1,), bound)], dim=-1)
    return edges[..., 1:] - edges[..., :-1], edges


def _gather(t: Tensor, idx: Tensor) -> Tensor:
    return t.gather(-1, idx[..., None])[..., 0]


def rq_spline(x: Tensor, w_raw: Tensor, h_raw: Tensor, d_raw: Tensor, bound: float,
              inverse: bool = False) -> tuple[Tensor, Tensor]:
    """The monotone rational-quadratic spline (or its inverse) applied element-wise.

    ``x``: ``(n, d)``; ``w_raw``, ``h_raw``: ``(n, d, bins)`` unnormalised bin widths and
    heights; ``d_raw``: ``(n, d, bins - 1)`` unnormalised interior derivatives. Returns the
    mapped values and ``log|dy/dx|`` per element (of the map computed: the inverse's for
    ``inverse=True``). Outside ``[-bound, bound]`` the map is the identity.
    """
    widths, xk = _knots(w_raw, bound)
    heights, yk = _knots(h_raw, bound)
    ones = d_raw.new_ones(d_raw.shape[:-1] + (1,))
    deriv = torch.cat([ones, MIN_DERIVATIVE + F.softplus(d_raw + _DERIVATIVE_SHIFT), ones], -1)
    inside = (x >= -bound) & (x <= bound)
    v = x.clamp(-bound, bound)
    # the bin of each value: knots it has passed, minus one (the last knot closes the last bin)
    knots = yk if inverse else xk
    idx = (v[..., None] >= knots[..., :-1]).sum(-1).sub(1).clamp(0, widths.shape[-1] - 1)
    x0, wk = _gather(xk, idx), _gather(widths, idx)
    y0, hk = _gather(yk, idx), _gather(heights, idx)
    d0, d1 = _gather(deriv, idx), _gather(deriv[..., 1:], idx)
    s = hk / wk
    if not inverse:
        t = (v - x0) / wk
        t1 = t * (1 - t)
        denom = s + (d0 + d1 - 2 * s) * t1
        out = y0 + hk * (s * t * t + d0 * t1) / denom
    else:
        dy = v - y0
        a = dy * (d0 + d1 - 2 * s) + hk * (s - d0)
        b = hk * d0 - dy * (d0 + d1 - 2 * s)
        c = -s * dy
        disc = (b * b - 4 * a * c).clamp_min(0)
        t = (2 * c) / (-b - disc.sqrt())
        t1 = t * (1 - t)
        denom = s + (d0 + d1 - 2 * s) * t1
        out = x0 + t * wk
    log_deriv = (torch.log(s * s * (d1 * t * t + 2 * s * t1 + d0 * (1 - t) ** 2))
                 - 2 * torch.log(denom))
    if inverse:
        log_deriv = -log_deriv
    return torch.where(inside, out, x), torch.where(inside, log_deriv, torch.zeros_like(x))


class RQSplineCouplingBlock(InvertibleModule):
    """Two rational-quadratic spline couplings (first half given the second, then the second
    given the new first), each conditioned on the other half and any conditions.

    ``subnet_constructor(c_in, c_out)`` builds each coupling's subnetwork (FrEIA's convention);
    ``bins`` spline bins on ``[-bound, bound]``; identity outside.
    """

    def __init__(self, dims_in: Sequence[tuple[int, ...]],
                 dims_c: Sequence[tuple[int, ...]] | None = None,
                 subnet_constructor: Callable[[int, int], nn.Module] | None = None,
                 bins: int = 8, bound: float = 3.0) -> None:
        dims_c = list(dims_c or [])
        super().__init__(dims_in, dims_c)
        if len(dims_in) != 1 or len(dims_in[0]) != 1:
            raise ValueError(f"RQSplineCouplingBlock takes one flat input, got {dims_in}")
        if subnet_constructor is None:
            raise ValueError("RQSplineCouplingBlock needs a subnet_constructor")
        if bins < 2 or not bound > 0:
            raise ValueError(f"RQSplineCouplingBlock needs bins >= 2 and bound > 0, got "
                             f"{bins}, {bound}")
        channels = dims_in[0][0]
        self.len1 = channels // 2
        self.len2 = channels - self.len1
        if self.len1 < 1:
            raise ValueError("RQSplineCouplingBlock needs at least 2 dimensions")
        self.bins, self.bound = bins, float(bound)
        cond = sum(c[0] for c in dims_c)
        self.per_dim = 3 * bins - 1
        self.subnet1 = subnet_constructor(self.len2 + cond, self.len1 * self.per_dim)
        self.subnet2 = subnet_constructor(self.len1 + cond, self.len2 * self.per_dim)

    def _couple(self, net: nn.Module, active: Tensor, passive: Tensor, c: list[Tensor],
                rev: bool) -> tuple[Tensor, Tensor]:
        h = net(torch.cat([passive, *c], 1) if c else passive)
        h = h.reshape(active.shape[0], active.shape[1], self.per_dim)
        k = self.bins
        out, log_d = rq_spline(active, h[..., :k], h[..., k:2 * k], h[..., 2 * k:],
                               self.bound, inverse=rev)
        return out, log_d.sum(1)

    def forward(self, x: Sequence[Tensor], c: Sequence[Tensor] = (), rev: bool = False,
                jac: bool = True) -> tuple[tuple[Tensor], Tensor]:
        cond = list(c)
        x1, x2 = torch.split(x[0], [self.len1, self.len2], dim=1)
        if not rev:
            y1, j1 = self._couple(self.subnet1, x1, x2, cond, False)
            y2, j2 = self._couple(self.subnet2, x2, y1, cond, False)
        else:
            y2, j2 = self._couple(self.subnet2, x2, x1, cond, True)
            y1, j1 = self._couple(self.subnet1, x1, y2, cond, True)
        return (torch.cat([y1, y2], 1),), j1 + j2

    def output_dims(self, input_dims: Sequence[tuple[int, ...]]) -> Sequence[tuple[int, ...]]:
        return input_dims
