"""The sbibm 1.1.0 benchmark tasks as batched, generator-driven torch code.

Naming: this module keeps sbibm's names, ``theta`` for the parameters and ``x`` for the
data. In invkit the parameters are ``x`` and the observations ``y``; the plugin module does
the translation (``dim_theta`` becomes the problem's ``dim_x``, ``dim_x`` its ``dim_y``).

Every prior and simulator here

* works on whole batches (no Python loop over samples), in float32 by default, on the device
  of the generator (priors) or of ``theta`` (simulators);
* draws all its randomness from the ``torch.Generator`` passed in, never from global RNGs;
* follows sbibm 1.1.0's definition exactly: same priors, scales, noise and summary
  statistics. On CPU the random draws are even made in sbibm's order and shapes, so a
  generator seeded with an observation's seed (``observation_seed.csv``) reproduces sbibm's
  official true parameters and observations (the tests check this for every task whose
  simulator sbibm ran on a single random stream).

Constants that sbibm loads from pickled files (the Bernoulli GLM's stimulus, the SLCP
distractors' Student-t mixture and column permutation) are rebuilt here from the seed that
sbibm generated them with, so simulating needs no sbibm install; the tests compare them with
sbibm's files when those are installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

Simulator = Callable[[Tensor, torch.Generator], Tensor]

# -- priors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxUniform:
    """Independent uniform priors on ``[low, high)`` in every coordinate."""

    dim: int
    low: float
    high: float

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``(n, dim)`` draws, made as ``low + u (high - low)`` like sbibm's (pyro's) Uniform."""
        u = torch.rand((n, self.dim), generator=generator, device=generator.device)
        return self.low + u * (self.high - self.low)

    def log_prob(self, theta: Tensor) -> Tensor:
        """``(n,)`` log densities; ``-inf`` outside the box (sbibm's support is half-open)."""
        inside = ((theta >= self.low) & (theta < self.high)).all(-1)
        value = -self.dim * math.log(self.high - self.low)
        return torch.where(inside, value, -math.inf).to(theta.dtype)


@dataclass(frozen=True, eq=False)
class Gaussian:
    """A zero-mean Gaussian prior given, as sbibm gives it, by its precision matrix."""

    precision: Tensor  # (dim, dim), float64
    _scale_tril: Tensor = field(init=False, repr=False)
    _logdet_precision: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        p = self.precision.double()
        scale_tril = torch.linalg.cholesky(torch.linalg.inv(p))
        object.__setattr__(self, "_scale_tril", scale_tril.float())
        object.__setattr__(self, "_logdet_precision", float(torch.logdet(p)))

    @property
    def dim(self) -> int:
        return int(self.precision.shape[0])

    @property
    def covariance(self) -> Tensor:
        return torch.linalg.inv(self.precision.double())

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``(n, dim)`` draws ``L eps`` with ``L L^T`` the covariance (eps drawn as pyro does)."""
        eps = torch.randn((n, self.dim), generator=generator, device=generator.device)
        return eps @ self._scale_tril.to(eps.device).T

    def log_prob(self, theta: Tensor) -> Tensor:
        """``(n,)`` log densities, in float64 internally (the GLM prior is ill-conditioned;
        float32 on MPS, which has no float64)."""
        wide = torch.float32 if theta.device.type == "mps" else torch.float64
        p = self.precision.to(theta.device, wide)
        t = theta.to(wide)
        quad = ((t @ p) * t).sum(-1)
        norm = 0.5 * self._logdet_precision - 0.5 * self.dim * math.log(2 * math.pi)
        return (norm - 0.5 * quad).to(theta.dtype)


Prior = BoxUniform | Gaussian

# -- the task record ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One sbibm task: its prior, its simulator, and where sbibm keeps its data files.

    ``folder`` is the task's directory under ``sbibm/tasks`` and ``observation_file`` the name
    of its observation file there (two tasks share a folder with another one: their true
    parameters and reference posterior samples are the same, only the data differ).
    """

    name: str
    dim_theta: int
    dim_x: int
    prior: Prior
    simulator: Simulator = field(repr=False)
    description: str
    folder: str
    observation_file: str = "observation.csv"

    @property
    def theta_names(self) -> list[str]:
        return [f"parameter_{i + 1}" for i in range(self.dim_theta)]

    @property
    def x_names(self) -> list[str]:
        return [f"data_{i + 1}" for i in range(self.dim_x)]

    def sample_prior(self, n: int, generator: torch.Generator) -> Tensor:
        """``(n, dim_theta)`` prior draws on ``generator.device``."""
        return self.prior.sample(n, generator)

    def simulate(self, theta: Tensor, generator: torch.Generator) -> Tensor:
        """One stochastic simulation per row of ``theta`` ``(n, dim_theta)``: ``(n, dim_x)``.

        ``generator`` must live on ``theta``'s device; all noise comes from it.
        """
        if theta.dim() != 2 or theta.shape[1] != self.dim_theta:
            raise ValueError(f"{self.name}: theta must have shape (n, {self.dim_theta}), "
                             f"got {tuple(theta.shape)}")
        if not theta.is_floating_point():
            theta = theta.float()
        if generator.device.type != theta.device.type:
            raise ValueError(f"{self.name}: the generator is on {generator.device} but theta is "
                             f"on {theta.device}; make the generator on theta's device")
        return self.simulator(theta, generator)


