"""First-use checks of a problem's callables, so a broken plugin fails early and clearly."""

from __future__ import annotations

import torch

from invkit.errors import PluginError
from invkit.problem import Problem


def check_problem(problem: Problem, origin: object, n: int = 16) -> None:
    """Draw a small batch through the prior and the forward process and check shapes/values."""
    prior, forward = problem.prior_distribution, problem.forward_process
    where = f"{origin}, problem {problem.name!r}"
    if prior.dim != forward.dim_x:
        raise PluginError(
            f"{where}: the prior {prior.name!r} has dim {prior.dim} but the forward process "
            f"{forward.name!r} expects dim_x={forward.dim_x}. Make them agree."
        )
    gen = torch.Generator().manual_seed(0)
    try:
        x = prior.sample(n, gen)
    except Exception as exc:
        raise PluginError(
            f"{where}: prior {prior.name!r} failed to sample {n} draws: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    _check_tensor(x, (n, prior.dim), f"{where}: prior {prior.name!r}.sample({n})")
    try:
        y = forward(x)
    except Exception as exc:
        raise PluginError(
            f"{where}: forward process {forward.name!r} failed on a batch of shape "
            f"{tuple(x.shape)}: {type(exc).__name__}: {exc}. It must map (n, {forward.dim_x}) "
            f"to (n, {forward.dim_y}) with torch operations."
        ) from exc
    _check_tensor(y, (n, forward.dim_y), f"{where}: forward process {forward.name!r}")
    if problem.reference_posterior is not None:
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
