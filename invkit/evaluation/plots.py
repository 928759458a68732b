"""Plots any problem gets: loss curves and posterior samples for a few held-out targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_losses(history: list[dict[str, float]], path: Path) -> Path:
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    # every loss the objective logged (the INN's l_y, l_z, ...; the cINN's z_sq, log_det)
    keys = [k for k in history[0] if k not in ("step", "lr", "time_s")]
    positive = True
    for key in keys:
        vals = [h[key] for h in history if key in h]
        if vals and any(v != 0 for v in vals):
            ax.plot(steps[:len(vals)], vals, label=key)
            positive = positive and all(v > 0 for v in vals)
    ax.set_yscale("log" if positive else "linear")  # a negative log-likelihood can be < 0
    ax.set_xlabel("step")
    ax.set_ylabel("loss (running mean)")
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_posterior_pairs(ctx: Any, path: Path, n_targets: int = 3, n: int = 2000) -> Path:
    """Pairwise scatter of posterior samples for a few held-out targets, true x marked."""
    d = ctx.problem.dim_x
    y = ctx.y_test[:n_targets]
    x_true = ctx.x_test[:n_targets].cpu()
    samples = ctx.posterior.sample(y, n, generator=ctx.generator).cpu()
    pairs = [(i, j) for i in range(d) for j in range(i + 1, d)] or [(0, 0)]
    fig, axes = plt.subplots(n_targets, len(pairs), figsize=(3 * len(pairs), 3 * n_targets),
                             squeeze=False, constrained_layout=True)
    for t in range(n_targets):
        for k, (i, j) in enumerate(pairs):
            ax = axes[t][k]
            if i == j:
                ax.hist(samples[t, :, i], bins=50)
                ax.axvline(x_true[t, i], color="r")
            else:
                ax.scatter(samples[t, :, i], samples[t, :, j], s=1, alpha=0.3)
                ax.scatter(x_true[t, i], x_true[t, j], color="r", marker="x")
                ax.set_xlabel(f"x{i + 1}")
                ax.set_ylabel(f"x{j + 1}")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