def _const(values: Tensor, like: Tensor) -> Tensor:
    return values.to(device=like.device, dtype=like.dtype)


# -- two moons ---------------------------------------------------------------------------------
_MOON_ANGLE = torch.tensor(-math.pi / 4)  # sbibm rotates theta by -45 degrees
_MOON_COS = float(torch.cos(_MOON_ANGLE))
_MOON_SIN = float(torch.sin(_MOON_ANGLE))


def simulate_two_moons(theta: Tensor, generator: torch.Generator) -> Tensor:
    """A noisy half circle (radius ~ N(0.1, 0.01^2), angle ~ U(-pi/2, pi/2)) centred at
    ``(0.25, 0)``, shifted by ``(-|z0|, z1)`` where ``z`` is theta rotated by -45 degrees.
    The absolute value makes two mirror-image moons in the posterior."""
    n, kw = theta.shape[0], {"generator": generator, "device": theta.device, "dtype": theta.dtype}
    a = -math.pi / 2 + torch.rand((n, 1), **kw) * math.pi
    r = 0.1 + 0.01 * torch.randn((n, 1), **kw)
    z0 = _MOON_COS * theta[:, :1] - _MOON_SIN * theta[:, 1:2]
    z1 = _MOON_SIN * theta[:, :1] + _MOON_COS * theta[:, 1:2]
    return torch.cat([r * torch.cos(a) + 0.25 - z0.abs(), r * torch.sin(a) + z1], dim=1)


# -- Gaussian linear (Gaussian or uniform prior) ------------------------------------------------
_GL_NOISE_VAR = 0.1  # sbibm's "simulator_scale" is a variance: the precision is 1 / 0.1


def simulate_gaussian_linear(theta: Tensor, generator: torch.Generator) -> Tensor:
    """``x ~ N(theta, 0.1 I)``: the identity map plus noise of variance 0.1 (std 0.316)."""
    noise = torch.randn(theta.shape, generator=generator, device=theta.device, dtype=theta.dtype)
    return theta + math.sqrt(_GL_NOISE_VAR) * noise


# -- Gaussian mixture --------------------------------------------------------------------------
def simulate_gaussian_mixture(theta: Tensor, generator: torch.Generator) -> Tensor:
    """``x ~ 0.5 N(theta, I) + 0.5 N(theta, 0.01 I)``, one mixture index per sample (shared
    by both coordinates). The index is drawn from a float64 uniform, as sbibm's (old torch)
    multinomial did, so its draws reproduce (float32 on MPS, which has no float64)."""
    n, dev = theta.shape[0], theta.device
    wide = torch.float32 if dev.type == "mps" else torch.float64  # MPS has no float64
    u = torch.rand((n, 1), generator=generator, device=dev, dtype=wide)
    scale = torch.where(u >= 0.5, 0.1, 1.0).to(theta.dtype)
    noise = torch.randn(theta.shape, generator=generator, device=dev, dtype=theta.dtype)
    return theta + scale * noise


# -- SLCP --------------------------------------------------------------------------------------
_SLCP_EPS = 1e-6  # added to the covariance's diagonal by sbibm


def simulate_slcp(theta: Tensor, generator: torch.Generator) -> Tensor:
    """Four iid draws from a 2-D Gaussian, flattened to ``(x1a, x1b, x2a, ..., x4b)``.

    Mean ``theta[:2]``; scales ``s1 = theta2^2``, ``s2 = theta3^2``; correlation
    ``rho = tanh(theta4)``; covariance ``[[s1^2 + 1e-6, rho s1 s2], [rho s1 s2, s2^2 + 1e-6]]``.
    The draws are ``mean + L eps`` with the Cholesky factor ``L`` in closed form, its last
    entry written so that it cannot cancel to a negative number in float32.
    """
    n = theta.shape[0]
    s1, s2 = theta[:, 2] ** 2, theta[:, 3] ** 2
    rho = torch.tanh(theta[:, 4])
    var1 = s1**2 + _SLCP_EPS
    l11 = var1.sqrt()
    l21 = rho * s1 * s2 / l11
    # var2 - l21^2 = s2^2 (1 - rho^2 s1^2 / var1) + eps = s2^2 (sech^2 + rho^2 eps / var1) + eps
    sech2 = torch.cosh(theta[:, 4]).reciprocal() ** 2
    l22 = (s2**2 * (sech2 + rho**2 * _SLCP_EPS / var1) + _SLCP_EPS).sqrt()
    eps = torch.randn((n, 4, 2), generator=generator, device=theta.device, dtype=theta.dtype)
    a = theta[:, None, 0] + l11[:, None] * eps[..., 0]
    b = theta[:, None, 1] + l21[:, None] * eps[..., 0] + l22[:, None] * eps[..., 1]
    return torch.stack([a, b], dim=-1).reshape(n, 8)


