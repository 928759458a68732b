"""Figures for the arm: sampled configurations drawn as arms reaching for each target.

``plots(ctx)`` is the problem's plot hook. ``draw_arms`` and ``arms_figure`` are reusable by
scripts that put several solvers side by side (e.g. the INN next to ABC).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from torch import Tensor  # noqa: E402

from invkit_kinematics.arm import arm_points  # noqa: E402

COMPARISON_TARGETS = torch.tensor(
    [
        [0.5, 1.0], [1.0, 1.0], [1.5, 1.0],
        [1.0, 0.5], [1.5, 0.5], [1.9, 0.4],
        [1.25, -0.5], [1.5, 0.0], [1.75, -0.5],
    ]
)
"""Nine reachable end points in the style of the original INN-vs-ABC figure (which lists none).

They span the workspace and the prior's density: at ABC tolerance 0.005 the acceptance rate
goes from about 2e-7 at (1.0, 0.5) (bent arm, elbow up or down) to about 1e-4 at (1.9, 0.4)
(nearly stretched arm), so every target gets ABC samples within a few times 1e8 simulations.
"""

N_ARMS = 100
"""Sampled configurations drawn per target."""

_XLIM = (-0.3, 2.2)
_YLIM = (-1.4, 1.6)


def draw_arms(
    ax: Axes,
    x: Tensor | np.ndarray,
    target: Sequence[float] | Tensor | None = None,
    color: str = "C0",
    alpha: float | None = None,
) -> None:
    """Draw configurations x (n, 4) as thin translucent arms, shoulder to end point.

    Translucency makes dense regions of the posterior darker, so the plot reads as a density.
    """
    x = torch.as_tensor(x, dtype=torch.float32).detach().cpu()
    if x.dim() == 1:
        x = x[None]
    if x.shape[0] > 0:
        pts = arm_points(x).numpy()
        if alpha is None:
            alpha = float(np.clip(12.0 / x.shape[0], 0.06, 0.6))
        ax.add_collection(LineCollection(pts, colors=color, linewidths=0.6, alpha=alpha))
        ax.scatter(pts[:, 0, 0], pts[:, 0, 1], s=4, color=color, alpha=alpha, linewidths=0)
    else:
        ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center", color="0.4")
    if target is not None:
        t = [float(v) for v in torch.as_tensor(target).reshape(-1)[:2]]
        ax.plot([t[0]], [t[1]], marker="x", color="k", markersize=9, mew=2, zorder=5)
    ax.axvline(0.0, color="0.8", lw=0.8, zorder=0)
    ax.set_xlim(*_XLIM)
    ax.set_ylim(*_YLIM)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)


def arms_figure(
    samples: Sequence[Tensor] | Tensor,
    targets: Tensor,
    path: Path,
    title: str = "",
    color: str = "C0",
) -> Path:
    """A 3x3 (or larger) grid with one panel per target; samples[i] is (n_i, 4) for targets[i]."""
    n = len(targets)
    cols = 3
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        draw_arms(ax, samples[i], targets[i], color=color)
        t = targets[i].tolist()
        ax.set_title(f"y = ({t[0]:.2f}, {t[1]:.2f}), n = {len(samples[i])}", fontsize=9)
    return _save(fig, path, title, dpi=110)


def comparison_figure(
    panels: dict[str, Sequence[Tensor]],
    targets: Tensor,
    path: Path,
    title: str = "",
    per_row: int = 3,
) -> Path:
    """Solvers side by side (e.g. INN, ABC): for each target one panel per solver, next to each
    other, ``per_row`` targets to a row (the 9 comparison targets: a 3 x 3 grid of pairs)."""
    names = list(panels)
    n, k = len(targets), len(names)
    per_row = max(1, min(per_row, n))
    rows = (n + per_row - 1) // per_row
    fig, axes = plt.subplots(rows, per_row * k, figsize=(2.7 * per_row * k, 3.0 * rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        t = targets[i].tolist()
        for j, name in enumerate(names):
            ax = axes[i // per_row, (i % per_row) * k + j]
            ax.axis("on")
            draw_arms(ax, panels[name][i], targets[i], color=f"C{j}")
            ax.set_title(f"{name}: ({t[0]:.2f}, {t[1]:.2f}), n = {len(panels[name][i])}",
                         fontsize=8)
    return _save(fig, path, title, dpi=100)


def _save(fig: Any, path: Path, title: str, dpi: int) -> Path:
    """Title, layout, write (creating the folder) and free the figure."""
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.97) if title else None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _sample(posterior: Any, y: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
    """posterior.sample(y, n), passing the run's generator when the posterior accepts one."""
    try:
        accepts = "generator" in inspect.signature(posterior.sample).parameters
    except (TypeError, ValueError):
        accepts = False
    if accepts and generator is not None:
        return posterior.sample(y, n, generator=generator)
    return posterior.sample(y, n)


def plots(ctx: Any) -> list[Path]:
    """The problem's plot hook: ``arms.png``, N_ARMS sampled arms for each COMPARISON_TARGETS."""
    targets = COMPARISON_TARGETS
    samples = _sample(ctx.posterior, targets, N_ARMS, getattr(ctx, "generator", None))
    samples = torch.as_tensor(samples).detach().cpu()
    path = arms_figure(
        list(samples), targets, Path(ctx.plot_dir) / "arms.png",
        title="Posterior samples: arm configurations reaching each target (x)",
    )
    return [path]
