"""Approximate Bayesian computation for any invkit problem: rejection and quantile ABC.

Both samplers use only ``problem.sample_prior`` and ``problem.simulate``. They stream one shared
pool of simulations past all targets at once, chunk by chunk, so memory is bounded by the
chunk size and the number of kept samples, never by the budget.

Speed comes from: vectorised float32 torch simulations (any device), processed in cache-sized
pieces on CPU; a cheap conservative filter per (target block, piece), either one matmul
``||t||^2 + ||y||^2 - 2 t.y`` with the norms shrunk by a bound on float rounding, or, for many
targets, a sort of the piece along one coordinate and a ``searchsorted`` band per target; and
exact distances ``||y - t||`` computed only for the few candidates, which alone decide. Neither
filter can drop a simulation that is truly within the threshold (tests compare with brute force).
Quantile ABC merges candidates into its running top-k in batches, so its cost per simulation
falls as the pool grows.

Measured (``benchmarks/abc_rate.py --threads 1``, arm, 9 targets, tolerance 0.005, one idle
CPU core): 2.7e7 simulations/s, 3.3x a per-target numpy loop's raw rate and 30x its time for
9 targets. On an H200 (before the CPU changes of the arm and the few-target prefilter) about
1.5e8/s, and quantile ABC for 1000 targets x 4000 of 1e8 took 5 s.

Reproducibility: simulations are drawn in seed blocks of ``seed_block`` draws, each from a
generator seeded by (one seed drawn from ``generator``, block index). Results therefore depend
on the seed and ``seed_block`` only; ``chunk_size`` trades memory for speed and changes nothing
else, and a larger budget extends the same stream of simulations.

Several processes (``torchrun``, see ``invkit.distributed``): with ``shard`` (the plugin passes
the joined process group), rank r of N simulates every N-th seed block of each round of N
chunks, so the ranks' blocks are disjoint and together the one-process stream. Quantile ABC
merges the ranks' top-k at the end; rejection ABC syncs its acceptance counts once per round
(one ``all_reduce`` of N x m integers), which replays one process's early stop chunk by chunk,
and gathers the kept draws in simulation order. Every rank returns the same result, identical
to one process's with the same seed and budget (draws, order, counts, ``n_simulations``; only
draws at exactly equal distances may come in another order). Only rank 0 shows progress.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from torch import Tensor

from invkit.errors import InvkitError
from invkit.problem import BaselineResult, Problem

if TYPE_CHECKING:
    from invkit.distributed import Shard

SEED_BLOCK = 2**16
"""Default simulations per seed block (the unit of reproducibility, see the module docstring)."""
MAX_MATRIX = 2**24
"""Most entries of one (targets x chunk) distance matrix; targets are processed in blocks."""
BAND_MIN_TARGETS = 16
"""From this many targets on, candidates are found by sorting (see ``_Filter``)."""
REACH_MAX_COVER = 0.5
"""Fewer targets: a prefilter on one coordinate runs when the targets' intervals there are
together shorter than this many standard deviations of the simulations along it."""
REACH_MAX_CELLS = 2**20
"""Largest lookup table of that prefilter (cells as wide as the narrowest interval)."""
_WARN_LIST = 10


# -- input checks ------------------------------------------------------------------------------
def _targets(problem: Problem, y: Any) -> Tensor:
    y = torch.as_tensor(y)
    dim_y = problem.dim_y
    if y.dim() == 1 and y.shape[0] == dim_y:
        y = y[None]
    if y.dim() != 2 or y.shape[1] != dim_y or y.shape[0] == 0:
        raise InvkitError(
            f"ABC targets for problem {problem.name!r} must have shape (m, {dim_y}) (one "
            f"observation per row), got {tuple(y.shape)}."
        )
    if not y.is_floating_point():
        y = y.float()
    if not torch.isfinite(y).all():
        raise InvkitError("ABC targets contain NaN or infinite values; pass finite observations.")
    return y


def _positive_int(value: Any, what: str) -> int:
    try:
        ok = not isinstance(value, bool) and float(value).is_integer() and value >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvkitError(f"ABC {what} must be a positive integer, got {value!r}.")
    return int(value)


# -- the simulation stream ---------------------------------------------------------------------
def _mix(base: int, k: int) -> int:
    """splitmix64 of (base, k): well-spread 63-bit seeds for the seed blocks."""
    z = (base + (k + 1) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF


class _Plan:
    """Which seed blocks this process simulates, round by round.

    One process: round j is chunk j, the blocks ``[j b, (j + 1) b)`` with
    ``b = chunk_size // seed_block``. N ranks: round j is the one-process chunks
    ``j N ... j N + N - 1``, and rank r takes every N-th of its blocks from the r-th on, so the
    ranks' blocks are disjoint, together the one-process stream, and balanced to one block.
    """

    def __init__(self, budget: int, chunk_size: int, seed_block: int, shard: Shard | None
                 ) -> None:
        self.budget, self.seed_block = budget, seed_block
        self.world = shard.world_size if shard is not None else 1
        self.rank = shard.rank if shard is not None else 0
        self.per_chunk = max(1, chunk_size // seed_block)
        self.n_blocks = -(-budget // seed_block)
        self.n_chunks = -(-self.n_blocks // self.per_chunk)
        self.per_round = self.world * self.per_chunk
        self.n_rounds = -(-self.n_blocks // self.per_round)

    def blocks(self, j: int) -> range:
        return range(j * self.per_round + self.rank,
                     min((j + 1) * self.per_round, self.n_blocks), self.world)

    def chunk_sims(self, c: int) -> int:
        """Simulations in one-process chunk c."""
        size = self.per_chunk * self.seed_block
        return min(self.budget, (c + 1) * size) - c * size

    def own_sims(self) -> int:
        """Simulations this rank runs over the whole budget."""
        own = range(self.rank, self.n_blocks, self.world)
        short = self.n_blocks * self.seed_block - self.budget  # the last block's truncation
        return len(own) * self.seed_block - (short if self.n_blocks - 1 in own else 0)


def _base_seed(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))


def _rounds(
    problem: Problem, plan: _Plan, device: torch.device, base: int
) -> Iterator[list[tuple[Tensor, Tensor, list[int]]]]:
    """This rank's simulations, one list of pieces (x, y, seed blocks) per round of ``plan``.

    On CPU each seed block is its own piece, so a block is filtered while it is still in
    cache (measured faster than one big chunk); on accelerators a round is one piece, so
    kernels are large. The last seed block is truncated to the budget.
    """
    block_gen = torch.Generator(device=device)
    sb, dim_x, dim_y = plan.seed_block, problem.dim_x, problem.dim_y
    checked = False
    for j in range(plan.n_rounds):
        pieces = []
        for k in plan.blocks(j):
            block_gen.manual_seed(_mix(base, k))
            x = problem.sample_prior(sb, block_gen)
            y = problem.simulate(x, block_gen)
            if not checked:
                if x.dim() != 2 or x.shape != (sb, dim_x) or y.shape != (sb, dim_y):
                    raise InvkitError(
                        f"Problem {problem.name!r} produced x of shape {tuple(x.shape)} and y "
                        f"of shape {tuple(y.shape)} for {sb} draws; ABC needs ({sb}, {dim_x}) "
                        f"and ({sb}, {dim_y})."
                    )
                checked = True
            keep = min(sb, plan.budget - k * sb)
            if keep < sb:
                x, y = x[:keep], y[:keep]
            pieces.append((x, y, [k]))
        if device.type != "cpu" and len(pieces) > 1:
            pieces = [(torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces]),
                       [p[2][0] for p in pieces])]
        yield pieces


def _stream(
    problem: Problem,
    budget: int,
    chunk_size: int,
    seed_block: int,
    generator: torch.Generator,
) -> Iterator[list[tuple[Tensor, Tensor]]]:
    """One process's chunks of the budget, each a list of pieces (x, y) of whole seed blocks."""
    plan = _Plan(budget, chunk_size, seed_block, None)
    for pieces in _rounds(problem, plan, generator.device, _base_seed(generator)):
        yield [(x, y) for x, y, _ in pieces]


