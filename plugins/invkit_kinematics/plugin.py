"""Registers the arm's prior, forward process and problem with invkit (entry point ``kinematics``).

The problem refers to its prior and forward process by name, so other plugins can reuse them
(e.g. a noisy variant of the arm) and the registry resolves them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from invkit.hookspecs import hookimpl
from invkit.problem import ForwardProcess, Prior, Problem, ProblemSpec
from invkit_kinematics import arm, exact

# The published INN config for this arm (REFERENCE.md): 7 GLOW blocks, clamp 2, subnets
# 512-512; weights: fit (MSE) 0.01, latent MMD 300, inverse MMD 400; padding noise 0.05,
# y noise 0.01; batch 1024; lr 1e-3. The authors' reconstruction weight is 0.5 * lambda_y.
_PUBLISHED: dict[str, Any] = {
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

PRESETS: dict[str, dict[str, Any]] = {
    # a smoke test: seconds on a laptop CPU, not a usable posterior
    "quick": {
        **_PUBLISHED,
        "train.lambda_y": 30.0,
        "train.lambda_recon": 1.5,
        "model.n_blocks": 4,
        "model.subnet_width": 64,
        "train.n_samples": 20_000,
        "train.batch_size": 500,
        "train.steps": 200,
    },
    # Measured on 2 CPU cores (README): the published fit weight (0.01) leaves the forward
    # process unlearnt (Err_resim 1.4); lambda_y 30 as for the mixture, the authors'
    # reconstruction weight, and subnets of width 128 (sampling > 1e5 samples/s) do better.
    # Padding to 8 with noise-free padding (seed 0, 3000 steps, 100 targets x 1000 samples,
    # ABC pool 1e7): Err_post 0.146 -> 0.078, Err_resim 0.084 -> 0.082, max coverage
    # deviation 0.12 -> 0.04, same steps and time. Unpadded (width 4) the shoulder height x1
    # leaks into z (posterior mean off by ~1 reference std); padded with pad noise 0.05 it
    # hides in the padding outputs, L_x is met with noisy padding but sampling uses zero
    # padding, and x1's posterior collapses (Err_post 0.111, x1 spread 0.44x the reference).
    # Standardised x and y (model.standardize; the losses on unscaled x gave the shoulder
    # height x1, prior std 0.25 vs 0.5, little weight), same seed, steps and evaluation:
    # Err_post 0.078 -> 0.045, Err_resim 0.082 -> 0.044, SBC rank p-value (Bonferroni)
    # 3e-5 -> 0.91; at 1000 steps 0.171 -> 0.082 (as good as 3000 steps without it). Scaling
    # y_noise (0.0135) or the x MMD widths (x2) to the standardised units did not help.
    # 10000 steps instead of 3000 (one CPU core: 475 s instead of 139 s of training, within
    # the 15 minutes this preset is for): Err_post 0.045 -> 0.028, Err_resim 0.044 -> 0.038;
    # batch 1000 x 5000 steps (548 s): 0.032 / 0.039.
    # With zero padding the learnt forward's y was very sensitive to x's padding (up to 7x its
    # sensitivity to x), and the inverse pass leaves some there, which samples drop: padding
    # noise 0.05 on x's padding only (the [y, z] padding stays zero, as at sampling) and
    # L_pad (weight 30) on the inverse pass's x-padding. 3000 steps, seeds 0 / 1: Err_post
    # 0.045 -> 0.028 / 0.045 -> 0.027, Err_resim 0.044 -> 0.028 / 0.047 -> 0.026; 10000
    # steps: 0.028 -> 0.019, 0.038 -> 0.022. Noise on x's padding alone: 0.029 / 0.036;
    # L_pad alone: 0.050 / 0.046; L_pad with the noise on both sides: 0.038 / 0.035;
    # noise 0.02 or 0.1, L_pad 10 or 300, lambda_recon 5, lambda_x 1000, subnet depth 3,
    # 4e6 training pairs (at 10000 steps): no better.
    # L_resim (the samples through the arm itself must reach their target), 3000 steps, seeds
    # 0 / 1: Err_resim 0.028 / 0.026 -> 0.012 / 0.011 and Err_post 0.028 / 0.027 -> 0.020 /
    # 0.016 with weight 100; 30: 0.016 / 0.015 and 0.019 / 0.020; 300: 0.010 but Err_post
    # 0.062. At 10000 steps 0.0152 / 0.0089 (0.0189 / 0.0217 without), 18000: 0.0139 /
    # 0.0083. Adam's betas (0.9, 0.99) / (0.9, 0.999) were much worse without it (0.052 /
    # 0.23), (0.8, 0.8) a little better (0.024 / 0.026) but 0.053 / 0.020 with it. With it,
    # no better: lambda_x 1000, lambda_z 1000, lambda_y 10, y_noise 0.003, clamp 4, 8
    # blocks, MMD widths with 0.02 added, L_x on (x, y) jointly, a likelihood term on [y, z].
    # With L_resim, L_pad no longer helps: without it 0.0167 / 0.0111 and 0.0167 / 0.0110
    # (seeds 0 / 1, against 0.0201 / 0.0120 and 0.0164 / 0.0108 with it); without it and with
    # the authors' padding noise on both sides: 0.0184 / 0.0130.
    # 16000 steps: two torch threads (both cores) take 41 ms a step against 62 on one. The
    # benchmark protocol (README), seeds 0 / 1: Err_post 0.0097 / 0.0099, Err_resim 0.0080 /
    # 0.0072, 598 / 591 s of training (with L_pad: 0.0127 / 0.0102 and 0.0088 / 0.0074).
    # What was left: nearly straight arms, whose shoulder-height (x1) posteriors were off
    # (offset and too narrow), and the marginal L_x cannot see posteriors mixed up between
    # y's. The joint L_x over (x, 3 y) (docs/performance.md has what it changed per target)
    # with lambda_x 1000, 3000 steps, seeds 0 / 1: Err_post 0.0167 / 0.0167 ->
    # 0.0147 / 0.0139, Err_resim 0.0111 / 0.0110 -> 0.0109 / 0.0099; lambda_x 3000: 0.0128 /
    # 0.0132 but Err_resim 0.0124 / 0.0118, and at 16000 steps (one thread) on the benchmark
    # protocol 0.0076 / 0.0091 against 0.0068 / 0.0073 with 1000 (seed 0); scale 2 or 5 (lambda_x
    # 3000): 0.0138, 0.0165; lambda_x 10000: 0.0130; lambda_x 1000 with the marginal L_x:
    # 0.0198. Also no better: 12 dimensions (0.0261), batch 1000 (0.0196; lr 2e-3 0.0166),
    # a likelihood term on the fibre {x : f_y(x) = y} (weight 0.01 / 0.1 / 1: 0.0203 /
    # 0.0187 / 0.065). Benchmark protocol, `invkit run kinematics` (two threads), seeds 0 / 1:
    # 16000 steps: Err_post 0.0064 / 0.0072, Err_resim 0.0075 / 0.0065, 497 / 485 s; 20000
    # steps: 0.0067 / 0.0070 (0.00699), 0.0068 / 0.0063, 650 / 708 s of training.
    "default": {**_PUBLISHED, "model.n_blocks": 6, "model.subnet_width": 128,
                "model.dim_total": 8, "model.standardize": True,
                "train.pad_noise": 0.05, "train.pad_noise_on": "x",
                "train.lambda_resim": 100.0,
                "train.lambda_x": 1000.0, "train.mmd_x_y_scale": 3.0,
                "train.batch_size": 500, "train.lambda_y": 30.0, "train.lambda_recon": 1.5,
                "train.n_samples": 1_000_000, "train.steps": 20_000,
                # --set model=cinn: Err_post 0.0058, Err_resim 0.0054 on the benchmark's
                # protocol, 472 s of training on one core (README)
                # (L_resim and the joint L_x do not apply to it: zero, so its config says so)
                "cinn": {"model.subnet_width": 256, "train.batch_size": 1024,
                         "train.lambda_resim": 0.0, "train.mmd_x_y_scale": 0.0,
                         "train.steps": 8_000, "train.y_noise": 0.0025}},
    # longer training, and the benchmark's evaluation: 1000 targets x 4000 samples,
    # reference from a quantile-ABC pool of 1e8 simulations
    # the published architecture (7 x 512-512, batch 1024) with the fit weights that work here
    "paper": {
        **_PUBLISHED,
        "train.lambda_y": 30.0,
        "train.lambda_recon": 1.5,
        "train.n_samples": 1_000_000,
        "train.steps": 30_000,
        "eval.n_targets": 1000,
        "eval.n_samples": 4000,
        "eval.abc_pool": 100_000_000,
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
        presets=PRESETS,
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
        )
    )
