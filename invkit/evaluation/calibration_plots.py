"""Figures of the calibration diagnostics: SBC rank histograms and coverage curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from invkit.evaluation.calibration import rank_uniformity

_Z99 = 2.5758293035489004  # two-sided 99% standard-normal quantile


def _new_figure(**kwargs: Any):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)  # Agg without touching pyplot's global backend
    return fig


def plot_rank_histograms(
    ranks: Tensor,
    n_samples: int,
    path: str | Path,
    *,
    n_bins: int | None = None,
    band: float = 0.99,
    labels: Sequence[str] | None = None,
) -> Path:
    """SBC rank histograms, one panel per dimension, with the pointwise binomial ``band``
    shaded: bars leaving the band (beyond ~1% of them) or a U / hump shape reveal over- or
    under-dispersed posteriors, a slope reveals bias."""
    stats = rank_uniformity(ranks, n_samples, n_bins=n_bins, band=band)
    counts = stats["counts"]
    d = len(counts)
    edges = [0.0]
    for w in stats["bin_widths"]:
        edges.append(edges[-1] + w)
    ncols = min(max(d, 1), 4)
    nrows = max(1, math.ceil(d / ncols))
    fig = _new_figure(figsize=(3.2 * ncols, 2.6 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for k in range(d):
        ax = axes[k]
        ax.stairs(
            stats["band_high"],
            edges,
            baseline=stats["band_low"],
            fill=True,
            color="0.85",
            label=f"{band:.0%} band",
        )
        ax.stairs(stats["expected_counts"], edges, color="0.4", linestyle="--", linewidth=0.8)
        ax.stairs(counts[k], edges, color="C0", linewidth=1.5, label="ranks")
        name = labels[k] if labels is not None and k < len(labels) else f"x[{k}]"
        ax.set_title(f"{name}  p={stats['p_values'][k]:.2g}", fontsize=9)
        ax.set_xlim(0, n_samples + 1)
        ax.set_xlabel("rank")
    for ax in axes[d:]:
        ax.set_visible(False)
    if d:
        axes[0].legend(fontsize=7, loc="best")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_coverage(
    levels: Sequence[float],
    coverage: Sequence[float] | Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    n_targets: int | None = None,
    title: str | None = None,
) -> Path:
    """Empirical coverage against nominal level with the diagonal (perfect calibration).

    Below the diagonal means overconfident, above means underconfident. ``coverage`` may be
    one curve or a mapping of label -> curve; with ``n_targets`` the 99% binomial band of a
    calibrated sampler is shaded around the diagonal.
    """
    curves = dict(coverage) if isinstance(coverage, Mapping) else {"coverage": coverage}
    fig = _new_figure(figsize=(4.0, 4.0), layout="constrained")
    ax = fig.subplots()
    if n_targets:
        grid = [i / 100 for i in range(101)]
        half = [_Z99 * math.sqrt(a * (1 - a) / n_targets) for a in grid]
        ax.fill_between(
            grid,
            [a - h for a, h in zip(grid, half, strict=True)],
            [a + h for a, h in zip(grid, half, strict=True)],
            color="0.85",
            label="99% band",
        )
    ax.plot([0, 1], [0, 1], color="0.3", linestyle="--", linewidth=1, label="ideal")
    for label, cov in curves.items():
        ax.plot(list(levels), list(cov), marker="o", markersize=3, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("credible level")
    ax.set_ylabel("empirical coverage")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
