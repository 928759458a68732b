"""How many CPU threads torch uses, chosen so that a busy machine does not slow training down.

torch's default (one thread per core) is fastest on an idle machine, but when another process
holds a core, OpenMP threads wait for it at every operation: on a loaded 2-core machine the
quick gmm run took 27x longer with two threads than with one. ``--threads auto`` (the default
of ``invkit run``) therefore times a few steps of the real training step with one thread and
with all available cores, on a throwaway copy of the model, and keeps the faster (one thread
unless more are clearly faster). The choice and the timings go into metrics.json.

Float results depend on the thread count, so a run is bit-identical to another only with the
same count: ``--threads N`` fixes it, and ``--resume`` reuses the count the run started with.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

PREFER_FEWER = 1.15
"""More threads are kept only when at least this much faster (they cost other jobs cores)."""


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def choose(step: Callable[[], None], *, repeats: int = 3) -> tuple[int, dict[str, Any]]:
    """The thread count at which ``step`` (one training step on a copy) runs fastest, and the
    timings behind the choice (median seconds per step for each count tried)."""
    cores = min(available_cores(), max(torch.get_num_threads(), 1))
    if cores <= 1:
        return 1, {}
    candidates = [1, cores]
    times: dict[int, list[float]] = {c: [] for c in candidates}
    with kept():
        for c in candidates:  # warm up each count once (allocations, OpenMP pool start)
            torch.set_num_threads(c)
            step()
        for _ in range(repeats):  # interleaved, so a burst of load hits both alike
            for c in candidates:
                torch.set_num_threads(c)
                t0 = time.perf_counter()
                step()
                times[c].append(time.perf_counter() - t0)
    per_step = {c: statistics.median(v) for c, v in times.items()}
    best = min(candidates, key=lambda c: per_step[c] * (1.0 if c == 1 else PREFER_FEWER))
    return best, {"threads_step_time_s": {str(c): v for c, v in per_step.items()}}


@contextlib.contextmanager
def kept() -> Iterator[None]:
    """Restore torch's thread count on exit (invkit.train must not change the caller's)."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)
