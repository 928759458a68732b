"""The noise-free arm's exact posterior against ABC: convergence, the protocol's reference, speed.

Three parts, each measured in one run (``--parts`` picks some):

* ``tolerances``: rejection ABC at shrinking tolerances on named targets (nearly straight
  arms, |y| about 1.9 to 2.3, bent and folded ones), its Err_post against ``--samples`` exact
  samples beside the noise floor: Err_post of independent exact sets of the same size (mean of
  five), and that floor's expectation for i.i.d. sets. One rejection-ABC run per tolerance,
  each stopping once every target has ``--abc-samples`` (or at ``--abc-budget``).
* ``protocol``: the benchmark's reference (quantile ABC, the ``--samples`` nearest of one pool
  of ``--pool`` simulations, as ``invkit.evaluation.reference``) for ``--targets`` targets
  drawn from the prior, scored against exact samples, per |y| bin, beside the floor (a second,
  independent exact set against the first).
* ``protocol`` also times the exact sampler (two runs: the median) against the quantile-ABC
  reference measured in the same run, and prints the pools' effective sample sizes.

Run:  python benchmarks/kinematics_exact.py [--threads 1] [--parts tolerances,protocol]
      [--targets 1000] [--samples 4000] [--pool 1e8] [--abc-budget 2e9] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import invkit
from invkit.evaluation.metrics import err_post
from invkit.kernels import benchmark_kernel
from invkit_abc import quantile_abc, rejection_abc
from invkit_kinematics import arm
from invkit_kinematics.exact import sample_posterior

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header, set_threads, table  # noqa: E402

TARGETS = {
    "nearly straight, level": (1.9, 0.4),
    "nearly straight, up": (1.2, 1.95),
    "nearly straight, down": (1.5, -1.7),
    "bent": (1.5, 0.5),
    "folded, up": (0.9, 0.9),
    "folded, down": (0.8, -0.9),
}
BINS = (0.0, 1.5, 1.8, 1.9, 2.0, 2.1, 2.2, float("inf"))
"""|y| bins of the protocol table (prior targets: 3%, 18%, 19%, 34%, 16%, 6%, 3%); from 2.0
on, the arm is nearly straight and the shoulder offset carries the rest."""
FLOOR_REPEATS = 5


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def expected_floor(exact: torch.Tensor, n: int) -> float:
    """E Err_post of n i.i.d. samples against the m samples ``exact`` of the same law:
    (1/n + 1/m) (k(0) - mean of k over the exact set's distinct pairs)."""
    x = exact.double()
    m = x.shape[0]
    total = sum(float(benchmark_kernel(torch.cdist(x[i:i + 500], x) ** 2).sum())
                for i in range(0, m, 500))  # in row blocks: bounded memory
    k0 = float(benchmark_kernel(torch.zeros((), dtype=torch.float64)))
    return (1 / n + 1 / m) * (k0 - (total - m * k0) / (m * (m - 1)))


def tolerances_part(args: argparse.Namespace, problem) -> None:
    names = list(TARGETS)
    y = torch.tensor([TARGETS[k] for k in names])
    tols = sorted((float(t) for t in args.tolerances.split(",")), reverse=True)
    n = args.abc_samples
    exact = sample_posterior(y, args.samples, gen(args.seed + 1)).samples
    floors = [sample_posterior(y, n, gen(args.seed + 10 + r)).samples
              for r in range(FLOOR_REPEATS)]
    results, sims, abc_time = [], 0, 0.0
    for t, tol in enumerate(tols):  # one run per tolerance, each stopping at n per target
        res = rejection_abc(problem, y, tol, int(args.abc_budget), generator=gen(args.seed + t),
                            max_accept=n, progress=not args.no_progress)
        results.append(res)
        sims += res.n_simulations
        abc_time += res.wall_time_s
    rows = []
    for i, name in enumerate(names):
        for tol, res in zip(tols, results):
            kept = res.samples[i]
            c = len(kept)
            cells = [name, f"({y[i, 0]:.2f}, {y[i, 1]:.2f})", f"{y[i].norm():.2f}", f"{tol:g}",
                     str(c)]
            if c < 2:
                rows.append(cells + ["-"] * 4)
                continue
            err = err_post([kept], [exact[i]])[0]
            floor = statistics.mean(err_post([f[i, :c]], [exact[i]])[0] for f in floors)
            expected = expected_floor(exact[i], c)
            rows.append(cells + [f"{err:.5f}", f"{floor:.5f}", f"{expected:.5f}",
                                 f"{err / expected:.2f}"])
    print(f"## Rejection ABC against exact samples (up to {n} ABC samples per target and "
          f"tolerance, at most {args.abc_budget:.3g} simulations per tolerance: {sims:.3g} in "
          f"{abc_time:.0f} s; exact reference {args.samples} samples)\n")
    print("floor: Err_post of exact sets of the ABC set's size against the same reference, "
          f"mean of {FLOOR_REPEATS}; expected: its expectation for i.i.d. sets, "
          "(1/n + 1/m) (k(0) - mean k(x, x')); ratio: ABC's Err_post / expected floor\n")
    print(table(["target", "y", "|y|", "tolerance", "ABC samples", "Err_post ABC vs exact",
                 "floor", "expected floor", "ratio"], rows))
    print()


def protocol_part(args: argparse.Namespace, problem) -> None:
    m, n = args.targets, args.samples
    targets = arm.forward(arm.sample_prior(m, gen(args.seed + 3)))
    t0 = time.perf_counter()
    ref = quantile_abc(problem, targets, n, int(args.pool), generator=gen(args.seed + 7),
                       progress=not args.no_progress)
    abc_time = time.perf_counter() - t0
    q_samples = torch.stack(ref.samples)
    runs, times = [], []
    for r in range(2):
        t0 = time.perf_counter()
        runs.append(sample_posterior(targets, n, gen(args.seed + 20 + r),
                                     progress=not args.no_progress))
        times.append(time.perf_counter() - t0)
    a, b = runs
    t0 = time.perf_counter()
    _, abc_err = err_post(q_samples, a.samples)
    _, floor = err_post(b.samples, a.samples)
    mmd_time = time.perf_counter() - t0
    norm = targets.norm(dim=1)
    tol = torch.tensor(ref.info["tolerance"])
    rows = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        sel = (norm >= lo) & (norm < hi)
        k = int(sel.sum())
        if k == 0:
            continue
        e, f = float(abc_err[sel].mean()), float(floor[sel].mean())
        rows.append([f"[{lo:g}, {hi:g})", str(k), f"{float(tol[sel].median()):.3g}",
                     f"{e:.5f}", f"{f:.5f}", f"{e / f:.1f}"])
    e, f = float(abc_err.mean()), float(floor.mean())
    rows.append(["all", str(m), f"{float(tol.median()):.3g}", f"{e:.5f}", f"{f:.5f}",
                 f"{e / f:.1f}"])
    print(f"## The protocol's quantile-ABC reference ({n} nearest of {args.pool:.3g}) against "
          f"exact samples: {m} prior targets, {n} samples each\n")
    print(table(["|y|", "targets", "median ABC tolerance", "Err_post quantile ABC vs exact",
                 "floor exact vs exact", "ratio"], rows))
    print()

    exact_time = statistics.median(times)
    print(f"## Time for {m} targets x {n} samples ({torch.get_num_threads()} threads)\n")
    print(table(["reference", "time (s)", "ratio to quantile ABC"], [
        [f"quantile ABC, pool {args.pool:.3g} (baseline)", f"{abc_time:.1f}", "1.00"],
        ["exact sampler (median of 2 runs)", f"{exact_time:.1f}", f"{exact_time / abc_time:.2f}"],
    ]))
    print(f"\n(the two Err_post columns above took {mmd_time:.0f} s)\n")
    q = torch.tensor([0.0, 0.01, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    ess = torch.cat([a.ess, b.ess])
    per_draw = torch.cat([a.ess / a.pool, b.ess / b.pool])
    pool = torch.cat([a.pool, b.pool]).double()
    print("## The exact sampler's pools (both runs)\n")
    print(table(["quantile", "ESS / n", "ESS per proposal", "proposals per target"], [
        [f"{float(p):g}", f"{float(v1) / n:.1f}", f"{float(v2):.3f}", f"{float(v3):.3g}"]
        for p, v1, v2, v3 in zip(q, torch.quantile(ess, q), torch.quantile(per_draw, q),
                                 torch.quantile(pool, q))]))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="tolerances,protocol")
    parser.add_argument("--targets", type=int, default=1000, help="protocol targets")
    parser.add_argument("--samples", type=int, default=4000, help="reference samples per target")
    parser.add_argument("--pool", type=float, default=1e8, help="quantile-ABC simulations")
    parser.add_argument("--tolerances", default="0.08,0.04,0.02,0.01,0.005,0.0025")
    parser.add_argument("--abc-budget", type=float, default=1e9,
                        help="most rejection-ABC simulations per tolerance")
    parser.add_argument("--abc-samples", type=int, default=4000,
                        help="ABC samples kept per target and tolerance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps default")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100 targets x 1000, pool 1e7, ABC budget 1e8 x 1000")
    args = parser.parse_args()
    set_threads(args.threads)
    if args.quick:
        args.targets, args.samples, args.pool, args.abc_budget = 100, 1000, 1e7, 1e8
        args.abc_samples = min(args.abc_samples, 1000)
    header("Exact posterior of the noise-free arm against ABC")
    problem = invkit.get_problem("kinematics")
    parts = args.parts.split(",")
    if "tolerances" in parts:
        tolerances_part(args, problem)
    if "protocol" in parts:
        protocol_part(args, problem)


if __name__ == "__main__":
    main()
