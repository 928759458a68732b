"""The stream of simulations ABC draws from: seed blocks, and their split over processes.

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
from collections.abc import Iterator

import torch
from torch import Tensor

from invkit import InvkitError, Problem
from invkit.distributed import Shard

SEED_BLOCK = 2**16
"""Default simulations per seed block (the unit of reproducibility, see the module docstring)."""


def _mix(base: int, k: int) -> int:
    """splitmix64 of (base, k): well-spread 63-bit seeds for the seed blocks."""
    z = (base + (k + 1) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF


class Plan:
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


def base_seed(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))


def rounds(
    problem: Problem, plan: Plan, device: torch.device, base: int
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


def stream(
    problem: Problem,
    budget: int,
    chunk_size: int,
    seed_block: int,
    generator: torch.Generator,
) -> Iterator[list[tuple[Tensor, Tensor]]]:
    """One process's chunks of the budget, each a list of pieces (x, y) of whole seed blocks."""
    plan = Plan(budget, chunk_size, seed_block, None)
    for pieces in rounds(problem, plan, generator.device, base_seed(generator)):
        yield [(x, y) for x, y, _ in pieces]


def sim_index(cols: Tensor, blocks: list[int], seed_block: int) -> Tensor:
    """Positions in the one-process stream of a piece's columns ``cols``."""
    if len(blocks) == 1:
        return cols + blocks[0] * seed_block
    start = torch.tensor(blocks, device=cols.device) * seed_block
    return start[torch.div(cols, seed_block, rounding_mode="floor")] + cols % seed_block


def agree(shard: Shard | None, generator: torch.Generator, targets: Tensor,
           settings: tuple) -> int:
    """The stream's base seed; with several ranks, checked to be the same call on all of them.

    A rank with another seed, other settings or other targets would silently give a result
    that is no one-process result, so every rank raises the same error instead.
    """
    base = base_seed(generator)
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
