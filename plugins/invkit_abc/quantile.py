"""Quantile ABC: for each target, the n draws whose simulations are nearest, from one pool.

Candidates are merged into a running top-k per target in batches, so the cost per simulation
falls as the pool grows.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor

from invkit import BaselineResult, InvkitError, Problem
from invkit.distributed import Shard
from invkit.progress import ProgressBar
from invkit_abc.checks import WARN_LIST, check_targets, positive_int, warn
from invkit_abc.prefilter import (
    BAND_MIN_TARGETS,
    MAX_MATRIX,
    Filter,
    Piece,
    band_axis,
    target_blocks,
)
from invkit_abc.stream import SEED_BLOCK, Plan, agree, rounds


def quantile_abc(
    problem: Problem,
    y_targets: Tensor,
    n_keep: int,
    budget: int,
    *,
    chunk_size: int = 1_000_000,
    generator: torch.Generator,
    progress: bool = False,
    seed_block: int = SEED_BLOCK,
    shard: Shard | None = None,
) -> BaselineResult:
    """Quantile ABC: for each target keep the ``n_keep`` draws whose simulations are nearest.

    One shared pool of ``budget`` simulations serves all targets (the benchmark's reference
    posterior: 1e8 draws, 4000 kept). Only draws nearer than a target's current k-th are
    candidates, and they are merged into the running top-k in batches, so after the first
    chunks almost nothing is copied. Samples are sorted nearest first; ``info["tolerance"]``
    holds each target's largest kept distance (its effective tolerance). With ``shard``, every
    rank makes this call alike; each keeps the top-k of its share and the shares are merged.
    """
    start = time.perf_counter()
    targets = check_targets(problem, y_targets)
    k = positive_int(n_keep, "n_keep")
    budget = positive_int(budget, "budget")
    chunk_size = positive_int(chunk_size, "chunk_size")
    seed_block = positive_int(seed_block, "seed_block")
    if k > budget:
        raise InvkitError(
            f"quantile ABC keeps n_keep={k} draws per target but the budget is only {budget} "
            f"simulations; raise the budget (it should be many times n_keep)."
        )
    m = targets.shape[0]
    plan = Plan(budget, chunk_size, seed_block, shard)
    base = agree(shard, generator, targets, ("quantile", k, budget, chunk_size, seed_block))
    main = shard is None or shard.is_main
    # rank 0 advances the bar by its own simulations scaled to the whole budget
    scale = budget / max(plan.own_sims(), 1) if plan.world > 1 else 1
    top: _TopK | None = None
    n_sims, axis = 0, 0
    blocks: list[tuple[int, int, Filter]] = []

    with ProgressBar(f"quantile ABC, {m} x {k}", budget, unit="sims",
                     enabled=progress and main) as bar:
        for pieces in rounds(problem, plan, generator.device, base):
            if not pieces:  # N ranks: this one has no block in the last round
                continue
            for x, y, _ in pieces:
                if top is None:
                    targets = targets.to(device=y.device, dtype=y.dtype)
                    top = _TopK(m, k, x, y)
                    blocks = [
                        (j0, j1, Filter(targets[j0:j1], y.dtype))
                        for j0, j1 in target_blocks(m, y.shape[0])
                    ]
                    axis = band_axis(y)
                p = Piece(y, axis, band=m >= BAND_MIN_TARGETS)
                _quantile_step(x, p, top, blocks, first_fill=n_sims < k)
                n_sims += y.shape[0]
            assert top is not None
            far = top.thr.max().sqrt().item()
            bar.update(advance=sum(p[1].shape[0] for p in pieces) * scale,
                       status=f"max kept distance <= {far:.3g}")

    if top is not None:
        top.merge()
    if plan.world > 1:
        assert shard is not None
        best_d, best_x, n_sims = _gather_quantile(shard, top, n_sims, targets.device)
    else:
        assert top is not None
        best_d, best_x = top.best_d, top.best_x
    finite = torch.isfinite(best_d)
    counts = finite.sum(1).tolist()
    samples = [best_x[i, : counts[i]] for i in range(m)]
    tol = [
        float(best_d[i, counts[i] - 1].sqrt()) if counts[i] else math.inf for i in range(m)
    ]
    info: dict[str, Any] = {
        "method": "quantile",
        "n_keep": k,
        "counts": counts,
        "tolerance": tol,
        "tolerance_range": [min(tol), max(tol)],
        "seed_block": seed_block,
        "warnings": [],
    }
    if plan.world > 1:
        info["processes"] = plan.world
    short = [i for i, c in enumerate(counts) if c < k]
    if short:
        warn(
            info,
            f"quantile ABC: {len(short)} targets kept fewer than {k} draws because simulations "
            f"returned NaN or infinite values (targets {short[:WARN_LIST]}). Check the "
            f"problem's forward process for invalid outputs.",
            loud=main,
        )
    return BaselineResult(samples, n_sims, time.perf_counter() - start, info)


def _gather_quantile(
    shard: Shard, top: _TopK | None, n_sims: int, device: torch.device
) -> tuple[Tensor, Tensor, int]:
    """The ranks' top-k lists merged: the top-k of the whole pool, nearest first."""
    mine = (n_sims, None, None) if top is None else (n_sims, top.best_d.cpu(), top.best_x.cpu())
    parts = shard.all_gather_object(mine)
    d = torch.cat([p[1] for p in parts if p[1] is not None], 1).to(device)
    x = torch.cat([p[2] for p in parts if p[2] is not None], 1).to(device)
    k = parts[0][1].shape[1]  # rank 0 always simulates
    d, idx = torch.sort(d, dim=1, stable=True)  # ties: the earlier rank's draw first
    idx = idx[:, :k]
    x = torch.gather(x, 1, idx[:, :, None].expand(-1, -1, x.shape[2]))
    return d[:, :k].contiguous(), x, sum(p[0] for p in parts)


