"""First-use checks of a problem's callables, so a broken plugin fails early and clearly.

Run when a problem is built: a small batch goes through the prior and the forward process
(shapes, dtypes, finite values), and the same seed must give the same draws twice (a prior or
simulator that ignores the generator would make seeded runs irreproducible without a word:
that is a warning naming the plugin). Slow simulators (numpy, one sample at a time, external
programs) get a batch of 2 instead of 16.
"""

from __future__ import annotations

import math
import warnings

import torch

from invkit.errors import InvkitWarning, PluginError
from invkit.problem import ForwardProcess, Problem
from invkit.simulators import BACKENDS, RNG_KINDS


def check_process_kind(process: ForwardProcess, where: str) -> None:
    """The declared calling convention is one invkit knows."""
    if process.backend not in BACKENDS:
        raise PluginError(f"{where}: forward process {process.name!r} has backend="
                          f"{process.backend!r}; expected one of {', '.join(BACKENDS)}.")
    if process.rng not in RNG_KINDS:
        raise PluginError(f"{where}: forward process {process.name!r} has rng={process.rng!r}; "
                          f"expected one of {', '.join(RNG_KINDS)} (see invkit.simulators).")
    if not isinstance(process.vectorized, bool):
        raise PluginError(f"{where}: forward process {process.name!r} has vectorized="
                          f"{process.vectorized!r}; expected True or False.")


def check_problem(problem: Problem, origin: object, n: int = 16) -> None:
    """Draw a small batch through the prior and the forward process and check it."""
    where = f"{origin}, problem {problem.name!r}"
    if not (isinstance(problem.noise_std, (int, float)) and math.isfinite(problem.noise_std)
            and problem.noise_std >= 0):
        raise PluginError(f"{where}: noise_std={problem.noise_std!r}; expected a finite "
                          f"number >= 0 (the standard deviation of the observation noise).")
    if not problem.has_simulator:
        if problem.simulations is None:
            raise PluginError(f"{where}: it has no prior and forward process and no "
                              f"simulations: give both a prior and a forward process, or "
                              f"simulations=invkit.Simulations(...).")
        _check_names(problem, where)
        return
    prior, forward = problem.prior_distribution, problem.forward_process
    check_process_kind(forward, where)
    if prior.dim != forward.dim_x:
        raise PluginError(
            f"{where}: the prior {prior.name!r} has dim {prior.dim} but the forward process "
            f"{forward.name!r} expects dim_x={forward.dim_x}. Make them agree."
        )
    _check_names(problem, where)
    fast = forward.backend == "torch" and forward.vectorized
    n = n if fast else 2
    x = _draw(prior, n, 0, where)
    _check_tensor(x, (n, prior.dim), f"{where}: prior {prior.name!r}.sample({n})")
    if not torch.equal(x, _draw(prior, n, 0, where)):
        _warn_irreproducible(where, f"prior {prior.name!r}", "sample(n, generator)")
    y = _simulate(problem, x, 1, where)
    _check_tensor(y, (n, forward.dim_y), f"{where}: forward process {forward.name!r}")
    if forward.stochastic and not torch.equal(y, _simulate(problem, x, 1, where)):
        _warn_irreproducible(where, f"forward process {forward.name!r}",
                             f"fn(x, generator) (rng={forward.rng!r})")
    if problem.reference_posterior is not None:
        gen = torch.Generator().manual_seed(0)
        what = f"{where}: reference_posterior(y of shape (2, {forward.dim_y}), 3, generator)"
        try:
            ref = problem.reference_posterior(y[:2], 3, gen)
        except Exception as exc:
            raise PluginError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(ref, torch.Tensor) or tuple(ref.shape) != (2, 3, prior.dim):
            got = tuple(ref.shape) if isinstance(ref, torch.Tensor) else type(ref).__name__
            raise PluginError(f"{what} returned {got}; expected shape (2, 3, {prior.dim}): "
                              f"(observations, samples, dim_x).")
        if not torch.isfinite(ref).all():
            raise PluginError(f"{what} returned NaN or infinite values.")


def _draw(prior, n: int, seed: int, where: str) -> torch.Tensor:
    try:
        return prior.sample(n, torch.Generator().manual_seed(seed))
    except Exception as exc:
        raise PluginError(f"{where}: prior {prior.name!r} failed to sample {n} draws: "
                          f"{type(exc).__name__}: {exc}") from exc


def _simulate(problem: Problem, x: torch.Tensor, seed: int, where: str) -> torch.Tensor:
    forward = problem.forward_process
    try:
        return problem.simulate(x, torch.Generator().manual_seed(seed))
    except Exception as exc:
        raise PluginError(
            f"{where}: forward process {forward.name!r} failed on a batch of shape "
            f"{tuple(x.shape)}: {type(exc).__name__}: {exc}. It must map (n, {forward.dim_x}) "
            f"to (n, {forward.dim_y}) (backend={forward.backend!r}, rng={forward.rng!r}, "
            f"vectorized={forward.vectorized!r})."
        ) from exc


def _warn_irreproducible(where: str, what: str, call: str) -> None:
    warnings.warn(InvkitWarning(
        f"{where}: {what} gave other values for the same seed: {call} does not draw all its "
        f"randomness from the generator it is given, so --seed will not reproduce runs. Draw "
        f"from the generator passed in (torch.randn(..., generator=generator)), or declare "
        f"rng='global' on a forward process that uses global RNGs."), stacklevel=3)


def _check_names(problem: Problem, where: str) -> None:
    for attr, dim in (("param_names", problem.dim_x), ("obs_names", problem.dim_y)):
        names = getattr(problem, attr)
        if names is None:
            continue
        if isinstance(names, str) or len(names) != dim \
                or not all(isinstance(v, str) and v for v in names):
            raise PluginError(f"{where}: {attr}={names!r}; expected {dim} non-empty strings, "
                              f"one per coordinate.")


def _check_tensor(t: object, shape: tuple[int, int], what: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise PluginError(f"{what} returned {type(t).__name__}; expected a torch.Tensor of "
                          f"shape {shape}.")
    if tuple(t.shape) != shape:
        raise PluginError(f"{what} returned shape {tuple(t.shape)}; expected {shape} "
                          f"(one row per sample).")
    if not t.is_floating_point():
        raise PluginError(f"{what} returned dtype {t.dtype}; expected a float tensor.")
    if not torch.isfinite(t).all():
        raise PluginError(f"{what} returned NaN or infinite values; every value must be finite.")
