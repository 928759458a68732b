"""Simulations per second of a deliberately slow simulator with 0, 1 and 2 worker processes.

The simulator is plain numpy, called one sample at a time (``vectorized=False``), and spends
``--ms`` milliseconds (default 1) per simulation in a busy wait: it keeps a core busy as a
real simulator would. A sleep would be the wrong model: sleeping workers overlap even on one
core and would show a speed-up no CPU-bound simulator gets.

Each setting runs ``invkit.simulation.simulate`` on the same budget and seed (no cache, no
progress bar), interleaved (A B C, C B A, ...) so that load on a shared machine hits every
setting alike; the table gives median simulations/s and the ratios to one worker process and
to simulating in this process (``workers=0``). The pairs are checked to be identical for every
setting (the stream does not depend on the workers).

Run:  python benchmarks/simulation_workers.py [--n 2000] [--ms 1] [--workers 0,1,2] [--repeats 3]
(on a machine shared with other jobs, pin it to the cores it may use, e.g.
``OMP_NUM_THREADS=1 taskset -c 0,1 python benchmarks/simulation_workers.py``: two workers need
two cores to run side by side).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from invkit.problem import ForwardProcess, Prior, Problem
from invkit.simulation import simulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import fmt_rate, header, interleaved, median, paired_ratio, table  # noqa: E402


def slow_problem(ms: float) -> Problem:
    """A 2-parameter problem whose per-sample numpy simulator busy-waits ``ms`` per call."""
    seconds = ms / 1000.0

    def simulator(row: np.ndarray) -> np.ndarray:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
        return np.array([row.sum(), row[0] * row[1]])

    prior = Prior("normal", 2, lambda n, g: torch.randn(n, 2, generator=g, device=g.device))
    process = ForwardProcess("busy_wait", 2, 2, simulator, backend="numpy", vectorized=False)
    return Problem("slow", prior, process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="simulations per run")
    parser.add_argument("--ms", type=float, default=1.0, help="milliseconds per simulation")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    header(f"Simulations/s of a {args.ms:g} ms per-sample numpy simulator by worker processes")

    problem = slow_problem(args.ms)
    results = {}

    def case(workers: int):
        def run() -> None:
            results[workers] = simulate(problem, args.n, seed=0, workers=workers)
        return run

    cases = {f"workers={w}": case(w) for w in counts}
    times = interleaved(cases, args.repeats, warmup=1)
    first = results[counts[0]]
    for w in counts[1:]:
        assert torch.equal(results[w].x, first.x) and torch.equal(results[w].y, first.y), w

    base1 = times.get("workers=1")
    base0 = times.get("workers=0")
    rows = []
    for w in counts:
        t = times[f"workers={w}"]
        rows.append([w, fmt_rate(args.n / median(t)), f"{median(t):.2f}",
                     f"{paired_ratio(base1, t):.2f}" if base1 else "-",
                     f"{paired_ratio(base0, t):.2f}" if base0 else "-"])
    print(f"{args.n} simulations per run, block size {first.block_size}, "
          f"{args.repeats} interleaved repeats; ideal rate {1000 / args.ms:.3g}/s per core\n")
    print(table(["workers", "simulations/s", "seconds", "ratio to 1 worker",
                 "ratio to workers=0"], rows))


if __name__ == "__main__":
    main()