def _sim_index(cols: Tensor, blocks: list[int], seed_block: int) -> Tensor:
    """Positions in the one-process stream of a piece's columns ``cols``."""
    if len(blocks) == 1:
        return cols + blocks[0] * seed_block
    start = torch.tensor(blocks, device=cols.device) * seed_block
    return start[torch.div(cols, seed_block, rounding_mode="floor")] + cols % seed_block


def _agree(shard: Shard | None, generator: torch.Generator, targets: Tensor,
           settings: tuple) -> int:
    """The stream's base seed; with several ranks, checked to be the same call on all of them.

    A rank with another seed, other settings or other targets would silently give a result
    that is no one-process result, so every rank raises the same error instead.
    """
    base = _base_seed(generator)
    if shard is None:
        return base
    digest = hashlib.sha256(targets.detach().cpu().double().numpy().tobytes()).hexdigest()
    on_gpu = shard.device.type != "cuda" or generator.device == shard.device
    every = shard.all_gather_object((base, settings, tuple(targets.shape), digest, on_gpu,
                                     str(generator.device)))
    wrong = [r for r, e in enumerate(every) if not e[4]]
    if wrong:
        raise InvkitError(
            f"ABC on {shard.world_size} processes: the generator of rank {wrong[0]} is on "
            f"{every[wrong[0]][5]}, not on its own GPU. Make the generator on "
            f"invkit.distributed.current().device (cuda:LOCAL_RANK) on every rank."
        )
    if any(e[:4] != every[0][:4] for e in every):
        raise InvkitError(
            f"ABC on {shard.world_size} processes: the ranks were called with different "
            f"seeds, settings or targets. Every rank must make the same call (same seed), "
            f"and each then simulates its own share of the budget."
        )
    return base