class _TopK:
    """The k nearest draws per target so far; candidates are buffered and merged in batches.

    A merge rewrites the whole (m, k) state, so it runs only once the buffer holds about half
    as many candidates as the state has entries. Meanwhile each target filters with its
    threshold from the last merge, which is never below its current k-th distance, so a
    stale threshold only lets extra candidates through and never loses one.
    """

    def __init__(self, m: int, k: int, x: Tensor, y: Tensor) -> None:
        self.m, self.k, self.dim_x = m, k, x.shape[1]
        self.best_d = torch.full((m, k), math.inf, device=y.device, dtype=y.dtype)
        self.best_x = torch.zeros((m, k, x.shape[1]), device=x.device, dtype=x.dtype)
        self.thr = torch.full((m,), math.inf, device=y.device, dtype=y.dtype)
        self.buf: list[tuple[Tensor, Tensor, Tensor]] = []
        self.buf_n = 0
        self.merge_at = max(m * k // 2, 2**16)

    def add(self, rows: Tensor, d: Tensor, xc: Tensor) -> None:
        self.buf.append((rows, d, xc))
        self.buf_n += rows.numel()
        if self.buf_n >= self.merge_at:
            self.merge()

    def merge(self) -> None:
        if not self.buf:
            return
        rows, d, xc = (torch.cat(parts) for parts in zip(*self.buf, strict=True))
        self.buf, self.buf_n = [], 0
        order = torch.argsort(rows, stable=True)
        rows, d, xc = rows[order], d[order], xc[order]
        counts = torch.bincount(rows, minlength=self.m).tolist()
        limit = MAX_MATRIX // max(1, self.dim_x)
        j0 = a = 0
        while j0 < self.m:  # blocks of targets whose padded merge fits in `limit` entries
            j1, b, width = j0 + 1, a + counts[j0], counts[j0]
            while j1 < self.m and (j1 + 1 - j0) * (self.k + max(width, counts[j1])) <= limit:
                width = max(width, counts[j1])
                b += counts[j1]
                j1 += 1
            if b > a:
                _merge(self.best_d, self.best_x, j0, j1, rows[a:b] - j0, d[a:b], xc[a:b], self.k)
            j0, a = j1, b
        self.thr = torch.minimum(self.thr, self.best_d[:, -1])


def _quantile_step(
    x: Tensor, p: Piece, top: _TopK, blocks: list[tuple[int, int, Filter]], first_fill: bool
) -> None:
    """Pass one piece of simulations to every target's running top-k."""
    y, k = p.y, top.k
    for j0, j1, f in blocks:
        if first_fill and y.shape[0] >= k:
            # the piece's k-th smallest score bounds the true k-th distance from above, now
            # and later (the k-th distance of a growing pool only shrinks)
            scores = f.scores(y, p.shrunk)
            kth = torch.topk(scores, k, dim=1, largest=False, sorted=False).values.max(1).values
            del scores
            y_norm = p.shrunk / (1 - p.s)
            y_max = torch.nan_to_num(y_norm, nan=0.0, posinf=math.inf).max()
            bound = kth + 2 * f.s * (y_max + f.t_norm)
            top.thr[j0:j1] = torch.minimum(top.thr[j0:j1], bound)
        rows, cols, d = f.candidates(p, top.thr[j0:j1], ordered=False)
        if rows.numel() > 0:
            top.add(rows + j0, d, x[cols])


def _merge(
    best_d: Tensor, best_x: Tensor, j0: int, j1: int, rows: Tensor, d: Tensor, xc: Tensor, k: int
) -> None:
    """Merge candidates (row, distance, x) into the running top-k of targets j0..j1."""
    mb = j1 - j0
    counts = torch.bincount(rows, minlength=mb)
    width = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(rows.numel(), device=rows.device) - starts[rows]
    pad_d = torch.full((mb, width), math.inf, device=d.device, dtype=d.dtype)
    pad_d[rows, pos] = d
    pad_x = torch.zeros((mb, width, xc.shape[1]), device=xc.device, dtype=xc.dtype)
    pad_x[rows, pos] = xc
    all_d = torch.cat([best_d[j0:j1], pad_d], 1)
    vals, idx = torch.topk(all_d, k, dim=1, largest=False, sorted=True)
    all_x = torch.cat([best_x[j0:j1], pad_x], 1)
    best_x[j0:j1] = torch.gather(all_x, 1, idx[:, :, None].expand(-1, -1, xc.shape[1]))
    best_d[j0:j1] = vals
