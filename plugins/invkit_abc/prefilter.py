"""Finding the simulations near each target without computing every distance.

Speed comes from: vectorised float32 torch simulations (any device), processed in cache-sized
pieces on CPU; a cheap conservative filter per (target block, piece), either one matmul
``||t||^2 + ||y||^2 - 2 t.y`` with the norms shrunk by a bound on float rounding, or, for many
targets, a sort of the piece along one coordinate and a ``searchsorted`` band per target; and
exact distances ``||y - t||`` computed only for the few candidates, which alone decide. Neither
filter can drop a simulation that is truly within the threshold (tests compare with brute force).

Measured (``benchmarks/abc_rate.py --threads 1``, arm, 9 targets, tolerance 0.005, one idle
CPU core): 2.7e7 simulations/s, 3.3x a per-target numpy loop's raw rate and 30x its time for
9 targets. On an H200 (before the CPU changes of the arm and the few-target prefilter) about
1.5e8/s, and quantile ABC for 1000 targets x 4000 of 1e8 took 5 s.
"""

from __future__ import annotations

import torch
from torch import Tensor

MAX_MATRIX = 2**24
"""Most entries of one (targets x chunk) distance matrix; targets are processed in blocks."""
BAND_MIN_TARGETS = 16
"""From this many targets on, candidates are found by sorting (see ``Filter``)."""
REACH_MAX_COVER = 0.5
"""Fewer targets: a prefilter on one coordinate runs when the targets' intervals there are
together shorter than this many standard deviations of the simulations along it."""
REACH_MAX_CELLS = 2**20
"""Largest lookup table of that prefilter (cells as wide as the narrowest interval)."""


class Piece:
    """One piece of simulations plus helpers shared by all target blocks, computed lazily."""

    def __init__(self, y: Tensor, axis: int, band: bool) -> None:
        self.y, self.axis, self.band = y, axis, band
        self.s = shrink(y.dtype, y.shape[1])
        self._shrunk: Tensor | None = None
        self._sorted: tuple[Tensor, Tensor] | None = None
        self._spread: float | None = None

    @property
    def shrunk(self) -> Tensor:
        if self._shrunk is None:
            self._shrunk = (1 - self.s) * (self.y * self.y).sum(1)
        return self._shrunk

    @property
    def spread(self) -> float:
        """Standard deviation of the piece along ``axis``, from every 64th simulation."""
        if self._spread is None:
            v = torch.nan_to_num(self.y[::64, self.axis], nan=0.0, posinf=0.0, neginf=0.0)
            self._spread = float(v.std(correction=0)) if v.numel() > 1 else 0.0
        return self._spread

    @property
    def sorted(self) -> tuple[Tensor, Tensor]:
        if self._sorted is None:
            values, order = torch.sort(self.y[:, self.axis])
            self._sorted = (values, order)
        return self._sorted


def shrink(dtype: torch.dtype, dim: int) -> float:
    """Relative slack that makes the matmul scores a safe lower bound despite rounding."""
    return (4 * dim + 16) * torch.finfo(dtype).eps


