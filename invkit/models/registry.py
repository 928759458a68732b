"""Model kinds other than the write-up's INN: how to build each network and its objective.

``model.kind`` selects the entry; the trainer builds ``inn`` itself and asks here for the rest.
A kind's model must provide ``sample_posterior(y, gen) -> (x, log_q)`` (what
:class:`invkit.posterior.Posterior` needs) and, for exact densities, ``log_prob(x, y)``; its
objective is a module whose ``forward(x, y, gen, x_weight)`` returns the stacked losses (total
first) named by its ``loss_names``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from invkit.errors import ConfigError


@dataclass(frozen=True)
class ModelKind:
    name: str
    build_model: Callable[[Any, Any], nn.Module]  # (RunConfig, Problem) -> model
    build_objective: Callable[[Any, nn.Module], nn.Module]  # (RunConfig, model) -> objective
    description: str = ""


def _cinn_model(cfg: Any, problem: Any) -> nn.Module:
    from invkit.models.cinn import build_cinn

    return build_cinn(cfg.model, problem.dim_x, problem.dim_y, seed=cfg.seed)


def _cinn_objective(cfg: Any, model: nn.Module) -> nn.Module:
    from invkit.training.ml_objective import MaxLikelihoodObjective

    return MaxLikelihoodObjective(model, cfg.train)  # type: ignore[arg-type]


KINDS: dict[str, ModelKind] = {
    "cinn": ModelKind("cinn", _cinn_model, _cinn_objective,
                      "conditional INN trained by maximum likelihood (exact densities)"),
}


def _kind(name: str) -> ModelKind:
    if name not in KINDS:
        raise ConfigError(f"model.kind {name!r} has no builder; known kinds: inn, "
                          f"{', '.join(KINDS)}.")
    return KINDS[name]


def build_other_model(cfg: Any, problem: Any) -> nn.Module:
    return _kind(cfg.model.kind).build_model(cfg, problem)


def build_other_objective(cfg: Any, model: nn.Module) -> nn.Module:
    return _kind(cfg.model.kind).build_objective(cfg, model)
