"""``invkit evaluate``: recompute a run's metrics and plots."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from invkit.cli.common import add_threads, apply_threads, overrides, print_summary


def add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="recompute a run's metrics (and plots)")
    p.add_argument("run_dir", type=Path, help="a run directory written by 'invkit run'")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="eval settings, e.g. --set eval.n_targets=1000 --set eval.n_samples=4000")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | mps (default cpu)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (the summary is printed either way)")
    add_threads(p)
    p.set_defaults(handler=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from invkit import api
    from invkit.device import resolve_device

    apply_threads(args.threads)
    metrics = api.reevaluate(args.run_dir, device=resolve_device(args.device),
                             overrides=dict(overrides(args.overrides)),
                             progress=not args.quiet)
    print_summary(metrics, args.run_dir)
    return 0
