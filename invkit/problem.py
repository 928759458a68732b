"""What a plugin provides: priors, forward processes, problems and baselines.

Everything here is plain data plus torch callables, so that plugins stay small and the core can
validate them. All callables work on batches and must be pure torch, so they run on any device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from invkit.evaluation.context import EvalContext

SampleFn = Callable[[int, torch.Generator], Tensor]
"""``sample(n, generator) -> (n, dim)`` float tensor on ``generator.device``."""


@dataclass(frozen=True)
class Prior:
    """A prior p(x) over ``dim`` parameters.

    ``sample(n, generator)`` must return an ``(n, dim)`` float tensor on the generator's device,
    drawing all randomness from ``generator`` (never from global RNGs) so runs are reproducible.
    ``log_prob`` is optional; calibration diagnostics and some baselines use it when present.
    """

    name: str
    dim: int
    sample_fn: SampleFn
    log_prob_fn: Callable[[Tensor], Tensor] | None = None
    description: str = ""

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        if generator is None:
            generator = torch.Generator()
            generator.seed()  # fresh entropy; torch.seed() would reseed the global RNG
        return self.sample_fn(n, generator)

    def log_prob(self, x: Tensor) -> Tensor:
        if self.log_prob_fn is None:
            raise NotImplementedError(f"prior {self.name!r} defines no log_prob")
        return self.log_prob_fn(x)


@dataclass(frozen=True)
class ForwardProcess:
    """A deterministic forward process s(x) -> y mapping ``(n, dim_x)`` to ``(n, dim_y)``.

    Observation noise, if the problem has any, is the problem's ``noise_std``, so the same
    process can be reused by problems with different noise.
    """

    name: str
    dim_x: int
    dim_y: int
    fn: Callable[[Tensor], Tensor]
    description: str = ""

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)


@dataclass(frozen=True)
class Problem:
    """An inverse problem: a prior, a forward process, and what invkit needs to train and judge.

    ``prior`` and ``forward`` may be objects or the names of ones registered by any plugin.

    Optional extras, all called with batched tensors:
    ``reference_posterior(y, n, generator) -> (m, n, dim_x)`` exact posterior samples for
    ``y`` of shape ``(m, dim_y)`` when the posterior is known in closed form;
    ``metrics(ctx) -> dict`` problem-specific figures for ``metrics.json``;
    ``plots(ctx) -> list[Path]`` problem-specific figures written under ``ctx.plot_dir``;
    ``presets`` maps a preset name (``quick``, ``default``, ``paper``) to config overrides
    with dotted keys, e.g. ``{"train.steps": 3000}``.
    """

    name: str
    prior: Prior | str
    forward: ForwardProcess | str
    description: str = ""
    noise_std: float = 0.0
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reference_posterior: Callable[[Tensor, int, torch.Generator], Tensor] | None = None
    metrics: Callable[[EvalContext], Mapping[str, Any]] | None = None
    plots: Callable[[EvalContext], list[Path]] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    # Resolved views; valid once the registry has replaced names with objects.
    @property
    def dim_x(self) -> int:
        return self._prior().dim

    @property
    def dim_y(self) -> int:
        return self._forward().dim_y

    def _prior(self) -> Prior:
        if isinstance(self.prior, str):
            raise RuntimeError(f"problem {self.name!r}: prior {self.prior!r} is not resolved")
        return self.prior

    def _forward(self) -> ForwardProcess:
        if isinstance(self.forward, str):
            raise RuntimeError(f"problem {self.name!r}: forward {self.forward!r} is not resolved")
        return self.forward

    def sample_prior(self, n: int, generator: torch.Generator) -> Tensor:
        return self._prior().sample(n, generator)

    def simulate(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """y = s(x) plus the problem's observation noise (none when ``noise_std`` is 0)."""
        y = self._forward()(x)
        if self.noise_std > 0:
            noise = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
            y = y + self.noise_std * noise
        return y

    def sample_joint(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """n pairs (x, y) with x from the prior and y = s(x) (+ noise)."""
        x = self.sample_prior(n, generator)
        return x, self.simulate(x, generator)


@dataclass(frozen=True)
class ProblemSpec:
    """How a plugin registers a problem: a builder called with the problem's options.

    ``options`` declares each option with its default value; users set them with
    ``--set problem.NAME=VALUE`` (or the short form ``--set NAME=VALUE``), and values are
    converted to the default's type before ``build(**options)`` is called.
    """

    name: str
    build: Callable[..., Problem]
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class BaselineResult:
    """What a baseline returns: samples per target (counts may differ) and its cost."""

    samples: list[Tensor]
    n_simulations: int
    wall_time_s: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> list[int]:
        return [int(s.shape[0]) for s in self.samples]


@dataclass(frozen=True)
class Baseline:
    """A reference solver (e.g. ABC) usable on any problem that has a prior and a simulator.

    ``run(problem, y, n, options, generator) -> BaselineResult``: posterior samples for each
    row of ``y`` (shape ``(m, dim_y)``). ``options`` declares its settings with defaults.
    """

    name: str
    run: Callable[..., BaselineResult]
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)
