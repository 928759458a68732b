"""Registers the oscillator with invkit (entry point ``oscillator``): a torch prior and a plain
numpy simulator that takes its own ``numpy.random.Generator``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import invkit
import torch
from invkit import ForwardProcess, Prior, Problem, ProblemSpec

from invkit_oscillator import model

PRESETS: dict[str, dict[str, Any]] = {
    # on top of invkit's own quick preset: seconds on a laptop, not a usable posterior
    "quick": {"train.steps": 300},
}


def sample_prior(n: int, generator: torch.Generator) -> torch.Tensor:
    """log w ~ N(0, 0.3^2), zeta ~ U(0.05, 0.6); all randomness from the generator."""
    dev = generator.device
    log_w = model.LOG_W[0] + model.LOG_W[1] * torch.randn(n, 1, generator=generator, device=dev)
    lo, hi = model.ZETA
    zeta = lo + (hi - lo) * torch.rand(n, 1, generator=generator, device=dev)
    return torch.cat([log_w, zeta], 1)


def prior_log_prob(x: torch.Tensor) -> torch.Tensor:
    mean, std = model.LOG_W
    lo, hi = model.ZETA
    normal = -0.5 * ((x[:, 0] - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))
    inside = (x[:, 1] >= lo) & (x[:, 1] <= hi)
    return torch.where(inside, normal - math.log(hi - lo), torch.full_like(normal, -math.inf))


PRIOR = Prior("oscillator_prior", 2, sample_prior, prior_log_prob,
              description="log w ~ N(0, 0.3^2), zeta ~ U(0.05, 0.6)")
SIMULATOR = ForwardProcess(
    "oscillator_numpy", 2, model.TIMES.size, model.simulate, backend="numpy", rng="generator",
    description="damped oscillator at 8 times + N(0, 0.05^2) noise (plain numpy)")


def build() -> Problem:
    return Problem(
        name="oscillator", prior=PRIOR, forward=SIMULATOR,
        description="damped oscillator observed with noise; numpy simulator with its own RNG",
        param_names=["log_w", "zeta"],
        obs_names=[f"u(t={t:.2f})" for t in model.TIMES])


@invkit.hookimpl
def invkit_register_problems(register: Callable[[ProblemSpec], None]) -> None:
    register(ProblemSpec("oscillator", build, presets=PRESETS,
                         description="damped oscillator, plain numpy simulator"))
