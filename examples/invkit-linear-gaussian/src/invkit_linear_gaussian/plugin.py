"""Registers the linear-Gaussian prior, forward process and problem with invkit.

The entry point ``linear_gaussian = "invkit_linear_gaussian.plugin"`` in pyproject.toml points
at this module; invkit loads it and calls each ``@invkit.hookimpl`` function with a
``register`` callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import invkit
import torch
from invkit import ForwardProcess, InvkitError, Prior, Problem, ProblemSpec

from invkit_linear_gaussian.model import (
    LinearGaussian,
    make_matrix,
    sample_standard_normal,
    standard_normal_log_prob,
)

NAME = "linear_gaussian"
OPTIONS: dict[str, Any] = {"dim_x": 3, "dim_y": 2, "noise_std": 0.1, "matrix_seed": 0}
"""The problem's options and their defaults; users change them with ``--set dim_x=5``."""

PRESETS: dict[str, dict[str, Any]] = {
    # on top of invkit's own quick preset (20k samples, 4 blocks of width 64, 200 steps)
    "quick": {"train.steps": 300, "train.batch_size": 256, "train.y_noise": 0.01,
              "train.pad_noise": 0.01},
    "default": {"data.simulations": 200_000, "train.steps": 2000, "train.y_noise": 0.01,
                "train.pad_noise": 0.01, "model.n_blocks": 6, "model.subnet_width": 128},
    "paper": {"data.simulations": 1_000_000, "train.steps": 10_000, "train.y_noise": 0.01,
              "train.pad_noise": 0.01},
}


# -- the parts, built for given options ---------------------------------------------------------
def make_prior(dim_x: int, name: str = f"{NAME}_prior") -> Prior:
    return Prior(name=name, dim=dim_x, sample_fn=sample_standard_normal(dim_x),
                 log_prob_fn=standard_normal_log_prob,
                 description=f"standard normal N(0, I_{dim_x})")


def make_forward(lg: LinearGaussian, name: str = f"{NAME}_forward") -> ForwardProcess:
    return ForwardProcess(name=name, dim_x=lg.dim_x, dim_y=lg.dim_y, fn=lg.forward,
                          description=f"y = A x with a seeded ({lg.dim_y}, {lg.dim_x}) matrix A")


def _default_model() -> LinearGaussian:
    o = OPTIONS
    return LinearGaussian(make_matrix(o["dim_y"], o["dim_x"], o["matrix_seed"]), o["noise_std"])


# -- the problem --------------------------------------------------------------------------------
def build(dim_x: int = 3, dim_y: int = 2, noise_std: float = 0.1, matrix_seed: int = 0) -> Problem:
    """The problem for one choice of options (invkit calls this with the resolved options)."""
    if dim_x < 1 or dim_y < 1:
        raise InvkitError(f"linear_gaussian: dim_x and dim_y must be at least 1, got "
                          f"dim_x={dim_x}, dim_y={dim_y} (e.g. --set dim_x=3).")
    if not noise_std > 0:
        raise InvkitError(f"linear_gaussian: noise_std must be positive (the posterior of a "
                          f"noise-free linear map is degenerate), got {noise_std} "
                          f"(e.g. --set noise_std=0.1).")
    lg = LinearGaussian(make_matrix(dim_y, dim_x, matrix_seed), noise_std)
    return Problem(
        name=NAME,
        prior=make_prior(dim_x),
        forward=make_forward(lg),
        noise_std=noise_std,
        description="x ~ N(0, I), y = A x + N(0, noise_std^2 I); exact Gaussian posterior",
        reference_posterior=lg.sample_posterior,
        metrics=lambda ctx: posterior_metrics(ctx, lg),
    )


def posterior_metrics(ctx: Any, lg: LinearGaussian) -> dict[str, float]:
    """Compare the trained posterior's mean and covariance with the exact ones.

    ``mean_error``: distance of the sample mean from E[x | y], in units of the exact posterior
    standard deviation (averaged over the evaluation targets); ``cov_rel_error``: relative
    Frobenius error of the sample covariance. Both are 0 for a perfect posterior.
    """
    n_targets = min(ctx.config.eval.n_targets, ctx.y_test.shape[0])
    y = ctx.y_test[:n_targets]
    x = ctx.posterior.sample(y, ctx.config.eval.n_samples, generator=ctx.generator)
    x = x.double()
    mean = x.mean(dim=1)
    exact_mean = lg.posterior_mean(y.double())
    scale = torch.sqrt(torch.trace(lg.cov)).to(x.device)
    centred = x - mean[:, None, :]
    cov = centred.transpose(1, 2) @ centred / (x.shape[1] - 1)
    exact_cov = lg.cov.to(x.device)
    cov_err = torch.linalg.matrix_norm(cov - exact_cov) / torch.linalg.matrix_norm(exact_cov)
    return {
        "mean_error": float(((mean - exact_mean).norm(dim=1) / scale).mean()),
        "cov_rel_error": float(cov_err.mean()),
    }


# -- the hooks ----------------------------------------------------------------------------------
@invkit.hookimpl
def invkit_register_priors(register: Callable[[Prior], None]) -> None:
    # The default problem's prior, under its own name, so other plugins can reuse it.
    register(make_prior(OPTIONS["dim_x"]))


@invkit.hookimpl
def invkit_register_forward_processes(register: Callable[[ForwardProcess], None]) -> None:
    register(make_forward(_default_model()))


@invkit.hookimpl
def invkit_register_problems(register: Callable[[ProblemSpec], None]) -> None:
    register(ProblemSpec(
        name=NAME,
        build=build,
        options=dict(OPTIONS),
        presets=PRESETS,
        description="linear map with Gaussian prior and noise: exact posterior known",
    ))
