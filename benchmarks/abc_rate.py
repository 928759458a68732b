"""Simulation rate of invkit's rejection ABC on the arm, against a naive per-target numpy loop.

The original comparison ran rejection ABC at tolerance 0.005 for 9 targets and needed about 7
minutes (about 6.6e8 simulations at single-core numpy speed). This script measures, in one run:

* invkit's ``rejection_abc``: one shared stream of simulations, all 9 targets at once,
  float32 torch, chunked; the rate counts each simulation once (it serves every target);
* the naive baseline: for each target in turn, numpy float64 draws and simulations in chunks,
  accepted by an L2 test; the rate counts simulations per second of that loop, and it needs
  a separate pass per target.

Run:  python benchmarks/abc_rate.py [--budget 1e8] [--naive-budget 2e6] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from invkit.registry import Registry
from invkit_abc import rejection_abc
from invkit_kinematics import plugin as kinematics_plugin
from invkit_kinematics.arm import LENGTHS, SIGMA
from invkit_kinematics.plots import COMPARISON_TARGETS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header  # noqa: E402


def naive_rejection(
    targets: np.ndarray, tolerance: float, budget: int, seed: int, chunk: int = 100_000
) -> tuple[list[int], float]:
    """The straightforward approach: per target, draw and simulate in numpy, keep the close."""
    rng = np.random.default_rng(seed)
    sigma, lengths = np.array(SIGMA), np.array(LENGTHS)
    counts = []
    start = time.perf_counter()
    for target in targets:
        accepted = []
        for first in range(0, budget, chunk):
            n = min(chunk, budget - first)
            x = rng.normal(size=(n, 4)) * sigma
            angles = np.cumsum(x[:, 1:], axis=1)
            y1 = np.cos(angles) @ lengths
            y2 = x[:, 0] + np.sin(angles) @ lengths
            d = np.hypot(y1 - target[0], y2 - target[1])
            accepted.append(x[d < tolerance])
        counts.append(int(sum(len(a) for a in accepted)))
    return counts, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=1e8)
    parser.add_argument("--naive-budget", type=float, default=2e6, help="per target")
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--chunk-size", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke run: budgets 1e7 and 2e5")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.budget, args.naive_budget = 1e7, 2e5
    header("Rejection ABC simulation rate: invkit vs a per-target numpy loop", args.device)

    reg = Registry()
    reg.add_plugin(kinematics_plugin, name="kinematics")
    problem = reg.build_problem("kinematics")
    targets = COMPARISON_TARGETS
    budget, naive_budget = int(args.budget), int(args.naive_budget)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")

    # warm-up (first-call allocations, thread pool start)
    gen = torch.Generator(device=args.device).manual_seed(args.seed)
    rejection_abc(problem, targets, args.tolerance, 2**18, generator=gen, progress=False)

    gen = torch.Generator(device=args.device).manual_seed(args.seed)
    res = rejection_abc(
        problem, targets, args.tolerance, budget, chunk_size=args.chunk_size, generator=gen,
        progress=not args.no_progress, min_accept=100,
    )
    if args.device != "cpu":
        torch.cuda.synchronize()
    rate = res.n_simulations / res.wall_time_s

    naive_counts, naive_time = naive_rejection(
        targets.numpy().astype(np.float64), args.tolerance, naive_budget, args.seed
    )
    naive_rate = len(targets) * naive_budget / naive_time

    print(f"\nrejection ABC, tolerance {args.tolerance}, {len(targets)} targets")
    print(f"{'target':>16} {'invkit accepted':>16} {'rate':>9} {'naive accepted':>15}")
    for i, t in enumerate(targets.tolist()):
        acc = res.info["acceptances"][i]
        print(f"({t[0]:5.2f}, {t[1]:5.2f})   {acc:>16d} {acc / budget:9.2e} {naive_counts[i]:>15d}")
    print(f"\ninvkit: {res.n_simulations:.3g} simulations in {res.wall_time_s:.1f} s "
          f"= {rate:.3g} simulations/s (each compared with all {len(targets)} targets)")
    print(f"naive:  {len(targets)} x {naive_budget:.3g} simulations in {naive_time:.1f} s "
          f"= {naive_rate:.3g} simulations/s (numpy float64, one target per pass)")
    print(f"ratio of simulation rates: {rate / naive_rate:.1f}x")
    print(f"speed-up for the same budget per target ({len(targets)} targets): "
          f"{len(targets) * rate / naive_rate:.0f}x")
    for w in res.info["warnings"]:
        print(f"warning: {w}")


if __name__ == "__main__":
    main()
