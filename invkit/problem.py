"""What a plugin provides (priors, forward processes, problems, baselines) and what the core
hands back to a problem's evaluation hooks (:class:`EvalContext`).

Everything here is plain data plus torch callables, so that plugins stay small and the core can
validate them. All callables work on batches and must be pure torch, so they run on any device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

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
    ``plots(ctx) -> list[Path]`` problem-specific figures written under ``ctx.plot_dir``.

    ``name`` and ``options`` belong to the registry: a problem built by a registered
    builder must carry the name it is registered under, and its options are the resolved
    ones (leave ``options`` empty and the registry fills it in).
    """

    name: str
    prior: Prior | str
    forward: ForwardProcess | str
    description: str = ""
    noise_std: float = 0.0
    reference_posterior: Callable[[Tensor, int, torch.Generator], Tensor] | None = None
    metrics: Callable[[EvalContext], Mapping[str, Any]] | None = None
    plots: Callable[[EvalContext], list[Path]] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    # Resolved views; valid once the registry has replaced names with objects.
    @property
    def dim_x(self) -> int:
        return self.prior_distribution.dim

    @property
    def dim_y(self) -> int:
        return self.forward_process.dim_y

    @property
    def prior_distribution(self) -> Prior:
        """The prior object (a name given at construction is resolved by the registry)."""
        if isinstance(self.prior, str):
            raise RuntimeError(f"problem {self.name!r}: prior {self.prior!r} is not resolved")
        return self.prior

    @property
    def forward_process(self) -> ForwardProcess:
        """The forward process object (a name is resolved by the registry)."""
        if isinstance(self.forward, str):
            raise RuntimeError(f"problem {self.name!r}: forward {self.forward!r} is not resolved")
        return self.forward

    def sample_prior(self, n: int, generator: torch.Generator) -> Tensor:
        return self.prior_distribution.sample(n, generator)

    def simulate(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """y = s(x) plus the problem's observation noise (none when ``noise_std`` is 0)."""
        y = self.forward_process(x)
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
    ``presets`` maps a preset name (``quick``, ``default``, ``paper``) to config overrides
    with dotted keys, e.g. ``{"train.steps": 3000}``, optionally with a block per model kind
    (``{"cinn": {"train.steps": 8000}}``). They belong to the spec, not to the built problem,
    so the config is resolved once, before the problem is built with the resolved options.
    """

    name: str
    build: Callable[..., Problem]
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


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

    ``run(problem, y, n, options, generator, progress=False) -> BaselineResult``: posterior
    samples for each row of ``y`` (shape ``(m, dim_y)``); ``progress`` asks for a progress bar
    on stderr. ``options`` declares its settings with defaults; a simulation budget, if it has
    one, is the option ``budget``.

    ``reference_options``: options under which ``run`` returns exactly ``n`` samples per
    target, so that evaluation can use the baseline as the reference posterior of a problem
    without an exact one (``eval.reference_baseline``); None: it cannot serve as one.
    """

    name: str
    run: Callable[..., BaselineResult]
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    reference_options: Mapping[str, Any] | None = None


@dataclass
class EvalContext:
    """Handed to ``Problem.metrics(ctx)`` and ``Problem.plots(ctx)``.

    ``posterior.sample(y, n)`` draws samples; ``x_test`` / ``y_test`` are the held-out split
    (prior draws never used for training); ``generator`` is the evaluation's seeded RNG;
    ``plot_dir`` is where plots go; ``config`` the run's resolved config.
    """

    problem: Problem
    posterior: Any
    config: Any
    device: torch.device
    generator: torch.Generator
    plot_dir: Path
    x_test: Tensor
    y_test: Tensor
