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
    """Corner plots of posterior samples for a few held-out targets side by side, the true x
    marked, axes named by the problem (:mod:`invkit.evaluation.pairplot`)."""
    from invkit.evaluation.pairplot import draw_pairplot, new_figure, panel_inches, save_figure

    d = ctx.problem.dim_x
    y = ctx.y_test[:n_targets]
    k = int(y.shape[0])
    x_true = ctx.x_test[:k].cpu()
    samples = ctx.posterior.sample(y, n, generator=ctx.generator).cpu()
    side = panel_inches(d, columns=k)
    fig = new_figure(figsize=(k * (side * d + 0.8), side * d + 1.2))
    for t, sub in enumerate(fig.subfigures(1, k, squeeze=False)[0]):
        draw_pairplot(sub, samples[t], ctx.problem.x_names, truth=x_true[t].tolist(),
                      title=f"held-out target {t}")
        sub.subplots_adjust(left=0.7 / (side * d + 0.8), bottom=0.6 / (side * d + 1.2),
                            right=0.97, top=1 - 0.5 / (side * d + 1.2))
    return save_figure(fig, path, dpi=90)
