"""The table of model kinds (``model.kind``): how each network is built from the config.

This is the edge where the config becomes plain keyword arguments: the model classes know
nothing of :mod:`invkit.config` nor of training. Each kind's objective is in the matching table
of :mod:`invkit.training.objectives`. A kind's model provides ``sample_posterior(y, gen) ->
(x, log_q)`` (what :class:`invkit.posterior.Posterior` needs) and, for exact densities,
``log_prob(x, y)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from invkit.config import ModelConfig
from invkit.errors import ConfigError
from invkit.models.cinn import ConditionalINN
from invkit.models.inn import PaddedINN


@dataclass(frozen=True)
class ModelKind:
    name: str
    build: Callable[[ModelConfig, int, int, int], nn.Module]  # (cfg, dim_x, dim_y, seed)
    description: str


def _network_args(cfg: ModelConfig) -> dict[str, Any]:
    return {"block": cfg.block, "n_blocks": cfg.n_blocks, "subnet_width": cfg.subnet_width,
            "subnet_depth": cfg.subnet_depth, "clamp": cfg.clamp,
            "leaky_slope": cfg.leaky_slope, "spline_bins": cfg.spline_bins,
            "spline_bound": cfg.spline_bound}


def _inn(cfg: ModelConfig, dim_x: int, dim_y: int, seed: int) -> nn.Module:
    return PaddedINN(dim_x, dim_y, dim_z=cfg.dim_z, dim_total=cfg.dim_total,
                     standardise=cfg.standardise, seed=seed, **_network_args(cfg))


def _cinn(cfg: ModelConfig, dim_x: int, dim_y: int, seed: int) -> nn.Module:
    return ConditionalINN(dim_x, dim_y, cond_features=cfg.cond_features,
                          cond_width=cfg.cond_width, noise_level_input=cfg.noise_level_input,
                          noise_level_sampled=cfg.noise_level_sampled, seed=seed,
                          **_network_args(cfg))


MODEL_KINDS: dict[str, ModelKind] = {
    "inn": ModelKind("inn", _inn, "the INN of Ardizzone et al. 2019: x <-> [y, z], trained "
                                  "by its three losses"),
    "cinn": ModelKind("cinn", _cinn, "conditional INN: x <-> z given y, trained by maximum "
                                     "likelihood (exact densities)"),
}


def build_model(cfg: ModelConfig, dim_x: int, dim_y: int, seed: int = 0) -> nn.Module:
    """The network of ``cfg.kind`` for a problem of these dimensions (weights from ``seed``)."""
    if cfg.kind not in MODEL_KINDS:
        raise ConfigError(f"model.kind {cfg.kind!r} has no builder; known kinds: "
                          f"{', '.join(MODEL_KINDS)}.")
    return MODEL_KINDS[cfg.kind].build(cfg, dim_x, dim_y, seed)
