"""The mathematics of the problem, in plain batched torch (no invkit imports needed).

Prior x ~ N(0, I_d), observation y = A x + e with e ~ N(0, s^2 I). Then the posterior is

    p(x | y) = N(K y, S),   S = (I + A^T A / s^2)^-1,   K = S A^T / s^2,

the same covariance S for every y. Everything is computed once in float64 and cached per
device, so the hot paths (training data, evaluation) do no host-to-device copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor


def make_matrix(dim_y: int, dim_x: int, seed: int) -> Tensor:
    """The forward matrix A, shape (dim_y, dim_x): N(0, 1/dim_x) entries from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((dim_y, dim_x), generator=gen, dtype=torch.float64) / math.sqrt(dim_x)


def sample_standard_normal(dim: int):
    """A prior sampler ``sample(n, generator) -> (n, dim)`` for N(0, I_dim)."""

    def sample(n: int, generator: torch.Generator) -> Tensor:
        return torch.randn((n, dim), generator=generator, device=generator.device)

    return sample


def standard_normal_log_prob(x: Tensor) -> Tensor:
    """log N(x; 0, I), summed over the last dimension."""
    return -0.5 * (x**2).sum(-1) - 0.5 * x.shape[-1] * math.log(2 * math.pi)


@dataclass
class LinearGaussian:
    """A (dim_y, dim_x) matrix and the noise level, with the exact posterior they imply."""

    matrix: Tensor  # A, float64, (dim_y, dim_x)
    noise_std: float
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.noise_std > 0:
            raise ValueError(f"noise_std must be positive for a proper posterior, "
                             f"got {self.noise_std!r}")
        a = self.matrix
        precision = torch.eye(a.shape[1], dtype=torch.float64) + a.T @ a / self.noise_std**2
        self.cov = torch.linalg.inv(precision)  # S, (dim_x, dim_x)
        self.cov = 0.5 * (self.cov + self.cov.T)
        self.gain = self.cov @ a.T / self.noise_std**2  # K, (dim_x, dim_y)
        self.chol = torch.linalg.cholesky(self.cov)  # S = L L^T

    @property
    def dim_x(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def dim_y(self) -> int:
        return int(self.matrix.shape[0])

    def _on(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        key = (torch.device(device), dtype)
        if key not in self._cache:
            self._cache[key] = tuple(t.to(device=device, dtype=dtype)
                                     for t in (self.matrix, self.gain, self.chol))
        return self._cache[key]

    def forward(self, x: Tensor) -> Tensor:
        """y = A x, (n, dim_x) -> (n, dim_y), without noise: invkit adds ``noise_std``."""
        a, _, _ = self._on(x.device, x.dtype)
        return x @ a.T

    def posterior_mean(self, y: Tensor) -> Tensor:
        """E[x | y] = K y for y of shape (m, dim_y): (m, dim_x)."""
        _, k, _ = self._on(y.device, y.dtype)
        return y @ k.T

    def sample_posterior(self, y: Tensor, n: int, generator: torch.Generator) -> Tensor:
        """Exact posterior samples: y (m, dim_y) -> (m, n, dim_x), all rows at once."""
        y = y.float() if not y.is_floating_point() else y
        _, _, chol = self._on(y.device, y.dtype)
        eps = torch.randn((y.shape[0], n, self.dim_x), generator=generator, device=y.device,
                          dtype=y.dtype)
        return self.posterior_mean(y)[:, None, :] + eps @ chol.T
