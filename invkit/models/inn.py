"""The write-up's INN: x padded to width D <-> [y | z | pad], from FrEIA graph nodes."""

from __future__ import annotations

from contextlib import contextmanager

import FrEIA.framework as Ff
import FrEIA.modules as Fm
import numpy as np
import torch
from torch import Tensor, nn

from invkit.config import ModelConfig
from invkit.errors import ConfigError
from invkit.models import standardisation
from invkit.models.subnets import dense_subnet
from invkit.problem import standard_normal_log_prob

BLOCKS = {
    "glow": Fm.GLOWCouplingBlock,
    "rnvp": Fm.RNVPCouplingBlock,
    "allinone": Fm.AllInOneBlock,
}


def resolve_dims(cfg: ModelConfig, dim_x: int, dim_y: int) -> tuple[int, int]:
    """(dim_z, dim_total) with the config's 0 = automatic rule applied and checked."""
    dim_z = cfg.dim_z or (max(1, dim_x - dim_y) if dim_y < dim_x else dim_x)
    dim_total = cfg.dim_total or max(dim_x, dim_y + dim_z)
    if dim_total < max(dim_x, dim_y + dim_z):
        raise ConfigError(
            f"model.dim_total={dim_total} is too small: it must hold x ({dim_x}) and "
            f"[y, z] ({dim_y} + {dim_z}). Set model.dim_total >= {max(dim_x, dim_y + dim_z)} "
            f"or 0 for automatic."
        )
    if dim_total < 2:
        dim_total = 2  # a coupling block needs two halves
    return dim_z, dim_total


def coupling_block(cfg: ModelConfig) -> tuple[type, dict]:
    """The FrEIA block class and its arguments (AllInOne names its clamp differently)."""
    subnet = dense_subnet(cfg.subnet_width, cfg.subnet_depth, cfg.leaky_slope)
    clamp_key = "affine_clamping" if cfg.block == "allinone" else "clamp"
    return BLOCKS[cfg.block], {"subnet_constructor": subnet, clamp_key: cfg.clamp}


@contextmanager
def _numpy_rng_preserved():
    """FrEIA 0.2's PermuteRandom(seed=k) reseeds numpy's global RNG; undo that side effect."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


class PaddedINN(nn.Module):
    """x (zero-padded to ``dim_total``) -> [y | z | pad] and back.

    ``forward`` and ``inverse`` return ``(out, log|det J|)`` of the direction they compute.

    With ``model.standardize`` the network works on standardised x and y (fixed per-dimension
    shift and scale, buffers set by ``init_standardisation`` from the first training batch):
    ``forward``/``inverse`` and the losses see that space, ``sample_posterior`` and ``predict``
    map back to the original units (the density gets the scaling's log-det). Off (default),
    the model has no such buffers and computes exactly what it did without the option.
    """

    def __init__(self, dim_x: int, dim_y: int, cfg: ModelConfig, seed: int = 0) -> None:
        super().__init__()
        if cfg.block not in BLOCKS:
            raise ConfigError(f"model.block must be one of {', '.join(BLOCKS)}, got {cfg.block!r}.")
        self.dim_x, self.dim_y = dim_x, dim_y
        self.dim_z, self.dim_total = resolve_dims(cfg, dim_x, dim_y)
        self.standardize = bool(cfg.standardize)
        if self.standardize:  # off: no buffers, so the state dict is what it always was
            standardisation.add_buffers(self, dim_x, dim_y)
        block, block_args = coupling_block(cfg)
        with _numpy_rng_preserved(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            # AllInOneBlock draws its permutation from numpy's global RNG: seed it too (the
            # caller's numpy state is restored on exit), so the seed alone fixes the network
            np.random.seed(seed % 2**32)
            nodes: list[Ff.Node] = [Ff.InputNode(self.dim_total, name="input")]
            for k in range(cfg.n_blocks):
                nodes.append(Ff.Node(nodes[-1], block, block_args, name=f"coupling_{k}"))
                # numpy seeds must fit 32 bits: identical permutations for seeds below 4294967
                nodes.append(Ff.Node(nodes[-1], Fm.PermuteRandom,
                                     {"seed": (seed * 1000 + k) % 2**32},
                                     name=f"permute_{k}"))
            nodes.append(Ff.OutputNode(nodes[-1], name="output"))
            self.net = Ff.GraphINN(nodes)
        # The graph is a chain: run its modules in order (state dict unchanged). FrEIA 0.2's
        # GraphINN.forward builds a CPU tensor and copies it to the device on every call and
        # for every PermuteRandom (a blocking host-to-device copy each on CUDA: 1 + n_blocks
        # per pass).
        special = (Ff.InputNode, Ff.OutputNode)
        self._chain = [n.module for n in self.net.node_list if not isinstance(n, special)]

    # -- standardisation (model.standardize) -----------------------------------------------
    def init_standardisation(self, x: Tensor, y: Tensor) -> None:
        """Set the fixed affine maps of x and y from a batch (mean, std; constant dims: 1)."""
        if not self.standardize:
            raise ConfigError("init_standardisation needs a model built with "
                              "model.standardize=true.")
        standardisation.set_from_batch(self, x, y)

    def standardise_x(self, x: Tensor) -> Tensor:
        return (x - self.x_shift) / self.x_scale if self.standardize else x

    def standardise_y(self, y: Tensor) -> Tensor:
        return (y - self.y_shift) / self.y_scale if self.standardize else y

    def unstandardise_x(self, u: Tensor) -> Tensor:
        """Back to the original units: x = shift + scale * u."""
        return u * self.x_scale + self.x_shift if self.standardize else u

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
        h, log_jac = (x_padded,), None
        for module in (reversed(self._chain) if rev else self._chain):
            h, jac = module(h, rev=rev, jac=True)
            if torch.is_tensor(jac):  # volume-preserving modules return a float 0.0
                log_jac = jac if log_jac is None else log_jac + jac
        if log_jac is None:
            log_jac = x_padded.new_zeros(x_padded.shape[0])
        return h[0], log_jac

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
        if self.standardize:  # the density of x, not of its standardised u
            log_q = log_q - torch.log(self.x_scale).sum()
        return x, log_q

    def predict(self, x: Tensor) -> Tensor:
        """f_y(x): the learned forward process, with zero padding."""
        u = self.standardise_x(x)
        out, _ = self(self.pad_input(u, u.new_zeros(u.shape[0], self.pad_x)))
        y = self.split_output(out)[0]
        return y * self.y_scale + self.y_shift if self.standardize else y


def build_inn(cfg: ModelConfig, dim_x: int, dim_y: int, seed: int = 0) -> PaddedINN:
    return PaddedINN(dim_x, dim_y, cfg, seed=seed)
