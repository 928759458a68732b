"""The stream of simulations, cut into seed blocks: what makes simulations reproducible.

Block ``k`` of the stream with seed ``s`` holds rows ``[k B, (k + 1) B)`` (``B`` the block
size). It draws its prior samples and then its simulations from one ``torch.Generator``
seeded with :func:`block_seed` ``(s, k)``, a well-mixed 63-bit function of both (splitmix64),
and from nothing else. Hence a block's content depends only on (problem, seed, ``B``, ``k``),
never on which process ran it, in which order blocks finished, or whether the blocks before
it were read from a cache; and a larger ``n`` extends the same stream block by block.

The last block of ``n`` rows may be cut short (``n`` not a multiple of ``B``): its prior draws
are still drawn for the whole block (the x rows are the same as in a longer run), and only the
rows needed are simulated, so a budget is never overspent. The simulations of such a cut
block are those of a longer run only for a deterministic process without observation noise
(stochastic noise is drawn for the rows simulated).

The block size is part of what fixes the stream, so it depends only on things that stay the
same from run to run, never on timing: by default on the kind of process
(:func:`default_block_size`), or what the user sets.
"""

from __future__ import annotations

import traceback
from typing import Any

import numpy as np
import torch
from torch import Tensor

from invkit.problem import ForwardProcess, Problem
from invkit.simulation.cache import BlockCache

STREAM_VERSION = 1
"""Bumped when the way a block is drawn changes (it is part of the cache key)."""

BLOCK_TORCH = 2**16
"""Batched torch processes: fast, so few large blocks (kernels stay large, overhead nil)."""
BLOCK_NUMPY = 2**12
"""Batched numpy processes: slower, on the CPU; a block still amortises the conversions."""
BLOCK_PER_SAMPLE = 32
"""Processes called one sample at a time (numpy or torch, external programs run once per
sample): slow by nature, so small blocks report progress and reach the cache often, while
the work per block (32 calls) still dwarfs a block's overhead (about a millisecond)."""

_MASK64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    """One step of splitmix64 (Steele, Lea and Flood 2014): a bijective 64-bit mixer."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def block_seed(seed: int, k: int) -> int:
    """The 63-bit seed of block ``k`` of the stream ``seed``.

    The seed is mixed first and the block index after, so neighbouring seeds and neighbouring
    blocks both give unrelated generators (``seed + k`` would make seed 1's block 0 equal to
    seed 0's block 1).
    """
    return _splitmix64(_splitmix64(int(seed) & _MASK64) ^ int(k)) >> 1


def default_block_size(process: ForwardProcess) -> int:
    """Rows per block for ``process``, from its declared kind only (see the module docstring).

    A process may suggest its own size with an attribute ``invkit_block_size`` on its ``fn``
    (``external_program`` does): a constant of the process, so the stream stays fixed.
    """
    hint = getattr(process.fn, "invkit_block_size", None)
    if isinstance(hint, int) and not isinstance(hint, bool) and hint > 0:
        return hint
    if not process.vectorized:
        return BLOCK_PER_SAMPLE
    return BLOCK_TORCH if process.backend == "torch" else BLOCK_NUMPY


def simulation_device(process: ForwardProcess, device: torch.device) -> torch.device:
    """Where a block is drawn: the caller's device for batched torch processes, else the CPU
    (numpy, per-sample and external processes run there whatever the device)."""
    if process.backend == "torch" and process.vectorized:
        return device
    return torch.device("cpu")


def describe_source(problem: Problem, plugin: str | None) -> str:
    """'forward process 'sim' of problem 'toy' (plugin 'x' (distribution y 1.0))'."""
    name = problem.forward_process.name if problem.has_simulator else "(none)"
    by = f" ({plugin})" if plugin else ""
    return f"forward process {name!r} of problem {problem.name!r}{by}"


class BlockFailed(Exception):
    """A block's simulation raised; the message names the process, the block and its seed.
    Only strings inside, so it crosses process boundaries whatever the plugin raised."""

    def __init__(self, message: str, k: int) -> None:
        super().__init__(message, k)
        self.message, self.k = message, k

    def __str__(self) -> str:
        return self.message


class BlockRunner:
    """Simulates block ``k`` of one stream and writes it to the cache: the unit of work that
    runs in this process or in a worker (it holds everything a worker needs).

    Pickled (a worker started without fork), it keeps the problem's name and options and the
    worker rebuilds the problem from invkit's registry.
    """

    def __init__(self, problem: Problem, seed: int, block_size: int, device: torch.device,
                 cache: BlockCache | None, source: str) -> None:
        self.problem, self.seed, self.block_size = problem, int(seed), int(block_size)
        self.device, self.cache, self.source = device, cache, source

    def run(self, k: int, rows: int) -> tuple[Tensor, Tensor]:
        """Rows ``[k B, k B + rows)`` of the stream as float32 (x, y) on the block's device,
        written to the cache before they are returned."""
        problem, bs = self.problem, self.block_size
        bseed = block_seed(self.seed, k)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(bseed)
        step = "drawing the prior"
        try:
            x = problem.sample_prior(bs, gen)[:rows]
            step = "simulating"
            y = problem.simulate(x, gen)
        except Exception as exc:
            raise BlockFailed(self._failure(k, rows, bseed, step, exc), k) from exc
        x, y = self._checked(x, y, k, rows)
        if self.cache is not None:
            self.cache.save(k, x.detach().cpu().numpy(), y.detach().cpu().numpy())
        return x, y

    def _failure(self, k: int, rows: int, bseed: int, step: str, exc: BaseException) -> str:
        start = k * self.block_size
        where = ""
        frames = traceback.extract_tb(exc.__traceback__)
        if frames:
            last = frames[-1]
            where = f" (raised at {last.filename}:{last.lineno}, in {last.name})"
        return (f"The {self.source} failed while {step} block {k} of the stream with seed "
                f"{self.seed} (rows {start} to {start + rows - 1}, block seed {bseed}): "
                f"{type(exc).__name__}: {exc}{where}")

    def _checked(self, x: Any, y: Any, k: int, rows: int) -> tuple[Tensor, Tensor]:
        dims = (self.problem.dim_x, self.problem.dim_y)
        for name, t, dim in (("x", x, dims[0]), ("y", y, dims[1])):
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != (rows, dim):
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise BlockFailed(f"The {self.source} gave {name} of shape {got} in block {k}; "
                                  f"expected ({rows}, {dim}).", k)
        return x.detach().to(torch.float32), y.detach().to(torch.float32)

    # -- crossing to a worker started without fork ----------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["problem"] = (self.problem.name, dict(self.problem.options))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from invkit.registry import get_registry

        name, options = state["problem"]
        state["problem"] = get_registry().build_problem(name, options)
        self.__dict__.update(state)


def as_numpy(x: Tensor, y: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A block as numpy arrays, to send from a worker (tensors would go through shared
    memory handles that outlive nothing here)."""
    return x.cpu().numpy(), y.cpu().numpy()
