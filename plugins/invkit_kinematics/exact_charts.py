"""The charts of the arm's solution manifold: closed-form roots, the partition of unity and
the importance proposals of the exact sampler (:mod:`invkit_kinematics.exact` has the proof)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from invkit_kinematics.arm import LENGTHS

DEFENSIVE = 0.2
"""Prior share of the proposal: keeps it positive everywhere, whatever the pilot found."""
INFLATE = 1.5
"""Variance of the fitted Gaussian relative to the pilot's weighted covariance."""

_TWO_PI = 2 * math.pi
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class Arm:
    lengths: tuple[float, float, float]
    sigma: tuple[float, float, float, float]

    @property
    def reach(self) -> float:
        return sum(self.lengths)


def chart_weights(a: Tensor, lengths: Sequence[float] = LENGTHS) -> Tensor:
    """Partition of unity (..., 3): w_k = (dh/da_k)^2 / |grad h|^2 for angles a (..., 3).

    The three charts (solve a_k from the other two) split the posterior by these weights; they
    sum to one wherever grad h != 0, and each vanishes on its own chart's fold.
    """
    g = _grad_h(torch.cumsum(a, -1).sin(), lengths)
    return g**2 / (g**2).sum(-1, keepdim=True)


def _grad_h(sin_theta: Tensor, lengths: Sequence[float]) -> Tensor:
    """-grad h (..., 3) from sin(theta); its first entry is also v(a), the vertical reach."""
    l1, l2, l3 = lengths
    g3 = l3 * sin_theta[..., 2]
    g2 = l2 * sin_theta[..., 1] + g3
    g1 = l1 * sin_theta[..., 0] + g2
    return torch.stack([g1, g2, g3], -1)


def _log_normal(z: Tensor, sigma: float) -> Tensor:
    return -0.5 * (z / sigma) ** 2 - math.log(sigma) - _HALF_LOG_2PI


def _log_wrapped_normal(r: Tensor, sigma: float) -> Tensor:
    """log sum_j N(r + 2 pi j; 0, sigma^2), j in {-1, 0, 1}: exact in float64 for |r| <= pi.

    (r +- 2 pi)^2 - r^2 = 4 pi^2 +- 4 pi r >= 0, so the side terms add
    2 exp(-2 pi^2 / sigma^2) cosh(2 pi r / sigma^2) <= 2 to the central one's factor 1.
    """
    side = torch.cosh(r * (2 * math.pi / sigma**2)).mul_(2 * math.exp(-2 * math.pi**2 / sigma**2))
    return _log_normal(r, sigma) + torch.log1p(side)