_N_DISTRACTORS = 92
_N_COMPONENTS = 20


@lru_cache(maxsize=1)
def slcp_distractor_constants() -> tuple[Tensor, Tensor, Tensor]:
    """``(loc (20, 92), scale_tril (20, 92, 92), permutation (100,))``, float64 / int64.

    sbibm drew these once with numpy's global RNG seeded 42 (in this order: 20 locations
    ``15 N(0, I)``, 20 factors ``3 (tril(N) + diag(exp(N)))``, then a permutation of the 100
    columns) and pickled them; the same draws from ``RandomState(42)`` rebuild them exactly.
    """
    rng = np.random.RandomState(42)
    loc = np.array([15 * rng.normal(size=_N_DISTRACTORS) for _ in range(_N_COMPONENTS)])
    factors = [
        np.tril(rng.normal(size=(_N_DISTRACTORS, _N_DISTRACTORS)))
        + np.diag(np.exp(rng.normal(size=_N_DISTRACTORS)))
        for _ in range(_N_COMPONENTS)
    ]
    scale_tril = 3 * np.array(factors)
    permutation = rng.permutation(_N_DISTRACTORS + 8)
    return torch.from_numpy(loc), torch.from_numpy(scale_tril), torch.from_numpy(permutation)


def sample_distractors(n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
                       ) -> tuple[Tensor, Tensor]:
    """``(noise (n, 92), component (n,))``: draws of the distractors' mixture of 20 equally
    weighted multivariate Student-t distributions (2 degrees of freedom), independent of theta.

    A t draw is ``loc + L eps / sqrt(w)`` with ``w ~ chi2(2) / 2``, i.e. ``w ~ Exp(1)``. Each
    component's rows are transformed with one matmul (a loop over the 20 components, not over
    samples).
    """
    loc, scale_tril, _ = slcp_distractor_constants()
    dev = generator.device
    loc, scale_tril = loc.to(dev, dtype), scale_tril.to(dev, dtype)
    comp = torch.randint(0, _N_COMPONENTS, (n,), generator=generator, device=dev)
    eps = torch.randn((n, _N_DISTRACTORS), generator=generator, device=dev, dtype=dtype)
    w = torch.empty((n, 1), device=dev, dtype=dtype).exponential_(generator=generator)
    eps = eps / w.clamp_min(torch.finfo(dtype).tiny).sqrt()
    noise = torch.empty_like(eps)
    for k in range(_N_COMPONENTS):
        rows = comp == k
        noise[rows] = loc[k] + eps[rows] @ scale_tril[k].T
    return noise, comp


def simulate_slcp_distractors(theta: Tensor, generator: torch.Generator) -> Tensor:
    """SLCP's 8 data plus 92 uninformative Student-t mixture draws, columns permuted as sbibm's
    fixed permutation says (``out[:, j] = [slcp | noise][:, perm[j]]``)."""
    data = simulate_slcp(theta, generator)
    noise, _ = sample_distractors(theta.shape[0], generator, theta.dtype)
    perm = slcp_distractor_constants()[2].to(theta.device)
    return torch.cat([data, noise], dim=1)[:, perm]


# -- Bernoulli GLM -----------------------------------------------------------------------------
_GLM_BINS = 100
_GLM_FILTER = 9


@lru_cache(maxsize=1)
def glm_design_matrix() -> Tensor:
    """``(100, 10)`` float32: a column of ones (the offset) and the white-noise stimulus
    delayed by 0..8 bins (zeros before it starts). sbibm drew the stimulus with
    ``RandomState(42).randn(100)`` in float32; the same draws rebuild it exactly."""
    stimulus = torch.from_numpy(np.random.RandomState(42).randn(_GLM_BINS).astype(np.float32))
    design = torch.zeros((_GLM_BINS, _GLM_FILTER + 1))
    design[:, 0] = 1.0
    for lag in range(_GLM_FILTER):
        design[lag:, lag + 1] = stimulus[: _GLM_BINS - lag]
    return design


