"""Figures of merit for the mixture: forward accuracy and the posterior's mass per mode."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from invkit_gmm.mixture import MODES, STD, colour_of_modes

N_PER_COLOUR = 4000


def mode_masses(x: Tensor) -> Tensor:
    """Fraction of samples per mode (nearest within 3 std), last entry: beyond 3 std of all."""
    d = torch.cdist(x, MODES.to(x.device, x.dtype))
    dmin, idx = d.min(dim=1)
    idx = torch.where(dmin <= 3 * STD, idx, torch.full_like(idx, len(MODES)))
    return torch.bincount(idx, minlength=len(MODES) + 1).float() / x.shape[0]


def exact_mode_masses(labels: str, colour: int) -> Tensor:
    colours = colour_of_modes(labels)
    member = (colours == colour).float()
    return torch.cat([member / member.sum(), torch.zeros(1)])


def metrics(ctx: Any) -> dict[str, Any]:
    from invkit.evaluation import mmd

    labels = ctx.problem.options["labels"]
    post = ctx.posterior
    out: dict[str, Any] = {}
    if getattr(post, "learns_forward", True):  # a cINN learns no forward process
        pred = post.predict(ctx.x_test).argmax(dim=1)
        out["forward_accuracy"] = (pred == ctx.y_test.argmax(dim=1)).float().mean().item()
    n_colours = ctx.problem.dim_y
    onehots = torch.eye(n_colours, device=ctx.device)
    samples = post.sample(onehots, N_PER_COLOUR, generator=ctx.generator)
    reference = ctx.problem.reference_posterior(onehots, N_PER_COLOUR, ctx.generator)
    tvs, mmds = [], []
    for c in range(n_colours):
        q = mode_masses(samples[c]).cpu()
        tvs.append(0.5 * (q - exact_mode_masses(labels, c)).abs().sum().item())
        mmds.append(float(mmd(samples[c], reference[c])))
    return {
        **out,
        "mode_tv_per_colour": tvs,
        "mode_tv_mean": sum(tvs) / len(tvs),
        "mmd_exact_per_colour": mmds,
        "mmd_exact_mean": sum(mmds) / len(mmds),
    }
