"""The INN beside rejection ABC (tolerance 0.005) on 9 arm targets: samples, cost, Err_resim.

    python examples/inn_vs_abc.py RUN_DIR [--budget 1e9] [--tolerance 0.005] [--out DIR]

RUN_DIR is a trained kinematics run (``invkit run kinematics --set model=inn``; the default
cINN works the same). Writes ``comparison.png``
(sampled arm configurations of both methods side by side, targets marked) and
``comparison.md`` / ``comparison.json`` (wall time and sample counts of both methods).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import invkit
from invkit.registry import get_registry
from invkit_kinematics.plots import COMPARISON_TARGETS, comparison_figure

N_INN = 1000
TIMED_CALLS = 5  # INN sampling is timed this many times; the table gives the median


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--budget", type=float, default=1e9,
                   help="ABC simulations, shared by all targets (1e9: >= 100 acceptances for "
                        "each of the 9 targets; the original comparison used about 6.6e8)")
    p.add_argument("--tolerance", type=float, default=0.005, help="ABC L2 tolerance in y")
    p.add_argument("--n-abc", type=int, default=1300, help="ABC acceptances kept per target")
    p.add_argument("--out", type=Path, help="output folder (default RUN_DIR/comparison)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = args.out or args.run_dir / "comparison"
    out.mkdir(parents=True, exist_ok=True)

    posterior = invkit.load(args.run_dir)
    if posterior.problem.name != "kinematics":
        raise SystemExit(f"{args.run_dir} is a {posterior.problem.name!r} run; this compares "
                         f"on the kinematics problem.")
    kind = getattr(getattr(posterior.config, "model", None), "kind", "inn")
    label = "cINN" if kind == "cinn" else "INN"
    targets = COMPARISON_TARGETS
    posterior.sample(targets, 10, seed=args.seed)  # warm-up, as any second call would be
    times = []
    for _ in range(TIMED_CALLS):  # the median of a few calls: one can hit a busy moment
        t0 = time.perf_counter()
        inn = posterior.sample(targets, N_INN, seed=args.seed)
        times.append(time.perf_counter() - t0)
    inn_time = statistics.median(times)

    abc = get_registry().baseline("abc")
    options = {**abc.options, "method": "rejection", "tolerance": args.tolerance,
               "budget": int(args.budget)}
    gen = torch.Generator().manual_seed(args.seed)
    result = abc.run(posterior.problem, targets, args.n_abc, options, gen)

    resim = [float((posterior.problem.simulate(s) - t).norm(dim=1).mean()) if len(s) else None
             for s, t in zip(result.samples, targets)]
    inn_resim = (posterior.problem.simulate(inn.reshape(-1, 4)).reshape(len(targets), N_INN, 2)
                 - targets[:, None]).norm(dim=2).mean(1).tolist()
    rows = [{"target": t.tolist(), "inn_samples": N_INN, "abc_accepted": c,
             "inn_err_resim": ri, "abc_err_resim": ra}
            for t, c, ri, ra in zip(targets, result.counts, inn_resim, resim)]
    summary = {
        "inn_wall_time_s": inn_time, "inn_samples_total": N_INN * len(targets),
        "abc_wall_time_s": result.wall_time_s, "abc_simulations": result.n_simulations,
        "abc_simulations_per_s": result.n_simulations / result.wall_time_s,
        "abc_tolerance": args.tolerance, "targets": rows,
    }
    reached = [r for r in resim if r is not None]
    abc_mean = sum(reached) / max(1, len(reached))
    (out / "comparison.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "| method | wall time | samples per target | Err_resim (mean over targets) |",
        "|---|---|---|---|",
        f"| {label} ({args.run_dir.name}) | {inn_time:.3f} s (median of {TIMED_CALLS}) | "
        f"{N_INN} (any number) | {sum(inn_resim) / len(inn_resim):.4f} |",
        f"| rejection ABC, tol {args.tolerance}, {result.n_simulations:.2g} sims | "
        f"{result.wall_time_s:.1f} s | {min(result.counts)} to {max(result.counts)} | "
        f"{abc_mean:.4f} |",
        "",
        f"| target y | ABC accepted | {label} Err_resim | ABC Err_resim |",
        "|---|---|---|---|",
    ]
    for r in rows:
        ra = f"{r['abc_err_resim']:.4f}" if r["abc_err_resim"] is not None else "-"
        lines.append(f"| ({r['target'][0]:.2f}, {r['target'][1]:.2f}) | {r['abc_accepted']} | "
                     f"{r['inn_err_resim']:.4f} | {ra} |")
    (out / "comparison.md").write_text("\n".join(lines) + "\n")
    panels = {label: [s[:100] for s in inn], f"ABC (tol {args.tolerance})":
              [s[:100] for s in result.samples]}
    comparison_figure(panels, targets, out / "comparison.png",
                      title=f"Arm configurations: {label} posterior vs rejection ABC")
    print("\n".join(lines))
    print(f"\nwrote {out / 'comparison.png'}, comparison.md, comparison.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
