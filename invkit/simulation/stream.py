"""``simulate(problem, n, seed)``: training pairs from any simulator, reproducible, cached,
in parallel when asked, with non-finite simulations handled by one policy.

This is the one place that turns a simulation budget into pairs (x, y). The stream of
simulations is cut into seed blocks (:mod:`invkit.simulation.blocks`), so the result depends
on (problem, seed, n, block size) only: not on ``workers``, on the order blocks finish, nor on
which blocks came from the cache. Blocks run in this process or in worker processes
(:mod:`invkit.simulation.workers`), each is written to the cache as soon as it is done
(:mod:`invkit.simulation.cache`), and rows with NaN or infinite values are dropped or refused
(:mod:`invkit.simulation.policy`). A problem without a simulator (a file of simulations)
gives its stored pairs through the same call.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from invkit.errors import InvkitError, InvkitWarning, join_sentences
from invkit.problem import Problem
from invkit.progress import ProgressBar
from invkit.simulation import policy
from invkit.simulation.blocks import (
    STREAM_VERSION,
    BlockRunner,
    default_block_size,
    describe_source,
    simulation_device,
)
from invkit.simulation.cache import CACHE_FORMAT, BlockCache
from invkit.simulation.workers import Pool


@dataclass
class SimulationResult:
    """Pairs (x, y) and an account of where they came from (for ``metrics.json``).

    ``x`` ``(n', dim_x)`` and ``y`` ``(n', dim_y)`` are float32 tensors on the requested
    device, ``n' = requested - dropped``. ``simulated`` counts simulations run by this call,
    ``from_cache`` those read from the cache and ``from_file`` those read from a problem's
    file of simulations; ``dropped`` the rows removed for NaN or infinite values.
    """

    x: Tensor
    y: Tensor
    requested: int
    simulated: int
    from_cache: int
    from_file: int
    dropped: int
    problem: str
    process: str | None
    plugin: str | None
    seed: int
    block_size: int
    workers: int
    cache_dir: str | None
    wall_time_s: float

    @property
    def n(self) -> int:
        """Pairs returned."""
        return int(self.x.shape[0])

    def counts(self) -> dict[str, Any]:
        """Everything but the tensors, as plain values (what a run records)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("x", "y")}
        out["returned"] = self.n
        return out


