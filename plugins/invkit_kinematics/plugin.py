"""Registers the arm's prior, forward process and problem with invkit (entry point ``kinematics``).

The problem refers to its prior and forward process by name, so other plugins can reuse them
(e.g. a noisy variant of the arm) and the registry resolves them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from invkit import ForwardProcess, Prior, Problem, ProblemSpec, hookimpl
from invkit_kinematics import arm, exact

# The published INN config for this arm (Kruse et al. 2021): 7 GLOW blocks, clamp 2, subnets
# 512-512; weights: fit (MSE) 0.01, latent MMD 300, inverse MMD 400; padding noise 0.05,
# y noise 0.01; batch 1024; lr 1e-3. The authors' reconstruction weight is 0.5 * lambda_y.
# The INN of Ardizzone et al. with the optimiser it was tuned with (invkit's defaults for a new
# problem are the cINN recipe, docs/guide/plugin.md); the arm's cINN keeps these settings too
# (Adam betas, no validation split, no weight average), as they were measured with them.
_PUBLISHED: dict[str, Any] = {
    "model.kind": "inn",
    "train.betas": [0.8, 0.9],
    "data.validation": 0.0,
    "train.patience": 0,
    "train.keep_best": False,
    "train.ema": 0.0,
    "model.block": "glow",
    "model.n_blocks": 7,
    "model.clamp": 2.0,
    "model.subnet_width": 512,
    "model.subnet_depth": 2,
    "train.lambda_y": 0.01,
    "train.lambda_z": 300.0,
    "train.lambda_x": 400.0,
    "train.lambda_recon": 0.005,
    "train.pad_noise": 0.05,
    "train.y_noise": 0.01,
    "train.batch_size": 1024,
    "train.lr": 1e-3,
}

# The arm's INN: what each option bought over the published config, and what was tried and
# not kept, is measured in docs/performance.md ("How the arm's INN was tuned").
_ARM_INN: dict[str, Any] = {
    **_PUBLISHED, "model.n_blocks": 6, "model.subnet_width": 128,
    "model.dim_total": 8, "model.standardise": True,
    "train.pad_noise": 0.05, "train.pad_noise_on": "x",
    "train.lambda_resim": 100.0, "train.lambda_x": 1000.0, "train.mmd_x_y_scale": 3.0,
    "train.batch_size": 500, "train.lambda_y": 30.0, "train.lambda_recon": 1.5,
    "data.simulations": 1_000_000, "data.balance": 0.0, "train.steps": 20_000,
}

# The arm's cINN, where it differs from the INN above (docs/tutorials/kinematics.md, "Depth"
# and "Five minutes"): 16 narrow blocks, since 6 x 256 were too few to bend the thin, curved
# posteriors of nearly straight arms (Err_post 0.0059 against the exact posterior, 16 x 128
# 0.0035); batches of 256, which reach that in half the time of 1024 (9000 steps: under five
# minutes on two cores; 8000 missed the folded arms' coverage); training pairs drawn in
# proportion to p(y)^-0.5, so the rare, most folded arms get steps (their central coverage
# 0.022 -> 0.016 from nominal); y noise 0.002, a regulariser of the noise-free simulator that
# trades Err_post (more noise) against Err_resim (less). L_resim and the joint L_x do not
# apply to it: zero, so its config says so.
_ARM_CINN: dict[str, Any] = {
    "model.n_blocks": 16, "model.subnet_width": 128,
    "train.batch_size": 256, "train.steps": 9_000, "data.balance": 0.5,
    "train.y_noise": 0.002, "train.lambda_resim": 0.0, "train.mmd_x_y_scale": 0.0,
}

PRESETS: dict[str, dict[str, Any]] = {
    # a smoke test: seconds on a laptop CPU, not a usable posterior
    "quick": {
        **_PUBLISHED,
        "train.lambda_y": 30.0,
        "train.lambda_recon": 1.5,
        "model.n_blocks": 4,
        "model.subnet_width": 64,
        "data.simulations": 20_000,
        "train.batch_size": 500,
        "train.steps": 200,
    },
    # the cINN (invkit's kind for a new problem, which met the exact-reference targets; docs/
    # tutorials/kinematics.md), and --set model=inn: the INN with the options that measured best
    "default": {**_ARM_INN, **_ARM_CINN, "model.kind": "cinn",
                "inn": {key: _ARM_INN[key] for key in _ARM_CINN}},
    # longer training, and the benchmark's evaluation: 1000 targets x 4000 samples,
    # reference from a quantile-ABC pool of 1e8 simulations
    # the published architecture (7 x 512-512, batch 1024) with the fit weights that work here
    "paper": {
        **_PUBLISHED,
        "train.lambda_y": 30.0,
        "train.lambda_recon": 1.5,
        "data.simulations": 1_000_000,
        "train.steps": 30_000,
        "eval.n_targets": 1000,
        "eval.n_samples": 4000,
        "eval.reference_budget": 100_000_000,
    },
}


def build(noise_std: float = 0.0) -> Problem:
    """The benchmark arm; ``noise_std`` adds Gaussian observation noise (0 in the benchmark).

    Without noise the posterior is the prior on the solution manifold, which ``exact`` samples
    exactly, so evaluation scores against it rather than quantile ABC (which widens every
    posterior by its tolerance). With noise there is no exact sampler and ABC stays the
    reference.
    """
    return Problem(
        name="kinematics",
        prior="kinematics_prior",
        forward="kinematics_arm",
        description=(
            "4-DoF planar arm: shoulder height and three cumulative joint angles -> end point "
            "(horizontal, vertical); segment lengths 0.5, 0.5, 1.0."
        ),
        noise_std=noise_std,
        plots=_plots,
        reference_posterior=exact.reference_posterior if noise_std == 0 else None,
    )


def _plots(ctx: Any) -> list[Path]:
    """Imports matplotlib only when figures are drawn, so building the problem stays fast."""
    from invkit_kinematics.plots import plots

    return plots(ctx)


@hookimpl
def invkit_register_priors(register: Callable[[Prior], None]) -> None:
    register(
        Prior(
            name="kinematics_prior",
            dim=arm.DIM_X,
            sample_fn=arm.sample_prior,
            log_prob_fn=arm.prior_log_prob,
            description="N(0, diag(sigma^2)), sigma = (0.25, 0.5, 0.5, 0.5): shoulder, 3 angles",
        )
    )


@hookimpl
def invkit_register_forward_processes(register: Callable[[ForwardProcess], None]) -> None:
    register(
        ForwardProcess(
            name="kinematics_arm",
            dim_x=arm.DIM_X,
            dim_y=arm.DIM_Y,
            fn=arm.forward,
            description="end point of the planar arm with segment lengths 0.5, 0.5, 1.0",
        )
    )


@hookimpl
def invkit_register_problems(register: Callable[[ProblemSpec], None]) -> None:
    register(
        ProblemSpec(
            name="kinematics",
            build=build,
            description="inverse kinematics of a 4-DoF planar arm (Kruse et al. benchmark)",
            options={"noise_std": 0.0},
            presets=PRESETS,
        )
    )