class _Piece:
    """One piece of simulations plus helpers shared by all target blocks, computed lazily."""

    def __init__(self, y: Tensor, axis: int, band: bool) -> None:
        self.y, self.axis, self.band = y, axis, band
        self.s = _shrink(y.dtype, y.shape[1])
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


def _shrink(dtype: torch.dtype, dim: int) -> float:
    """Relative slack that makes the matmul scores a safe lower bound despite rounding."""
    return (4 * dim + 16) * torch.finfo(dtype).eps


class _Filter:
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
        self.s = _shrink(dtype, targets.shape[1])
        self.eps = 16 * torch.finfo(dtype).eps
        self.t_norm = (self.t * self.t).sum(1)
        self.t_shrunk = (1 - self.s) * self.t_norm

    def scores(self, y: Tensor, y_shrunk: Tensor) -> Tensor:
        d = torch.addmm(self.t_shrunk[:, None], self.t, y.T, alpha=-2)
        d += y_shrunk[None, :]
        return d

    def candidates(
        self, p: _Piece, thr: Tensor, ordered: bool = True
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

    def _within_reach(self, p: _Piece, thr: Tensor) -> Tensor | None:
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


def _band_axis(y: Tensor) -> int:
    """The coordinate of y with the widest spread: sorting along it prunes the most."""
    finite = torch.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    return int(finite.std(0, correction=0).argmax()) if y.shape[1] > 1 else 0


# -- progress ----------------------------------------------------------------------------------
class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.3g} sims/s" if speed else "? sims/s", style="progress.data.speed")


class _Bar:
    """A rich progress bar over simulations, or nothing when disabled."""

    def __init__(self, enabled: bool | Progress, total: int, what: str) -> None:
        self.own = enabled is True
        self.progress: Progress | None
        if isinstance(enabled, Progress):
            self.progress = enabled
        elif enabled:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:.3g}/{task.total:.3g} sims"),
                _RateColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                console=Console(stderr=True),
                speed_estimate_period=10.0,
            )
        else:
            self.progress = None
        self.what = what
        self.total = total

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            if self.own:
                self.progress.start()
            self.task = self.progress.add_task(self.what, total=self.total, status="")
        return self

    def update(self, advance: int, status: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=advance, status=status)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            if self.own:
                self.progress.stop()
            else:
                self.progress.remove_task(self.task)