def simulate(problem: Problem, n: int | None, seed: int, *, workers: int = 0,
             block_size: int | None = None, cache: str | os.PathLike[str] | None = None,
             progress: bool = False, nan_policy: str = "drop",
             device: str | torch.device = "cpu", plugin: str | None = None,
             start_method: str | None = None) -> SimulationResult:
    """``n`` pairs (x from the prior, y = s(x) plus the problem's noise) of the stream ``seed``.

    ``workers``: worker processes for slow simulators (0: this process); ``block_size``: rows
    per seed block (default by the process's kind, :func:`default_block_size`; it is part of
    what fixes the stream); ``cache``: a folder to keep blocks in and read them from (a run
    directory's ``simulations/``; None keeps nothing); ``progress``: a progress bar in
    simulations/s on stderr; ``nan_policy``: ``"drop"`` or ``"error"`` for rows with NaN or
    infinite values; ``device``: where batched torch processes run and the result lives;
    ``plugin``: who provides the problem, for messages and the cache key (default: looked up
    in invkit's registry by the problem's name); ``start_method``: override the workers'
    start method (tests).

    A problem without a simulator (``Problem.simulations``, e.g. a file) gives its stored
    pairs instead: all of them when ``n`` is None or at least their number, else ``n`` rows
    chosen at random with ``seed`` (a file sorted by parameter would bias the first rows).
    """
    t0 = time.perf_counter()
    policy.check_policy(nan_policy)
    dev = torch.device(device)
    if plugin is None:
        plugin = _plugin_of(problem)
    if not problem.has_simulator:
        return _from_simulations(problem, n, seed, nan_policy, dev, plugin, t0)
    n = _count(n, "n")
    workers = _count(workers, "workers")
    process = problem.forward_process
    bs = _count(block_size, "block_size") if block_size is not None \
        else default_block_size(process)
    if bs < 1:
        raise InvkitError(f"block_size={bs}; expected a positive number of rows per block.")
    sim_dev = simulation_device(process, dev)
    source = describe_source(problem, plugin)
    store = None if cache is None else BlockCache.open(
        cache, _cache_key(problem, seed, bs, sim_dev, plugin))

    x_all = torch.empty(n, problem.dim_x, device=dev)
    y_all = torch.empty(n, problem.dim_y, device=dev)
    tasks, from_cache = [], 0
    for k in range(-(-n // bs)):
        rows = min(bs, n - k * bs)
        block = store.load(k, rows, problem.dim_x, problem.dim_y) if store else None
        if block is None:
            tasks.append((k, rows))
            continue
        x_all[k * bs:k * bs + rows] = torch.from_numpy(block[0])
        y_all[k * bs:k * bs + rows] = torch.from_numpy(block[1])
        from_cache += rows
    if store is not None and store.damaged:
        warnings.warn(InvkitWarning(
            f"{len(store.damaged)} cached block(s) of simulations in {store.folder} could not "
            f"be read and are simulated again (moved aside as *.damaged)."), stacklevel=2)

    simulated = 0
    if tasks:
        runner = BlockRunner(problem, seed, bs, sim_dev, store, source)
        try:
            with Pool(runner, workers, start_method) as pool, ProgressBar(
                    f"simulating {problem.name}", total=n, unit="sims", enabled=progress,
                    start=from_cache) as bar:
                for k, x, y in pool.run(tasks):
                    rows = int(x.shape[0])
                    if nan_policy == "error":
                        bad = int((~policy.finite_rows(x, y)).sum())
                        if bad:
                            raise policy.refuse(bad, rows, f"the {source} (block {k} of the "
                                                           f"stream with seed {seed})")
                    x_all[k * bs:k * bs + rows] = x.to(dev)
                    y_all[k * bs:k * bs + rows] = y.to(dev)
                    simulated += rows
                    bar.update(advance=rows,
                               status=_status(workers, pool.in_process, from_cache))
        except InvkitError as exc:
            # the simulator's own exception stays the cause; the message gains what is kept
            raise InvkitError(join_sentences(exc, _kept(store))) from exc.__cause__

    x_ok, y_ok, dropped = policy.apply(x_all, y_all, nan_policy, f"the {source}")
    return SimulationResult(
        x=x_ok, y=y_ok, requested=n, simulated=simulated, from_cache=from_cache, from_file=0,
        dropped=dropped, problem=problem.name, process=process.name, plugin=plugin,
        seed=int(seed), block_size=bs, workers=workers,
        cache_dir=str(store.folder) if store else None, wall_time_s=time.perf_counter() - t0)


def _kept(store: BlockCache | None) -> str:
    """What the error leaves behind: the finished blocks, and how to go on from them."""
    if store is None:
        return ("Nothing simulated was kept: give a cache folder (data.cache) to keep "
                "finished blocks")
    return (f"The {store.count()} block(s) finished are kept in the cache ({store.folder}); "
            f"the next run with the same problem and seed reads them instead of simulating")


def _status(workers: int, in_process: bool, from_cache: int) -> str:
    where = "in process" if in_process else f"{workers} workers"
    return f"{where}, {from_cache:.3g} cached" if from_cache else where


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
        raise InvkitError(f"{name}={value!r}; expected a whole number >= 0.")
    return value


def _cache_key(problem: Problem, seed: int, block_size: int, device: torch.device,
               plugin: str | None) -> dict[str, Any]:
    """Everything that fixes a block's content (see :mod:`invkit.simulation.cache`)."""
    p = problem.forward_process
    return {
        "format": CACHE_FORMAT, "stream": STREAM_VERSION, "problem": problem.name,
        "options": dict(problem.options), "plugin": plugin, "prior": problem.prior_distribution
        .name, "process": p.name, "backend": p.backend, "rng": p.rng,
        "vectorized": p.vectorized, "dim_x": problem.dim_x, "dim_y": problem.dim_y,
        "noise_std": float(problem.noise_std), "seed": int(seed), "block_size": block_size,
        "device": device.type,
    }


def _plugin_of(problem: Problem) -> str | None:
    """'plugin 'x' (distribution y 1.0)' when the registry knows the problem's name."""
    try:
        from invkit.registry import get_registry

        return str(get_registry().origin("problem", problem.name))
    except Exception:  # unregistered (built in code), or no registry at all: not an error
        return None


def _from_simulations(problem: Problem, n: int | None, seed: int, nan_policy: str,
                      dev: torch.device, plugin: str | None, t0: float) -> SimulationResult:
    sims = problem.simulations
    if sims is None:
        raise InvkitError(f"Problem {problem.name!r} has neither a simulator (a prior and a "
                          f"forward process) nor simulations to read.")
    x, y = sims.load()
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.float32)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] \
            or x.shape[1] != sims.dim_x or y.shape[1] != sims.dim_y:
        raise InvkitError(f"Problem {problem.name!r}: its simulations gave x of shape "
                          f"{tuple(x.shape)} and y of shape {tuple(y.shape)}; expected (n, "
                          f"{sims.dim_x}) and (n, {sims.dim_y}).")
    total = int(x.shape[0])
    if n is not None and _count(n, "n") < total:
        gen = torch.Generator().manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)
        idx = torch.randperm(total, generator=gen)[:n].sort().values
        x, y = x[idx], y[idx]
    source = f"the simulations of problem {problem.name!r}" + (f" ({plugin})" if plugin else "")
    if sims.description:
        source += f" ({sims.description})"
    x, y, dropped = policy.apply(x, y, nan_policy, source)
    requested = total if n is None else min(n, total)
    return SimulationResult(
        x=x.to(dev), y=y.to(dev), requested=requested, simulated=0, from_cache=0,
        from_file=requested, dropped=dropped, problem=problem.name, process=None,
        plugin=plugin, seed=int(seed), block_size=0, workers=0, cache_dir=None,
        wall_time_s=time.perf_counter() - t0)


def cache_folder(run_dir: str | os.PathLike[str]) -> Path:
    """The cache folder of a run directory: ``RUN_DIR/simulations``."""
    return Path(run_dir) / "simulations"
