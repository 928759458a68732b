"""``invkit baseline``: run a reference solver (e.g. ABC) for observations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from invkit.cli.common import (
    add_threads,
    apply_threads,
    check_seed,
    console,
    fmt,
    overrides,
    parse_observation,
)
from invkit.errors import InvkitError


def add_baseline(sub: Any) -> None:
    p = sub.add_parser("baseline", help="run a baseline (e.g. ABC) for observations")
    p.add_argument("name", help="a registered baseline (see 'invkit list')")
    p.add_argument("problem", help="a registered problem")
    p.add_argument("--y", action="append", required=True, metavar="Y1,Y2,...",
                   help="an observation as comma-separated numbers; repeat for several")
    p.add_argument("-n", type=int, default=1000, help="samples wanted per observation")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="baseline options (e.g. --set tolerance=0.005 --set budget=1e8) or "
                        "problem options (problem.NAME=VALUE)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the baseline's random draws: the same seed gives the same "
                        "samples (default 0)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | mps (default cpu)")
    p.add_argument("--out", type=Path,
                   help="also write the results to a .pt file (torch.load): a dict with y "
                        "(the observations, shape (m, dim_y)), samples (a list of m tensors, "
                        "one per observation, of shape (accepted, dim_x)), n_simulations and "
                        "wall_time_s")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (the table and the JSON summary line are printed "
                        "either way)")
    add_threads(p)
    p.set_defaults(handler=cmd_baseline)


def cmd_baseline(args: argparse.Namespace) -> int:
    import torch

    from invkit import distributed
    from invkit.device import make_generator, resolve_device
    from invkit.posterior import as_observations
    from invkit.registry import get_registry, resolve_options

    check_seed(args.seed)
    if args.n < 1:
        raise InvkitError(f"-n must be a positive number of samples per observation, got "
                          f"{args.n}.")
    if args.out is not None:
        if args.out.exists() and not args.force:
            raise InvkitError(f"{str(args.out)!r} exists; add --force to overwrite it.")
        if args.out.is_dir():
            raise InvkitError(f"--out {str(args.out)!r} is a folder; give a file name ending "
                              f"in .pt.")
        if not args.out.absolute().parent.is_dir():
            raise InvkitError(f"--out {str(args.out)!r}: the folder {str(args.out.parent)!r} "
                              f"does not exist. Create it first, or check the path.")
    apply_threads(args.threads)
    reg = get_registry()
    baseline = reg.baseline(args.name)
    given = overrides(args.overrides)
    problem_opts = {k.split(".", 1)[1]: v for k, v in given if k.startswith("problem.")}
    base_opts = {k: v for k, v in given if not k.startswith("problem.")}
    problem = reg.build_problem(args.problem, problem_opts)
    options = resolve_options(baseline.options, base_opts, f"baseline {args.name!r}")
    dev = resolve_device(args.device)
    # under torchrun: join the process group; ABC splits its budget over the ranks, every
    # rank gets the whole result, and rank 0 alone prints and writes
    shard = distributed.init_from_env(dev)
    if shard is not None:
        dev = shard.device
    y, _ = as_observations([parse_observation(t) for t in args.y], problem.dim_y, dev)
    result = baseline.run(problem, y, args.n, options, make_generator(dev, args.seed),
                          progress=not args.quiet and distributed.is_main())
    if not distributed.is_main():
        return 0
    from rich.table import Table

    table = Table(title=f"baseline {args.name} on {args.problem}: {result.n_simulations:.3g} "
                        f"simulations in {result.wall_time_s:.2f} s "
                        f"({result.n_simulations / max(result.wall_time_s, 1e-9):.3g}/s)")
    for col in ("y", "accepted", "mean x", "std x"):
        table.add_column(col)
    for yi, s in zip(y.tolist(), result.samples):
        table.add_row(fmt(yi), str(s.shape[0]),
                      fmt(s.mean(0).tolist()) if s.shape[0] else "-",
                      fmt(s.std(0).tolist()) if s.shape[0] > 1 else "-")
    console().print(table)
    for w in result.info.get("warnings", []):
        console().print(f"[yellow]warning:[/] {w}", highlight=False)
    if args.out is not None:
        torch.save({"y": y.cpu(), "samples": [s.cpu() for s in result.samples],
                    "n_simulations": result.n_simulations, "wall_time_s": result.wall_time_s},
                   args.out)
        console().print(f"wrote samples to {args.out}")
    print(json.dumps({"n_simulations": result.n_simulations,
                      "wall_time_s": round(result.wall_time_s, 3),
                      "accepted": result.counts}))
    return 0