def glm_prior_precision() -> Tensor:
    """The GLM prior's precision (float64): 0.5 for the offset, and ``F^T F`` for the filter
    with ``F = D^2 + diag(sqrt(i / 9))``, ``D`` the first-difference matrix (smooth filters)."""
    m = _GLM_FILTER
    d = torch.eye(m, dtype=torch.float32) - torch.diag(torch.ones(m - 1), -1)
    f = d @ d + torch.diag(torch.arange(m, dtype=torch.float32) / m) ** 0.5
    precision = torch.zeros((m + 1, m + 1))
    precision[0, 0] = 0.5
    precision[1:, 1:] = f.T @ f
    return precision.double()


def simulate_glm_spikes(theta: Tensor, generator: torch.Generator) -> Tensor:
    """``(n, 100)`` spike trains: bin t spikes with probability ``sigmoid(design[t] . theta)``."""
    design = _const(glm_design_matrix(), theta)
    p = torch.sigmoid(theta @ design.T)
    u = torch.rand(p.shape, generator=generator, device=theta.device, dtype=theta.dtype)
    return (u < p).to(theta.dtype)


def glm_summary(spikes: Tensor) -> Tensor:
    """The 10 sufficient statistics sbibm uses: the spike count and the spike-triggered sums of
    the stimulus at lags 0..8. sbibm computes them as the last 9 outputs of a padded
    ``conv1d``; that is exactly ``spikes @ design`` (the tests check it)."""
    return spikes @ _const(glm_design_matrix(), spikes)


def simulate_bernoulli_glm(theta: Tensor, generator: torch.Generator) -> Tensor:
    """Spike trains of the GLM reduced to their 10 summary statistics."""
    return glm_summary(simulate_glm_spikes(theta, generator))


# -- the registry of tasks ---------------------------------------------------------------------
TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("two_moons", 2, 2, BoxUniform(2, -1.0, 1.0), simulate_two_moons,
             "Two Moons: crescent-shaped bimodal posterior; theta ~ U(-1, 1)^2",
             folder="two_moons"),
        Task("slcp", 5, 8, BoxUniform(5, -3.0, 3.0), simulate_slcp,
             "SLCP: simple likelihood, complex posterior (4 draws of a 2-D Gaussian whose mean, "
             "scales and correlation are the parameters); theta ~ U(-3, 3)^5",
             folder="slcp"),
        Task("slcp_distractors", 5, 100, BoxUniform(5, -3.0, 3.0), simulate_slcp_distractors,
             "SLCP with 92 distractors (Student-t mixture noise), columns permuted; "
             "theta ~ U(-3, 3)^5",
             folder="slcp", observation_file="observation_distractors.csv"),
        Task("gaussian_linear", 10, 10, Gaussian(torch.eye(10, dtype=torch.float64) / 0.1),
             simulate_gaussian_linear,
             "Gaussian Linear: x ~ N(theta, 0.1 I), theta ~ N(0, 0.1 I); closed-form posterior",
             folder="gaussian_linear"),
        Task("gaussian_linear_uniform", 10, 10, BoxUniform(10, -1.0, 1.0),
             simulate_gaussian_linear,
             "Gaussian Linear Uniform: x ~ N(theta, 0.1 I), theta ~ U(-1, 1)^10",
             folder="gaussian_linear_uniform"),
        Task("gaussian_mixture", 2, 2, BoxUniform(2, -10.0, 10.0), simulate_gaussian_mixture,
             "Gaussian Mixture: x ~ 0.5 N(theta, I) + 0.5 N(theta, 0.01 I), "
             "theta ~ U(-10, 10)^2",
             folder="gaussian_mixture"),
        Task("bernoulli_glm", 10, 10, Gaussian(glm_prior_precision()), simulate_bernoulli_glm,
             "Bernoulli GLM: 100 bins of spikes from a logistic GLM with a 9-tap stimulus filter, "
             "reduced to 10 sufficient statistics; smoothness-encouraging Gaussian prior",
             folder="bernoulli_glm"),
        Task("bernoulli_glm_raw", 10, 100, Gaussian(glm_prior_precision()), simulate_glm_spikes,
             "Bernoulli GLM with the raw 100-bin spike train as data",
             folder="bernoulli_glm", observation_file="observation_raw.csv"),
    ]
}
"""Every task implemented here, by sbibm's name. Not implemented: ``lotka_volterra`` and
``sir`` (they need an ODE solver), and sbibm's Julia tasks."""


def get_task(name: str) -> Task:
    """The task called ``name`` (sbibm's name, e.g. ``"two_moons"``)."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"no sbibm task {name!r}; implemented: {', '.join(TASKS)}") from None
