"""``invkit sample``: posterior samples for observations from a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from invkit.cli.common import (
    add_threads,
    apply_threads,
    check_seed,
    console,
    fmt,
    parse_observation,
)
from invkit.errors import InvkitError


def add_sample(sub: Any) -> None:
    p = sub.add_parser("sample", help="posterior samples for observations")
    p.add_argument("run_dir", type=Path, help="a run directory written by 'invkit run'")
    p.add_argument("--y", action="append", required=True, metavar="Y1,Y2,...",
                   help="an observation as comma-separated numbers; repeat for several")
    p.add_argument("-n", type=int, default=1000, help="samples per observation")
    p.add_argument("--out", type=Path, help=".npy, .pt or .csv file (default: print summary)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the sampling noise: the same seed gives the same samples "
                        "(default 0)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | mps (default cpu)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    add_threads(p, default="auto")
    p.set_defaults(handler=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from invkit.device import resolve_device
    from invkit.loading import load_posterior

    check_seed(args.seed)
    if args.n < 1:
        raise InvkitError(f"-n must be a positive number of samples, got {args.n}.")
    if args.out is not None and args.out.exists() and not args.force:
        raise InvkitError(f"{str(args.out)!r} exists; add --force to overwrite it.")
    apply_threads(args.threads)
    post = load_posterior(args.run_dir, resolve_device(args.device))
    ys = [parse_observation(t) for t in args.y]
    if len({len(y) for y in ys}) != 1:
        raise InvkitError("All --y observations must have the same number of values "
                          f"(this problem's dim_y is {post.dim_y}).")
    if args.n < 1:
        raise InvkitError(f"-n must be a positive number of samples, got {args.n}.")
    x = post.sample(ys, args.n, seed=args.seed).cpu()  # (m, n, dim_x)
    if args.out is not None:
        if args.out.exists() and not args.force:
            raise InvkitError(f"{str(args.out)!r} exists; add --force to overwrite it.")
        suffix = args.out.suffix
        if suffix == ".npy":
            np.save(args.out, x.numpy())
        elif suffix == ".pt":
            torch.save(x, args.out)
        elif suffix == ".csv":
            rows = [[i, *row] for i in range(x.shape[0]) for row in x[i].tolist()]
            header = "observation," + ",".join(f"x{j + 1}" for j in range(x.shape[2]))
            np.savetxt(args.out, np.asarray(rows), delimiter=",", header=header, comments="")
        else:
            raise InvkitError(f"--out must end in .npy, .pt or .csv, got {str(args.out)!r}.")
        console().print(f"wrote {tuple(x.shape)} samples (observation, sample, dim) to "
                         f"{args.out}")
        return 0
    from rich.table import Table

    table = Table(title=f"posterior samples ({args.n} per observation)")
    table.add_column("y")
    table.add_column("mean x")
    table.add_column("std x")
    for y, xs in zip(ys, x):
        table.add_row(fmt(y), fmt(xs.mean(0).tolist()), fmt(xs.std(0).tolist()))
    console().print(table)
    return 0