def chart(k: int, b: Tensor, y1: Tensor, y2: Tensor, arm: Arm) -> tuple[Tensor, Tensor]:
    """Chart k's density f_k at both roots, and the configurations.

    b (2, N) are the free angles (in order), y1, y2 (N,) each draw's target. Returns log f_k
    (2, N) (one row per root), -inf where b has no root or sits on a critical point, and x
    (4, 2, N) with a_k the root's representative in [-pi, pi). Roots lead (not trail) so that
    every elementwise pass runs over contiguous rows (broadcasting a trailing 2 is far slower).

    With h = C + R cos(a_k + psi), the roots have a_k + psi = +-t, t = acos(c), so the sines of
    the cumulative angles follow from c, sqrt(1 - c^2) and b's own sines and cosines, with no
    trigonometric call per root; and |dh/da_k| = R sqrt(1 - c^2).
    """
    l1, l2, l3 = arm.lengths
    u, w = b[0], b[1]
    if k == 0:  # solve a1; b = (a2, a3)
        s = u + w
        cu, su, cs, ss = torch.cos(u), torch.sin(u), torch.cos(s), torch.sin(s)
        re, im = l1 + l2 * cu + l3 * cs, l2 * su + l3 * ss
        radius = torch.hypot(re, im)
        psi, c = torch.atan2(im, re), y1 / radius
    elif k == 1:  # solve a2; b = (a1, a3)
        cw, sw = torch.cos(w), torch.sin(w)
        re, im = l2 + l3 * cw, l3 * sw
        radius = torch.hypot(re, im)
        psi = u + torch.atan2(im, re)
        c = (y1 - l1 * torch.cos(u)) / radius
    else:  # solve a3; b = (a1, a2)
        s = u + w
        radius = torch.full_like(u, l3)
        psi = s
        c = (y1 - l1 * torch.cos(u) - l2 * torch.cos(s)) / l3
    feasible = c.abs() <= 1  # radius 0 (a degenerate arm): c is inf or nan, no root
    c = c.clamp(-1.0, 1.0)
    t = torch.acos(c)
    st = torch.sqrt((1 - c) * (1 + c))
    sin_t = torch.stack([st, -st])  # sin(+t), sin(-t); both roots share cos = c
    if k == 2:
        s1, s2, s3 = torch.sin(u), torch.sin(s), sin_t
    else:
        cd, sd = re / radius, im / radius
        sin_j = sin_t * cd - c * sd  # the solved joint's cumulative angle is +-t - delta
        cos_j = (c * cd) + sin_t * sd
        if k == 1:
            s1, s2 = torch.sin(u), sin_j
            s3 = sin_j * cw + cos_j * sw
        else:
            s1 = sin_j
            s2 = sin_j * cu + cos_j * su
            s3 = sin_j * cs + cos_j * ss
    g3 = l3 * s3
    g2 = g3 + l2 * s2
    g1 = g2 + l1 * s1  # -dh/da_1, and v(a)
    grad2 = g1 * g1 + g2 * g2 + g3 * g3
    r = torch.remainder(torch.stack([t - psi, -t - psi]) + math.pi, _TWO_PI) - math.pi
    x1 = y2 - g1
    free = [i for i in range(3) if i != k]
    sig = arm.sigma
    log_b = (_log_normal(u, sig[free[0] + 1]) + _log_normal(w, sig[free[1] + 1])
             + torch.log(radius * st))
    log_f = (_log_normal(x1, sig[0]) + _log_wrapped_normal(r, sig[k + 1])
             - torch.log(grad2)) + log_b
    ok = (grad2 > 0) & (feasible & (st > 0))
    log_f = torch.where(ok, log_f, -math.inf)
    x = torch.empty(4, 2, b.shape[1], dtype=b.dtype, device=b.device)
    x[0] = x1
    x[free[0] + 1] = u
    x[free[1] + 1] = w
    x[k + 1] = r
    return log_f, x


