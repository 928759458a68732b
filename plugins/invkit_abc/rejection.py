"""Rejection ABC: every prior draw whose simulation lies within a tolerance of a target."""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor

from invkit import BaselineResult, InvkitError, Problem
from invkit.distributed import Shard
from invkit.progress import ProgressBar
from invkit_abc.checks import WARN_LIST, check_targets, format_target, positive_int, warn
from invkit_abc.prefilter import BAND_MIN_TARGETS, Filter, Piece, band_axis, target_blocks
from invkit_abc.stream import SEED_BLOCK, Plan, agree, rounds, sim_index


def rejection_abc(
    problem: Problem,
    y_targets: Tensor,
    tolerance: float,
    budget: int,
    *,
    chunk_size: int = 1_000_000,
    generator: torch.Generator,
    progress: bool = False,
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
    targets = check_targets(problem, y_targets)
    if not tolerance > 0 or not math.isfinite(tolerance):
        raise InvkitError(f"ABC tolerance must be a positive number, got {tolerance!r}.")
    budget = positive_int(budget, "budget")
    chunk_size = positive_int(chunk_size, "chunk_size")
    seed_block = positive_int(seed_block, "seed_block")
    if max_accept is not None:
        max_accept = positive_int(max_accept, "max_accept")
    m = targets.shape[0]
    plan = Plan(budget, chunk_size, seed_block, shard)
    base = agree(shard, generator, targets,
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
    filt: list[tuple[Tensor, Filter]] | None = None
    piece, axis = 0, 0

    with ProgressBar(f"rejection ABC, {m} targets", budget, unit="sims",
                     enabled=progress and main) as bar:
        for j, pieces in enumerate(rounds(problem, plan, generator.device, base)):
            if world > 1:
                assert shard is not None
                chunk_counts = torch.zeros((world, m), dtype=torch.long, device=shard.device)
            for x, y, blocks in pieces:
                if filt is None:
                    targets = targets.to(device=y.device, dtype=y.dtype)
                    counts, seen = counts.to(y.device), seen.to(y.device)
                    active, live, until = active.to(y.device), live.to(y.device), until.to(y.device)
                    filt = _blocks(targets, active, y.shape[0], y.dtype)
                    piece, axis = y.shape[0], band_axis(y)
                    thr = torch.full((m,), tol2, device=y.device, dtype=y.dtype)
                p = Piece(y, axis, band=active.numel() >= BAND_MIN_TARGETS)
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
                    g = sim_index(cols, blocks, seed_block)
                    acc_g.append(g)
                    slot = torch.div(g, chunk_len, rounding_mode="floor") - j * world
                    flat = (slot * m + t_idx).to(chunk_counts.device)
                    chunk_counts.view(-1).index_add_(0, flat, torch.ones_like(flat))
                if world == 1:
                    n_sims += y.shape[0]
                    seen[active] += y.shape[0]
            if world == 1:
                lo, hi = counts.min().item(), counts.max().item()
                bar.update(advance=sum(p[1].shape[0] for p in pieces),
                           status=f"accepted per target {lo}-{hi}")
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
            bar.update(advance=n_sims - before, status=f"accepted per target {lo}-{hi}")
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
            warn(info, _short_message(targets, short, kept, min_accept, seen.tolist(), tolerance),
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
) -> list[tuple[Tensor, Filter]]:
    out = []
    for j0, j1 in target_blocks(active.numel(), chunk):
        idx = active[j0:j1]
        out.append((idx, Filter(targets[idx], dtype)))
    return out


def _short_message(
    targets: Tensor, short: list[int], kept: list[int], want: int, seen: list[int], tol: float
) -> str:
    parts = []
    for i in short[:WARN_LIST]:
        c = kept[i]
        need = f"~{want * seen[i] / c:.2g} simulations" if c else "far more simulations"
        parts.append(f"target {i} y={format_target(targets[i])}: {c} (needs {need})")
    more = f"; and {len(short) - WARN_LIST} more" if len(short) > WARN_LIST else ""
    return (
        f"rejection ABC: {len(short)} of {len(kept)} targets got fewer than {want} acceptances "
        f"with tolerance {tol:g} and {max(seen):.3g} simulations: " + "; ".join(parts) + more
        + ". Raise the budget, raise the tolerance (the acceptance rate grows with "
        "tolerance^dim_y), or use method 'quantile', which keeps the nearest n for every target."
    )
