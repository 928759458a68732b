"""What a plugin provides (priors, forward processes, problems, baselines) and what the core
hands back to a problem's evaluation hooks (:class:`EvalContext`).

Everything here is plain data plus torch callables, so that plugins stay small and the core can
validate them. All callables work on batches and must be pure torch, so they run on any device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from invkit import simulators
from invkit.errors import InvkitError

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
    """A forward process (simulator) s(x) -> y mapping ``(n, dim_x)`` to ``(n, dim_y)``.

    How invkit calls ``fn`` (:mod:`invkit.simulators` has the details):

    * ``backend``: ``"torch"`` (tensors in and out, on the caller's device) or ``"numpy"``
      (float64 arrays in, arrays out; runs on the CPU);
    * ``rng``: ``"none"`` (deterministic: observation noise, if any, is the problem's
      ``noise_std``, so one process serves problems with different noise), ``"generator"``
      (``fn(x, generator)`` draws its noise from the generator passed in: a
      ``torch.Generator``, or a ``numpy.random.Generator`` for numpy) or ``"global"`` (``fn``
      uses global RNGs; invkit seeds them from its own generator around each call);
    * ``vectorized``: ``fn`` takes a batch (the default), or, when False, one sample
      ``(dim_x,)`` at a time and returns ``(dim_y,)``.

    Whatever the kind, ``process(x, generator)`` takes and returns float32 torch batches.
    """

    name: str
    dim_x: int
    dim_y: int
    fn: Callable[..., Any]
    description: str = ""
    backend: str = "torch"
    rng: str = "none"
    vectorized: bool = True

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return simulators.call(self, x, generator)

    @property
    def stochastic(self) -> bool:
        """Whether the process adds noise of its own (its ``rng`` is not "none")."""
        return self.rng != "none"

    @property
    def differentiable(self) -> bool:
        """Whether gradients flow through it: torch, batched and deterministic."""
        return self.backend == "torch" and self.rng == "none" and self.vectorized


@dataclass(frozen=True)
class Simulations:
    """Pairs (x, y) simulated beforehand (a file, a cluster run): training data for a problem
    without a simulator. ``load()`` returns float tensors ``(n, dim_x)`` and ``(n, dim_y)``."""

    dim_x: int
    dim_y: int
    load: Callable[[], tuple[Tensor, Tensor]]
    description: str = ""


@dataclass(frozen=True)
class Observations:
    """A problem's own observations: ``y`` ``(m, dim_y)``; optionally the parameters that
    generated them ``x_true`` ``(m, dim_x)``, reference posterior samples (one ``(n_i, dim_x)``
    tensor per observation, e.g. a benchmark's), and names for the observations."""

    y: Tensor
    x_true: Tensor | None = None
    reference_samples: Sequence[Tensor] | None = None
    names: Sequence[str] | None = None


@dataclass(frozen=True)
class Problem:
    """An inverse problem: a prior, a forward process, and what invkit needs to train and judge.

    ``prior`` and ``forward`` may be objects or the names of ones registered by any plugin. A
    problem without a simulator gives ``simulations`` instead (pairs simulated beforehand);
    then invkit trains and evaluates what needs no simulator (no Err_resim, no baseline).

    Optional extras, all called with batched tensors:
    ``reference_posterior(y, n, generator) -> (m, n, dim_x)`` exact posterior samples for
    ``y`` of shape ``(m, dim_y)`` when the posterior is known in closed form;
    ``observations()`` the problem's own observations (:class:`Observations`), with reference
    samples where a benchmark provides them;
    ``metrics(ctx) -> dict`` problem-specific figures for ``metrics.json``;
    ``plots(ctx) -> list[Path]`` problem-specific figures written under ``ctx.plot_dir``;
    ``param_names`` / ``obs_names`` label x's and y's coordinates in tables and plots
    (default ``x1, x2, ...`` and ``y1, y2, ...``).

    ``name`` and ``options`` belong to the registry: a problem built by a registered
    builder must carry the name it is registered under, and its options are the resolved
    ones (leave ``options`` empty and the registry fills it in).
    """

    name: str
    prior: Prior | str | None = None
    forward: ForwardProcess | str | None = None
    description: str = ""
    noise_std: float = 0.0
    reference_posterior: Callable[[Tensor, int, torch.Generator], Tensor] | None = None
    metrics: Callable[[EvalContext], Mapping[str, Any]] | None = None
    plots: Callable[[EvalContext], list[Path]] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    simulations: Simulations | None = None
    observations: Callable[[], Observations] | None = None
    param_names: Sequence[str] | None = None
    obs_names: Sequence[str] | None = None

    # Resolved views; valid once the registry has replaced names with objects.
    @property
    def dim_x(self) -> int:
        if self.prior is None and self.simulations is not None:
            return self.simulations.dim_x
        return self.prior_distribution.dim

    @property
    def dim_y(self) -> int:
        if self.forward is None and self.simulations is not None:
            return self.simulations.dim_y
        return self.forward_process.dim_y

    @property
    def has_simulator(self) -> bool:
        """Whether new pairs can be simulated (a prior and a forward process)."""
        return self.prior is not None and self.forward is not None

    @property
    def x_names(self) -> list[str]:
        return list(self.param_names) if self.param_names else \
            [f"x{k + 1}" for k in range(self.dim_x)]

    @property
    def y_names(self) -> list[str]:
        return list(self.obs_names) if self.obs_names else \
            [f"y{k + 1}" for k in range(self.dim_y)]

    @property
    def prior_distribution(self) -> Prior:
        """The prior object (a name given at construction is resolved by the registry)."""
        if self.prior is None:
            raise InvkitError(f"Problem {self.name!r} has no prior: it was given as a file of "
                              f"simulations, and this needs a simulator.")
        if isinstance(self.prior, str):
            raise RuntimeError(f"problem {self.name!r}: prior {self.prior!r} is not resolved")
        return self.prior

    @property
    def forward_process(self) -> ForwardProcess:
        """The forward process object (a name is resolved by the registry)."""
        if self.forward is None:
            raise InvkitError(f"Problem {self.name!r} has no forward process: it was given as "
                              f"a file of simulations, and this needs a simulator.")
        if isinstance(self.forward, str):
            raise RuntimeError(f"problem {self.name!r}: forward {self.forward!r} is not resolved")
        return self.forward

    def sample_prior(self, n: int, generator: torch.Generator) -> Tensor:
        return self.prior_distribution.sample(n, generator)

    def simulate(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """y = s(x) plus the problem's observation noise (none when ``noise_std`` is 0); a
        stochastic process draws its own noise from ``generator`` too."""
        y = self.forward_process(x, generator)
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