class Proposal:
    """q_k(b) per target: a two-component mixture, drawn and scored flat.

    ``weight0`` of N(0, diag(prior_sd^2)) (the prior) and the rest of N(mu, L L^T), L lower
    triangular; with ``symmetric`` (the pilot's backward-folded targets) that Gaussian is the
    equal pair at +-mu. Parameters are per target: mu (2, m), chol (3, m) = (L00, L10, L11).
    """

    def __init__(self, weight0: float, prior_sd: tuple[float, float], mu: Tensor, chol: Tensor,
                 symmetric: Tensor | None = None) -> None:
        self.w0, self.sd = weight0, prior_sd
        self.mu, self.chol = mu, chol
        self.symmetric = symmetric

    def sample(self, rows: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draws b (2, N) for targets ``rows`` (N,) and log q(b) (N,)."""
        n = rows.shape[0]
        dev, dt = self.mu.device, self.mu.dtype
        # float32 normals (6x faster on CPU); q is evaluated at the float64 b actually drawn
        z = torch.randn(2, n, generator=gen, device=dev).to(dt)
        u = torch.rand(n, generator=gen, device=dev)
        mu, ch = self.mu[:, rows], self.chol[:, rows]
        if self.symmetric is not None:
            flip = self.symmetric[rows] & (torch.rand(n, generator=gen, device=dev) < 0.5)
            mu = torch.where(flip, -mu, mu)
        gauss = torch.stack([mu[0] + ch[0] * z[0], mu[1] + ch[1] * z[0] + ch[2] * z[1]])
        sd = torch.tensor(self.sd, device=dev, dtype=dt)[:, None]
        b = torch.where(u < self.w0, z * sd, gauss)
        return b, self.log_prob(b, rows)

    def log_prob(self, b: Tensor, rows: Tensor) -> Tensor:
        mu, ch = self.mu[:, rows], self.chol[:, rows]
        lg = self._log_gauss(b, mu, ch)
        if self.symmetric is not None:
            pair = torch.logaddexp(lg, self._log_gauss(b, -mu, ch)) - math.log(2)
            lg = torch.where(self.symmetric[rows], pair, lg)
        if self.w0 == 0:
            return lg
        lp0 = _log_normal(b[0], self.sd[0]) + _log_normal(b[1], self.sd[1])
        return torch.logaddexp(lp0 + math.log(self.w0), lg + math.log(1 - self.w0))

    @staticmethod
    def _log_gauss(b: Tensor, mu: Tensor, ch: Tensor) -> Tensor:
        z0 = (b[0] - mu[0]) / ch[0]
        z1 = (b[1] - mu[1] - ch[1] * z0) / ch[2]
        return -0.5 * (z0 * z0 + z1 * z1) - torch.log(ch[0] * ch[2]) - 2 * _HALF_LOG_2PI


def free_sd(k: int, arm: Arm) -> tuple[float, float]:
    free = [i for i in range(3) if i != k]
    return arm.sigma[free[0] + 1], arm.sigma[free[1] + 1]


def pilot_proposal(k: int, y1: Tensor, arm: Arm) -> Proposal:
    """Half prior, half a Gaussian at the nearest fully stretched configuration, as wide as its
    neighbourhood on the level set (about 2 sqrt(reach - |y1|) in angle; at most the prior's):
    it finds the tiny solution sets of nearly stretched horizontal arms, which prior draws miss.
    """
    sd = free_sd(k, arm)
    mu = torch.zeros(2, y1.shape[0], dtype=y1.dtype, device=y1.device)
    back = y1 < 0  # folded back: a1 = +-pi, a2 = a3 = 0 (in charts 2 and 3 a1 is free)
    if k > 0:
        mu[0] = torch.where(back, math.pi, 0.0)
    scale = (2 * (arm.reach - y1.abs()).clamp_min(0).sqrt()).clamp(1e-9, min(sd))
    chol = torch.stack([scale, torch.zeros_like(scale), scale])
    return Proposal(0.5, sd, mu, chol, symmetric=back if k > 0 else None)


def fit(k: int, b: Tensor, log_w: Tensor, arm: Arm) -> tuple[Tensor, Tensor]:
    """Weighted mean (2, m) and inflated, regularised Cholesky factor (3, m) of b (2, m, N).

    log_w (m, N): the pilot's log weight of each b (both roots together). A target whose pilot
    found almost nothing (pilot ESS below 10) gets the prior's spread added, so the main run
    still explores; one that found nothing gets the prior.
    """
    sd = torch.tensor(free_sd(k, arm), dtype=b.dtype, device=b.device)
    top = log_w.amax(1, keepdim=True)
    found = torch.isfinite(top).squeeze(1)
    w = torch.exp(log_w - torch.where(torch.isfinite(top), top, 0.0))
    w = w / w.sum(1, keepdim=True).clamp_min(1e-300)
    ess = 1 / (w**2).sum(1).clamp_min(1e-300)
    mu = (w * b).sum(2)
    d = b - mu[:, :, None]
    cov = torch.einsum("mn,imn,jmn->mij", w, d, d) * INFLATE
    eye = torch.eye(2, dtype=b.dtype, device=b.device)
    trace = cov.diagonal(dim1=1, dim2=2).sum(1)
    cov = cov + (1e-3 * trace / 2 + 1e-18)[:, None, None] * eye
    cov = torch.where((ess < 10)[:, None, None], cov + torch.diag(sd**2), cov)
    cov = torch.where(found[:, None, None], cov, torch.diag(sd**2).expand_as(cov))
    mu = torch.where(found, mu, 0.0)
    ch = torch.linalg.cholesky(cov)
    return mu, torch.stack([ch[:, 0, 0], ch[:, 1, 0], ch[:, 1, 1]])