def _target_blocks(m: int, chunk: int) -> list[tuple[int, int]]:
    step = max(1, min(m, MAX_MATRIX // max(chunk, 1)))
    return [(j, min(j + step, m)) for j in range(0, m, step)]


def _format_target(y: Tensor) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in y.tolist()) + ")"


def _warn(info: dict[str, Any], message: str, loud: bool = True) -> None:
    info.setdefault("warnings", []).append(message)
    if loud:  # under torchrun only rank 0 says it
        warnings.warn(message, stacklevel=3)


# -- rejection ABC -----------------------------------------------------------------------------
def rejection_abc(
    problem: Problem,
    y_targets: Tensor,
    tolerance: float,
    budget: int,
    *,
    chunk_size: int = 1_000_000,
    generator: torch.Generator,
    progress: bool | Progress = True,
    max_accept: int | None = None,
    min_accept: int = 0,
    seed_block: int = SEED_BLOCK,
    shard: Shard | None = None,
) -> BaselineResult:
    """Rejection ABC: keep prior draws x whose simulation lies within ``tolerance`` (L2) of y.

    All targets share one pass over ``budget`` simulations. With ``max_accept``, each target
    keeps its first ``max_accept`` acceptances (in simulation order) and the pass stops once
    every target has them. Targets with fewer than ``min_accept`` acceptances are named in a
    warning and in ``info["warnings"]``. Samples of target i are ``result.samples[i]``.
    With ``shard`` (a joined process group), every rank must make this call with the same
    arguments; each simulates its share and all return the one-process result.
    """
    start = time.perf_counter()
    targets = _targets(problem, y_targets)
    if not tolerance > 0 or not math.isfinite(tolerance):
        raise InvkitError(f"ABC tolerance must be a positive number, got {tolerance!r}.")
    budget = _positive_int(budget, "budget")
    chunk_size = _positive_int(chunk_size, "chunk_size")
    seed_block = _positive_int(seed_block, "seed_block")
    if max_accept is not None:
        max_accept = _positive_int(max_accept, "max_accept")
    m = targets.shape[0]
    plan = _Plan(budget, chunk_size, seed_block, shard)
    base = _agree(shard, generator, targets,
                  ("rejection", float(tolerance), budget, chunk_size, seed_block, max_accept))
    main, world = shard is None or shard.is_main, plan.world
    tol2 = float(tolerance) ** 2
    counts = torch.zeros(m, dtype=torch.long)
    seen = torch.zeros(m, dtype=torch.long)  # simulations each target was compared with
    active = torch.arange(m)
    acc_x: list[Tensor] = []
    acc_t: list[Tensor] = []
    acc_g: list[Tensor] = []  # N ranks: positions in the one-process stream
    # N ranks: the targets one process still has active, and the last chunk each one used
    live = torch.ones(m, dtype=torch.bool)
    until = torch.full((m,), plan.n_chunks, dtype=torch.long)
    chunk_len = plan.per_chunk * seed_block
    n_sims = 0
    filt: list[tuple[Tensor, _Filter]] | None = None
    piece, axis = 0, 0

    with _Bar(progress if main else False, budget, f"rejection ABC, {m} targets") as bar:
        for j, pieces in enumerate(_rounds(problem, plan, generator.device, base)):
            if world > 1:
                assert shard is not None
                chunk_counts = torch.zeros((world, m), dtype=torch.long, device=shard.device)
            for x, y, blocks in pieces:
                if filt is None:
                    targets = targets.to(device=y.device, dtype=y.dtype)
                    counts, seen = counts.to(y.device), seen.to(y.device)
                    active, live, until = active.to(y.device), live.to(y.device), until.to(y.device)
                    filt = _blocks(targets, active, y.shape[0], y.dtype)
                    piece, axis = y.shape[0], _band_axis(y)
                    thr = torch.full((m,), tol2, device=y.device, dtype=y.dtype)
                p = _Piece(y, axis, band=active.numel() >= BAND_MIN_TARGETS)
                for idx, f in filt:
                    rows, cols, _ = f.candidates(p, thr[: idx.numel()])
                    if rows.numel() == 0:
                        continue
                    t_idx = idx[rows]
                    acc_x.append(x[cols])
                    acc_t.append(t_idx)
                    if world == 1:
                        counts.index_add_(0, t_idx, torch.ones_like(t_idx))
                        continue
                    g = _sim_index(cols, blocks, seed_block)
                    acc_g.append(g)
                    slot = torch.div(g, chunk_len, rounding_mode="floor") - j * world
                    flat = (slot * m + t_idx).to(chunk_counts.device)
                    chunk_counts.view(-1).index_add_(0, flat, torch.ones_like(flat))
                if world == 1:
                    n_sims += y.shape[0]
                    seen[active] += y.shape[0]
            if world == 1:
                lo, hi = counts.min().item(), counts.max().item()
                bar.update(sum(p[1].shape[0] for p in pieces), f"accepted per target {lo}-{hi}")
                if max_accept is not None:
                    still = counts[active] < max_accept
                    if not bool(still.all()):
                        active = active[still]
                        if active.numel() == 0:
                            break
                        filt = _blocks(targets, active, piece, targets.dtype)
                continue
            # N ranks: replay one process's chunks of this round from the summed counts
            assert shard is not None
            chunk_counts = shard.sum_(chunk_counts).to(counts.device)
            before, done = n_sims, False
            for c in range(j * world, min((j + 1) * world, plan.n_chunks)):
                counts += chunk_counts[c - j * world] * live
                seen += plan.chunk_sims(c) * live
                n_sims += plan.chunk_sims(c)
                if max_accept is not None:
                    full = live & (counts >= max_accept)
                    until[full] = c
                    live &= ~full
                    done = not bool(live.any())
                    if done:
                        break
            lo, hi = counts.min().item(), counts.max().item()
            bar.update(n_sims - before, f"accepted per target {lo}-{hi}")
            if done:
                break
            if max_accept is not None and int(live.sum()) < active.numel():
                active = live.nonzero().flatten()
                if filt is not None:
                    filt = _blocks(targets, active, piece, targets.dtype)

    device = targets.device
    if world > 1:
        assert shard is not None
        samples = _gather_rejection(shard, acc_x, acc_t, acc_g, until, chunk_len, counts,
                                    problem.dim_x, device)
    elif acc_x:
        all_x = torch.cat(acc_x)
        order = torch.sort(torch.cat(acc_t), stable=True)
        all_x = all_x[order.indices]
        samples = list(torch.split(all_x, counts.tolist()))
    else:
        samples = [torch.empty(0, problem.dim_x, device=device) for _ in range(m)]
    if max_accept is not None:
        samples = [s[:max_accept] for s in samples]
    kept = [int(s.shape[0]) for s in samples]
    info: dict[str, Any] = {
        "method": "rejection",
        "tolerance": float(tolerance),
        "counts": kept,
        "acceptances": counts.tolist(),
        "acceptance_rate": [
            c / max(n, 1) for c, n in zip(counts.tolist(), seen.tolist(), strict=True)
        ],
        "stopped_early": n_sims < budget,
        "seed_block": seed_block,
        "warnings": [],
    }
    if world > 1:
        info["processes"] = world
    if min_accept > 0:
        short = [i for i, c in enumerate(kept) if c < min_accept]
        if short:
            _warn(info, _short_message(targets, short, kept, min_accept, seen.tolist(), tolerance),
                  loud=main)
    return BaselineResult(samples, n_sims, time.perf_counter() - start, info)


def _gather_rejection(
    shard: Shard, acc_x: list[Tensor], acc_t: list[Tensor], acc_g: list[Tensor], until: Tensor,
    chunk_len: int, counts: Tensor, dim_x: int, device: torch.device,
) -> list[Tensor]:
    """All ranks' acceptances that one process would have made, per target in stream order."""
    mine = None
    if acc_x:
        x, t, g = torch.cat(acc_x), torch.cat(acc_t), torch.cat(acc_g)
        # drop what a rank found for a target after one process would have retired it
        keep = torch.div(g, chunk_len, rounding_mode="floor") <= until[t]
        mine = (x[keep].cpu(), t[keep].cpu(), g[keep].cpu())
    parts = [p for p in shard.all_gather_object(mine) if p is not None]
    m = counts.numel()
    if not parts:
        return [torch.empty(0, dim_x, device=device) for _ in range(m)]
    x, t, g = (torch.cat(q) for q in zip(*parts, strict=True))
    order = torch.argsort(g, stable=True)
    x, t = x[order], t[order]
    order = torch.argsort(t, stable=True)
    x, t = x[order].to(device), t[order]
    n = torch.bincount(t, minlength=m).tolist()
    assert n == counts.tolist(), "ABC ranks disagree on the acceptance counts"
    return list(torch.split(x, n))


def _blocks(
    targets: Tensor, active: Tensor, chunk: int, dtype: torch.dtype
) -> list[tuple[Tensor, _Filter]]:
    out = []
    for j0, j1 in _target_blocks(active.numel(), chunk):
        idx = active[j0:j1]
        out.append((idx, _Filter(targets[idx], dtype)))
    return out


def _short_message(
    targets: Tensor, short: list[int], kept: list[int], want: int, seen: list[int], tol: float
) -> str:
    parts = []
    for i in short[:_WARN_LIST]:
        c = kept[i]
        need = f"~{want * seen[i] / c:.2g} simulations" if c else "far more simulations"
        parts.append(f"target {i} y={_format_target(targets[i])}: {c} (needs {need})")
    more = f"; and {len(short) - _WARN_LIST} more" if len(short) > _WARN_LIST else ""
    return (
        f"rejection ABC: {len(short)} of {len(kept)} targets got fewer than {want} acceptances "
        f"with tolerance {tol:g} and {max(seen):.3g} simulations: " + "; ".join(parts) + more
        + ". Raise the budget, raise the tolerance (the acceptance rate grows with "
        "tolerance^dim_y), or use method 'quantile', which keeps the nearest n for every target."
    )


# -- quantile ABC ------------------------------------------------------------------------------
def quantile_abc(
    problem: Problem,
    y_targets: Tensor,
    n_keep: int,
    budget: int,
    *,
    chunk_size: int = 1_000_000,
    generator: torch.Generator,
    progress: bool | Progress = True,
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
    targets = _targets(problem, y_targets)
    k = _positive_int(n_keep, "n_keep")
    budget = _positive_int(budget, "budget")
    chunk_size = _positive_int(chunk_size, "chunk_size")
    seed_block = _positive_int(seed_block, "seed_block")
    if k > budget:
        raise InvkitError(
            f"quantile ABC keeps n_keep={k} draws per target but the budget is only {budget} "
            f"simulations; raise the budget (it should be many times n_keep)."
        )
    m = targets.shape[0]
    plan = _Plan(budget, chunk_size, seed_block, shard)
    base = _agree(shard, generator, targets, ("quantile", k, budget, chunk_size, seed_block))
    main = shard is None or shard.is_main
    # rank 0 advances the bar by its own simulations scaled to the whole budget
    scale = budget / max(plan.own_sims(), 1) if plan.world > 1 else 1
    top: _TopK | None = None
    n_sims, axis = 0, 0
    blocks: list[tuple[int, int, _Filter]] = []

    with _Bar(progress if main else False, budget, f"quantile ABC, {m} targets x {k}") as bar:
        for pieces in _rounds(problem, plan, generator.device, base):
            if not pieces:  # N ranks: this one has no block in the last round
                continue
            for x, y, _ in pieces:
                if top is None:
                    targets = targets.to(device=y.device, dtype=y.dtype)
                    top = _TopK(m, k, x, y)
                    blocks = [
                        (j0, j1, _Filter(targets[j0:j1], y.dtype))
                        for j0, j1 in _target_blocks(m, y.shape[0])
                    ]
                    axis = _band_axis(y)
                p = _Piece(y, axis, band=m >= BAND_MIN_TARGETS)
                _quantile_step(x, p, top, blocks, first_fill=n_sims < k)
                n_sims += y.shape[0]
            assert top is not None
            far = top.thr.max().sqrt().item()
            bar.update(sum(p[1].shape[0] for p in pieces) * scale,
                       f"max kept distance <= {far:.3g}")

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
        _warn(
            info,
            f"quantile ABC: {len(short)} targets kept fewer than {k} draws because simulations "
            f"returned NaN or infinite values (targets {short[:_WARN_LIST]}). Check the "
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
    x: Tensor, p: _Piece, top: _TopK, blocks: list[tuple[int, int, _Filter]], first_fill: bool
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