class Filter:
    """Finds, for one block of targets, the simulations of a piece within given thresholds.

    Two exact-in-effect strategies, chosen per piece:

    * dense: ``scores = (1-s)||t||^2 + (1-s)||y||^2 - 2 t.y`` for the whole (targets x piece)
      matrix via one matmul; with s several times the rounding bound, ``scores < r^2`` keeps
      every pair whose exact squared distance is below r^2;
    * band (many targets, small thresholds): the piece sorted along one coordinate, each
      target only looks at the simulations whose coordinate is within its radius
      (``searchsorted``), so the work is proportional to the candidates, not to targets x piece.

    Either way only candidates get their exact distance ``||y - t||^2``, which alone decides.
    """

    def __init__(self, targets: Tensor, dtype: torch.dtype) -> None:
        self.t = targets.to(dtype)
        self.s = shrink(dtype, targets.shape[1])
        self.eps = 16 * torch.finfo(dtype).eps
        self.t_norm = (self.t * self.t).sum(1)
        self.t_shrunk = (1 - self.s) * self.t_norm

    def scores(self, y: Tensor, y_shrunk: Tensor) -> Tensor:
        d = torch.addmm(self.t_shrunk[:, None], self.t, y.T, alpha=-2)
        d += y_shrunk[None, :]
        return d

    def candidates(
        self, p: Piece, thr: Tensor, ordered: bool = True
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(rows, cols, squared distances) of all pairs with exact distance^2 < thr[row].

        Sorted by row; within a row by simulation when ``ordered`` (rejection ABC keeps the
        first acceptances, quantile ABC does not care).
        """
        c, mb = p.y.shape[0], self.t.shape[0]
        if p.band:
            key, order = p.sorted
            t = self.t[:, p.axis]
            w = torch.sqrt(thr) * (1 + self.eps) + self.eps * (1 + t.abs())
            lo = torch.searchsorted(key, t - w)
            n = torch.searchsorted(key, t + w, right=True) - lo
            total = int(n.sum())
            if total <= min(MAX_MATRIX, mb * c // 4):  # else the dense matmul is cheaper
                rows = torch.repeat_interleave(
                    torch.arange(mb, device=n.device), n, output_size=total
                )
                first = torch.cumsum(n, 0) - n
                pos = torch.arange(total, device=n.device) - first[rows]
                rows, cols, d = self._below(p.y, rows, order[lo[rows] + pos], thr)
                if not ordered:
                    return rows, cols, d
                perm = torch.argsort(rows * c + cols)  # the dense path's order
                return rows[perm], cols[perm], d[perm]
        pre = self._within_reach(p, thr)
        if pre is not None:  # few candidates: the dense test on them only
            y = p.y[pre]
            shrunk = (1 - p.s) * (y * y).sum(1)
            rows, sub = (self.scores(y, shrunk) < thr[:, None]).nonzero(as_tuple=True)
            return self._below(p.y, rows, pre[sub], thr)  # pre ascends: the dense order
        rows, cols = (self.scores(p.y, p.shrunk) < thr[:, None]).nonzero(as_tuple=True)
        return self._below(p.y, rows, cols, thr)

    def _within_reach(self, p: Piece, thr: Tensor) -> Tensor | None:
        """Ascending columns of the piece that may lie within reach of some target, from one
        coordinate: |y_a - t_a| <= r (with the band path's rounding margin) is necessary for
        distance^2 < r^2. The targets' intervals are marked, one cell of margin each side, in
        a table of cells as wide as the narrowest interval; each simulation looks up its cell
        (a few elementwise passes over the piece instead of a targets x piece matrix; measured
        4x cheaper than ``searchsorted`` over the intervals). A superset: the exact test on
        the candidates decides. None when the intervals cover too much of the axis for this
        to pay (e.g. quantile ABC's large early thresholds) or the table would be too large.
        """
        t = self.t[:, p.axis]
        w = torch.sqrt(thr) * (1 + self.eps) + self.eps * (1 + t.abs())
        cover = float(2 * w.sum())  # inf or nan when a threshold is: then no prefilter
        if not cover < REACH_MAX_COVER * p.spread:
            return None
        lo, hi = t - w, t + w
        h = float(2 * w.min())
        base = float(lo.min()) - 2 * h
        n_cells = int((float(hi.max()) - base) / h) + 3
        if not (h > 0 and n_cells <= REACH_MAX_CELLS):
            return None
        first = torch.floor((lo - base) / h).long()  # >= 2 by the choice of base
        last = torch.floor((hi - base) / h).long() + 2  # one past the margin cell
        marks = torch.zeros(n_cells + 3, dtype=torch.int32, device=t.device)
        ones = torch.ones_like(first, dtype=torch.int32)
        marks.index_add_(0, first, ones).index_add_(0, last + 1, -ones)
        table = marks.cumsum(0)[:n_cells + 2] > 0  # cell j at j + 1; 0 and n_cells + 1: off
        cell = torch.sub(p.y[:, p.axis], base).div_(h)
        cell.nan_to_num_(nan=-1.0, posinf=float(n_cells), neginf=-1.0).clamp_(-1.0, n_cells)
        return table[cell.floor_().long().add_(1)].nonzero().flatten()

    def _below(
        self, y: Tensor, rows: Tensor, cols: Tensor, thr: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        d = ((y[cols] - self.t[rows]) ** 2).sum(1)
        keep = d < thr[rows]
        return rows[keep], cols[keep], d[keep]


def band_axis(y: Tensor) -> int:
    """The coordinate of y with the widest spread: sorting along it prunes the most."""
    finite = torch.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    return int(finite.std(0, correction=0).argmax()) if y.shape[1] > 1 else 0


def target_blocks(m: int, chunk: int) -> list[tuple[int, int]]:
    step = max(1, min(m, MAX_MATRIX // max(chunk, 1)))
    return [(j, min(j + step, m)) for j in range(0, m, step)]
