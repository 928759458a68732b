"""The INN of Ardizzone et al. (2019): x, zero-padded to width D, <-> [y | z | pad].

Trained by the three losses of :mod:`invkit.training.inn_objective`, it learns the forward
process as its y output and puts what y does not tell about x into a latent z ~ N(0, I);
run backwards on [y, fresh z, zero padding] it samples the posterior.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from invkit.errors import ConfigError
from invkit.models import standardisation
from invkit.models.network import coupling_chain, run_chain, seeded, standard_normal_log_prob


def resolve_dims(dim_x: int, dim_y: int, dim_z: int = 0, dim_total: int = 0) -> tuple[int, int]:
    """(dim_z, dim_total) with the 0 = automatic rule applied and checked."""
    dim_z = dim_z or (max(1, dim_x - dim_y) if dim_y < dim_x else dim_x)
    dim_total = dim_total or max(dim_x, dim_y + dim_z)
    if dim_total < max(dim_x, dim_y + dim_z):
        raise ConfigError(
            f"model.dim_total={dim_total} is too small: it must hold x ({dim_x}) and "
            f"[y, z] ({dim_y} + {dim_z}). Set model.dim_total >= {max(dim_x, dim_y + dim_z)} "
            f"or 0 for automatic."
        )
    if dim_total < 2:
        dim_total = 2  # a coupling block needs two halves
    return dim_z, dim_total


class PaddedINN(nn.Module):
    """x (zero-padded to ``dim_total``) -> [y | z | pad] and back.

    ``forward`` and ``inverse`` return ``(out, log|det J|)`` of the direction they compute.

    With ``standardise`` the network works on standardised x and y (fixed per-dimension
    shift and scale, buffers set by ``init_standardisation`` from the first training batch):
    ``forward``/``inverse`` and the losses see that space, ``sample_posterior`` and ``predict``
    map back to the original units (the density gets the scaling's log-det). Off, the model
    has no such buffers.
    """

    def __init__(self, dim_x: int, dim_y: int, *, dim_z: int = 0, dim_total: int = 0,
                 block: str = "glow", n_blocks: int = 8, subnet_width: int = 256,
                 subnet_depth: int = 2, clamp: float = 2.0, leaky_slope: float = 0.01,
                 standardise: bool = False, seed: int = 0, spline_bins: int = 8,
                 spline_bound: float = 3.0) -> None:
        super().__init__()
        self.dim_x, self.dim_y = dim_x, dim_y
        self.dim_z, self.dim_total = resolve_dims(dim_x, dim_y, dim_z, dim_total)
        self.standardise = bool(standardise)
        if self.standardise:  # off: no buffers, so the state dict is what it always was
            standardisation.add_buffers(self, dim_x, dim_y)
        with seeded(seed):
            self.net = coupling_chain(self.dim_total, n_blocks=n_blocks, block=block,
                                      clamp=clamp, subnet_width=subnet_width,
                                      subnet_depth=subnet_depth, leaky_slope=leaky_slope,
                                      seed=seed, spline_bins=spline_bins,
                                      spline_bound=spline_bound)

    # -- standardisation -------------------------------------------------------------------
    @property
    def needs_standardisation(self) -> bool:
        """Whether the statistics still have to be set from data (once, before training)."""
        return self.standardise and not bool(self.standardised)

    def init_standardisation(self, x: Tensor, y: Tensor) -> None:
        """Set the fixed affine maps of x and y from a batch (mean, std; constant dims: 1)."""
        if not self.standardise:
            raise ConfigError("init_standardisation needs a model built with "
                              "model.standardise=true.")
        standardisation.set_from_batch(self, x, y)

    def standardise_x(self, x: Tensor) -> Tensor:
        return (x - self.x_shift) / self.x_scale if self.standardise else x

    def standardise_y(self, y: Tensor) -> Tensor:
        return (y - self.y_shift) / self.y_scale if self.standardise else y

    def unstandardise_x(self, u: Tensor) -> Tensor:
        """Back to the original units: x = shift + scale * u."""
        return u * self.x_scale + self.x_shift if self.standardise else u

    # -- layout helpers --------------------------------------------------------------------
    @property
    def pad_x(self) -> int:
        return self.dim_total - self.dim_x

    @property
    def pad_yz(self) -> int:
        return self.dim_total - self.dim_y - self.dim_z

    def split_output(self, out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """[y | z | pad] -> (y, z, pad)."""
        dy, dz = self.dim_y, self.dim_z
        return out[:, :dy], out[:, dy:dy + dz], out[:, dy + dz:]

    def join_output(self, y: Tensor, z: Tensor, pad: Tensor) -> Tensor:
        return torch.cat([y, z, pad], dim=1)

    def pad_input(self, x: Tensor, pad: Tensor) -> Tensor:
        return torch.cat([x, pad], dim=1)

    # -- directions ------------------------------------------------------------------------
    def forward(self, x_padded: Tensor, rev: bool = False) -> tuple[Tensor, Tensor]:
        return run_chain(self.net, x_padded, rev=rev)

    def inverse(self, yz_padded: Tensor) -> tuple[Tensor, Tensor]:
        return self.forward(yz_padded, rev=True)

    # -- what a posterior needs -------------------------------------------------------------
    def sample_posterior(self, y: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """x = g(y, z) for fresh z ~ N(0, I), padding zero, and log q = log p(z) - log|det dg|."""
        b = y.shape[0]
        z = torch.randn(b, self.dim_z, generator=gen, device=y.device, dtype=y.dtype)
        pad = y.new_zeros(b, self.pad_yz)
        x_pad, log_jac_rev = self.inverse(self.join_output(self.standardise_y(y), z, pad))
        x = self.unstandardise_x(x_pad[:, :self.dim_x])
        log_q = standard_normal_log_prob(z) - log_jac_rev
        if self.standardise:  # the density of x, not of its standardised u
            log_q = log_q - torch.log(self.x_scale).sum()
        return x, log_q

    def predict(self, x: Tensor) -> Tensor:
        """f_y(x): the learned forward process, with zero padding."""
        u = self.standardise_x(x)
        out, _ = self(self.pad_input(u, u.new_zeros(u.shape[0], self.pad_x)))
        y = self.split_output(out)[0]
        return y * self.y_scale + self.y_shift if self.standardise else y
