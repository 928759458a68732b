"""The table of objectives, one per model kind (the kinds are in :mod:`invkit.models.kinds`).

An objective is a module (so that DistributedDataParallel sees the whole loss in ``forward``)
called as ``objective(x, y, gen, x_weight, part)`` on one *global* batch. It returns its loss
terms by name, already weighted; the trainer sums them (:func:`total_loss`), in one place.

``part`` (:mod:`invkit.training.batch`) says which rows of the batch this process computes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from invkit.config import RunConfig
from invkit.errors import ConfigError
from invkit.problem import Problem
from invkit.training.cinn_objective import MaxLikelihoodObjective
from invkit.training.inn_objective import INNObjective


def _inn(cfg: RunConfig, model: nn.Module, problem: Problem | None) -> nn.Module:
    sim = None
    if problem is not None and cfg.train.lambda_resim > 0:
        if not problem.has_simulator:
            raise ConfigError(f"train.lambda_resim pushes samples through the forward process, "
                              f"but problem {problem.name!r} has none (its pairs come from a "
                              f"file): drop --set train.lambda_resim for it.")
        process = problem.forward_process
        if not process.differentiable:
            why = ("it draws its own noise" if process.stochastic else
                   "it is not written in torch" if process.backend != "torch" else
                   "it runs one sample at a time")
            raise ConfigError(
                f"train.lambda_resim needs gradients through the forward process, and "
                f"{process.name!r} of problem {problem.name!r} has none to give: {why} "
                f"(backend={process.backend!r}, rng={process.rng!r}, vectorized="
                f"{process.vectorized!r}). L_resim needs a batched, deterministic torch "
                f"simulator: drop --set train.lambda_resim for this problem.")
        if problem.noise_std > 0:
            raise ConfigError(
                f"train.lambda_resim asks samples to reproduce y exactly through the "
                f"forward process, but problem {problem.name!r} has observation noise "
                f"(noise_std {problem.noise_std:g}), so its posterior does not: drop "
                f"--set train.lambda_resim for it.")
        sim = problem.forward_process
    return INNObjective(model, cfg.train, sim)  # type: ignore[arg-type]


def _cinn(cfg: RunConfig, model: nn.Module, problem: Problem | None) -> nn.Module:
    return MaxLikelihoodObjective(model, cfg.train)  # type: ignore[arg-type]


OBJECTIVES: dict[str, Callable[[RunConfig, nn.Module, Problem | None], nn.Module]] = {
    "inn": _inn,
    "cinn": _cinn,
}
"""model.kind -> the objective that trains it (the same keys as ``MODEL_KINDS``)."""


def build_objective(cfg: RunConfig, model: nn.Module, problem: Problem | None = None
                    ) -> nn.Module:
    if cfg.model.kind not in OBJECTIVES:
        raise ConfigError(f"model.kind {cfg.model.kind!r} has no objective; known kinds: "
                          f"{', '.join(OBJECTIVES)}.")
    return OBJECTIVES[cfg.model.kind](cfg, model, problem)


def total_loss(terms: dict[str, Tensor]) -> Tensor:
    """The one place loss terms are summed (in their order: the sum's rounding is part of a
    seeded run's result)."""
    return sum(terms.values())  # type: ignore[return-value]


def set_standardisation(model: nn.Module, x: Tensor, y: Tensor) -> None:
    """Set a model's fixed standardisation from a batch, once, if it uses one and has none yet
    (a resumed or loaded model keeps its own)."""
    if getattr(model, "needs_standardisation", False):
        with torch.no_grad():
            model.init_standardisation(x, y)
