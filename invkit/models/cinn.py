"""The conditional INN (cINN): a normalising flow x <-> z for each observation y.

Where the INN of Ardizzone et al. maps x to [y, z] and learns y as an output, the cINN takes y as a
*condition* of every coupling block and maps x alone to a latent z ~ N(0, I) of the same width:

    z = f(x; y),    x = g(z; y) = f^{-1}(z; y).

Trained by maximum likelihood on (x, y) pairs from the prior and the simulator, it gives
posterior samples (x = g(z; y), z ~ N(0, I)) and, unlike the INN, an exact density at *any* x:

    log q(x | y) = log N(f(x; y); 0, I) + log|det df/dx (x; y)|        (change of variables)

Both directions are the same network, so the density of a sample x = g(z; y) is
log N(z) - log|det dg/dz (z; y)|, which is the same number (up to float rounding).

Layout: x is standardised with a fixed affine map (shift and scale estimated from the first
training batch, stored as buffers; its constant log-det is part of every density), then runs
through coupling blocks (GLOW by default), each conditioned on y and followed by a seeded
random permutation. y is standardised the same way and, with ``model.cond_features > 0``,
passed through a small learned feature network (shared by all blocks) before it conditions
the couplings; with ``cond_features = 0`` (the default) the couplings see the standardised y.

Noise level as a condition (``noise_level_input``): training then smooths each pair's y by a
random fraction u of the training noise and appends u to the condition, so one network learns
the whole family q(x | y, u) of smoothed posteriors; sampling and densities use the fixed
level ``noise_level_sampled`` (0: the observation taken as exact).

One-dimensional x: a coupling block needs two halves, so x is padded with one auxiliary
coordinate e ~ N(0, 1), drawn fresh for every training pair. The flow then models
q(x, e | y); at the maximum-likelihood optimum e is independent of (x, y), so
log q(x | y) = log q(x, e | y) - log N(e) for any e. ``log_prob`` (and the density reported
for samples) evaluates this at e = 0, which is exact for a perfectly trained model and an
approximation otherwise.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from invkit.errors import ConfigError
from invkit.models import standardisation
from invkit.models.network import coupling_chain, run_chain, seeded, standard_normal_log_prob

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class ConditionalINN(nn.Module):
    """q(x | y) as a conditional normalising flow; see the module docstring for the densities.

    Directions (both return the log|det| of the map they compute):
    ``encode(x, y) -> (z, log|det dz/dx|)`` and ``decode(z, y) -> (x, log|det dx/dz|)``.
    What a posterior needs: ``sample_posterior(y, gen) -> (x, log q(x | y))`` and
    ``log_prob(x, y) -> log q(x | y)`` (row by row, any x).
    """

    def __init__(self, dim_x: int, dim_y: int, *, block: str = "glow", n_blocks: int = 8,
                 subnet_width: int = 256, subnet_depth: int = 2, clamp: float = 2.0,
                 leaky_slope: float = 0.01, cond_features: int = 0, cond_width: int = 128,
                 noise_level_input: bool = False, noise_level_sampled: float = 0.0,
                 seed: int = 0, spline_bins: int = 8, spline_bound: float = 3.0) -> None:
        super().__init__()
        if dim_x < 1 or dim_y < 1:
            raise ConfigError(f"the cINN needs dim_x >= 1 and dim_y >= 1, got {dim_x}, {dim_y}.")
        self.dim_x, self.dim_y = dim_x, dim_y
        self.dim_in = max(2, dim_x)  # a coupling block needs two halves
        self.n_aux = self.dim_in - dim_x
        if not 0.0 <= noise_level_sampled <= 1.0:
            raise ConfigError(f"model.noise_level_sampled must be in [0, 1] (a fraction of "
                              f"train.y_noise), got {noise_level_sampled!r}.")
        self.noise_level_input = bool(noise_level_input)
        self.noise_level_sampled = float(noise_level_sampled)
        dim_c = dim_y + int(self.noise_level_input)  # y, and the noise level if it conditions
        self.dim_cond = cond_features or dim_c
        # fixed standardisation of x and y (set from data by ``init_standardisation``)
        standardisation.add_buffers(self, dim_x, dim_y)
        with seeded(seed):
            self.cond_net: nn.Module | None = None
            if cond_features:
                self.cond_net = nn.Sequential(
                    nn.Linear(dim_c, cond_width), nn.LeakyReLU(leaky_slope),
                    nn.Linear(cond_width, cond_width), nn.LeakyReLU(leaky_slope),
                    nn.Linear(cond_width, cond_features),
                )
            self.net = coupling_chain(self.dim_in, n_blocks=n_blocks, block=block, clamp=clamp,
                                      subnet_width=subnet_width, subnet_depth=subnet_depth,
                                      leaky_slope=leaky_slope, cond_width=self.dim_cond,
                                      seed=seed, spline_bins=spline_bins,
                                      spline_bound=spline_bound)

    # -- standardisation -------------------------------------------------------------------
    @property
    def needs_standardisation(self) -> bool:
        """Whether the statistics still have to be set from data (once, before training)."""
        return not bool(self.standardised)

    def init_standardisation(self, x: Tensor, y: Tensor) -> None:
        """Set the fixed affine maps of x and y from a batch (mean, std; constant dims: 1)."""
        standardisation.set_from_batch(self, x, y)

    def conditions(self, y: Tensor, level: Tensor | None = None) -> Tensor:
        """What the coupling blocks see: standardised y (and the noise level, with
        ``noise_level_input``; ``level`` of shape (n, 1), default ``noise_level_sampled``),
        through the feature network if any."""
        c = (y - self.y_shift) / self.y_scale
        if self.noise_level_input:
            if level is None:
                level = c.new_full((c.shape[0], 1), self.noise_level_sampled)
            c = torch.cat([c, level], 1)
        return self.cond_net(c) if self.cond_net is not None else c

    def _log_scale(self) -> Tensor:
        return torch.log(self.x_scale).sum()

    # -- directions ------------------------------------------------------------------------
    def encode(self, x: Tensor, y: Tensor, aux: Tensor | None = None,
               level: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """z = f(x; y) and log|det df/dx| (standardisation included). ``aux``: the auxiliary
        coordinate of 1-D problems (default 0); ``level``: see ``conditions``."""
        u = (x - self.x_shift) / self.x_scale
        if self.n_aux:
            u = torch.cat([u, aux if aux is not None else u.new_zeros(u.shape[0], self.n_aux)], 1)
        z, log_jac = run_chain(self.net, u, self.conditions(y, level))
        return z, log_jac - self._log_scale()

    def decode(self, z: Tensor, y: Tensor, level: Tensor | None = None
               ) -> tuple[Tensor, Tensor]:
        """x = g(z; y) and log|det dg/dz| (the auxiliary coordinate, if any, is dropped);
        ``level``: see ``conditions``."""
        u, log_jac = run_chain(self.net, z, self.conditions(y, level), rev=True)
        x = u[:, :self.dim_x] * self.x_scale + self.x_shift
        return x, log_jac + self._log_scale()

    def forward(self, x: Tensor, y: Tensor, aux: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.encode(x, y, aux)

    # -- densities -------------------------------------------------------------------------
    def log_prob(self, x: Tensor, y: Tensor) -> Tensor:
        """Exact log q(x | y) for each row: log N(f(x; y)) + log|det df/dx|.

        For 1-D x this is log q(x, e=0 | y) - log N(0), exact at the ML optimum (module doc).
        """
        z, log_jac = self.encode(x, y)
        lp = standard_normal_log_prob(z) + log_jac
        if self.n_aux:
            lp = lp + self.n_aux * _HALF_LOG_2PI  # minus log N(e = 0) per auxiliary coordinate
        return lp

    def nll_terms(self, x: Tensor, y: Tensor, aux: Tensor | None = None,
                  level: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per row: (||z||^2 / 2, log|det df/dx|); -log q = the first - the second + const."""
        z, log_jac = self.encode(x, y, aux, level)
        return 0.5 * z.square().sum(1), log_jac

    # -- what a posterior needs -------------------------------------------------------------
    def sample_posterior(self, y: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """x = g(z; y) for fresh z ~ N(0, I) and its exact log q(x | y) = log N(z) - log|det dg/dz|.

        (1-D x: the density is recomputed at e = 0 so it agrees with ``log_prob``.)
        """
        z = torch.randn(y.shape[0], self.dim_in, generator=gen, device=y.device, dtype=y.dtype)
        x, log_jac = self.decode(z, y)
        if self.n_aux:
            return x, self.log_prob(x, y)
        return x, standard_normal_log_prob(z) - log_jac
