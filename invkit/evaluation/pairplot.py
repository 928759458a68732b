"""Pair (corner) plots of posterior samples: marginals on the diagonal, 2-D densities below.

The figure a scientist looks at first (as sbi's ``pairplot`` or corner.py draw it): for each
parameter a histogram of its samples, for each pair a 2-D histogram, labelled with the
problem's parameter names, with optional reference points (the true parameters). Drawn with
matplotlib's object API (no pyplot state, safe in threads and notebooks) and written
atomically, so a figure on disk is always whole. For example::

    pairplot(samples, ["mass", "radius"], "posterior.png", title="y = 1.2, 0.4")
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MAX_FIGURE_INCHES = 12.0
"""A corner of many parameters is shrunk to fit this width (each panel at most 2 inches)."""


def new_figure(**kwargs: Any):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)  # Agg without touching pyplot's global backend
    return fig


def _as_array(samples: Any) -> np.ndarray:
    a = samples.detach().cpu().numpy() if hasattr(samples, "detach") else np.asarray(samples)
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"samples must have shape (n, dim) with n >= 1, got {a.shape}")
    return a[np.isfinite(a).all(axis=1)]  # a stray non-finite sample must not hide the rest


def _limits(a: np.ndarray, truth: np.ndarray | None) -> list[tuple[float, float]]:
    """Per dimension the central 99% of the samples (and the reference point), padded 5%:
    a few far-out samples would otherwise squeeze the posterior into one bin."""
    out = []
    for k in range(a.shape[1]):
        if a.shape[0]:
            lo, hi = (float(v) for v in np.quantile(a[:, k], [0.005, 0.995]))
        else:
            lo, hi = (0.0, 1.0) if truth is None else (float(truth[k]),) * 2
        if truth is not None and np.isfinite(truth[k]):
            lo, hi = min(lo, float(truth[k])), max(hi, float(truth[k]))
        pad = 0.05 * (hi - lo) if hi > lo else 0.5 * max(1.0, abs(lo))
        out.append((lo - pad, hi + pad))
    return out


def draw_pairplot(fig: Any, samples: Any, names: Sequence[str] | None = None, *,
                  truth: Sequence[float] | None = None, title: str | None = None,
                  bins: int | None = None, limits: Sequence[tuple[float, float]] | None = None,
                  color: str = "C0") -> list[list[Any]]:
    """Draw the corner of ``samples`` ``(n, dim)`` into ``fig`` (a matplotlib Figure or
    SubFigure, so several corners can share one figure); returns the grid of axes (the
    upper triangle hidden)."""
    a = _as_array(samples)
    d = a.shape[1]
    names = list(names) if names is not None else [f"x{k + 1}" for k in range(d)]
    if len(names) != d:
        raise ValueError(f"{len(names)} names for {d} dimensions")
    t = None if truth is None else np.asarray(truth, dtype=np.float64).reshape(-1)
    if t is not None and t.shape[0] != d:
        raise ValueError(f"truth has {t.shape[0]} values for {d} dimensions")
    lims = list(limits) if limits is not None else _limits(a, t)
    n = max(1, a.shape[0])
    bins_1d = bins or int(np.clip(np.sqrt(n), 10, 60))
    bins_2d = bins or int(np.clip(2 * n ** (1 / 3), 10, 50))
    axes = fig.subplots(d, d, squeeze=False, gridspec_kw={"hspace": 0.08, "wspace": 0.08})
    for i in range(d):
        for j in range(d):
            ax = axes[i][j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                ax.hist(a[:, i], bins=bins_1d, range=lims[i], histtype="stepfilled", color=color,
                        alpha=0.6, edgecolor=color)
                ax.set_yticks([])
                if t is not None:
                    ax.axvline(t[i], color="C3", linewidth=1)
            else:
                h, xe, ye = np.histogram2d(a[:, j], a[:, i], bins=bins_2d, range=[lims[j], lims[i]])
                ax.pcolormesh(xe, ye, np.ma.masked_equal(h.T, 0), cmap="Blues",
                              shading="flat", rasterized=True)
                ax.set_ylim(lims[i])
                if t is not None:
                    ax.plot(t[j], t[i], marker="x", color="C3", markersize=6)
            ax.set_xlim(lims[j])
            ax.tick_params(labelsize=7)
            if i == d - 1:
                ax.set_xlabel(names[j], fontsize=9)
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i], fontsize=9)
            elif j > 0 or i == 0:
                ax.set_yticklabels([])
    if title:
        fig.suptitle(title_lines(title, fig), fontsize=9)
    return axes


def title_lines(title: str, fig: Any, most: int = 2) -> str:
    """The title wrapped to the figure's width, at most ``most`` lines (cut with '...')."""
    inches = fig.get_figwidth() if hasattr(fig, "get_figwidth") else fig.figure.get_figwidth()
    width = max(30, int(11 * inches))  # characters per line at fontsize 9
    lines = textwrap.wrap(title, width)
    if len(lines) > most:
        lines = lines[:most]
        lines[-1] = lines[-1][:width - 4].rstrip(", ") + " ..."
    return "\n".join(lines)


def panel_inches(dim: int, columns: int = 1) -> float:
    """The side of one panel: 2 inches, less when ``columns`` corners of ``dim`` parameters
    would be wider than :data:`MAX_FIGURE_INCHES`."""
    return max(0.6, min(2.0, MAX_FIGURE_INCHES / max(1, dim * columns)))


def pairplot(samples: Any, names: Sequence[str] | None = None,
             path: str | os.PathLike[str] | None = None, *, truth: Sequence[float] | None = None,
             title: str | None = None, bins: int | None = None,
             limits: Sequence[tuple[float, float]] | None = None, dpi: int = 100) -> Any:
    """A corner plot of ``samples`` ``(n, dim)`` (numpy or torch), labelled with ``names``.

    With ``path`` the figure is written there (any format matplotlib knows by the suffix)
    atomically, and the path is returned; without, the matplotlib Figure is returned.
    ``truth``: a reference point (e.g. the parameters that made the observation), marked in
    red; ``limits``: ``(low, high)`` per dimension instead of the central 99% of the samples.
    """
    a = _as_array(samples)
    side = panel_inches(a.shape[1])
    width = side * a.shape[1] + 0.8
    lines = title_lines(title, new_figure(figsize=(width, 1))).count("\n") + 1 if title else 0
    head = 0.15 + 0.17 * lines  # inches above the panels: room for the title
    height = side * a.shape[1] + 0.6 + head
    fig = new_figure(figsize=(width, height))
    draw_pairplot(fig, a, names, truth=truth, title=title, bins=bins, limits=limits)
    fig.subplots_adjust(left=0.7 / width, bottom=0.55 / height, right=1 - 0.1 / width,
                        top=1 - head / height)
    if path is None:
        return fig
    return save_figure(fig, path, dpi=dpi)


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` through a temporary file in the same folder and a rename: a
    reader (or a crash) never sees half an image."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fmt = p.suffix.lstrip(".").lower() or "png"
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=dpi)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
