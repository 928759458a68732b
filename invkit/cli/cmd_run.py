"""``invkit run``: train, evaluate, plot and summarise (or ``--resume`` a run)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from invkit.cli.common import add_threads, overrides, print_summary
from invkit.config import PRESETS
from invkit.errors import InvkitError


def add_run(sub: Any) -> None:
    p = sub.add_parser("run", help="train, evaluate and plot a posterior for a problem")
    p.add_argument("problem", nargs="?",
                   help="a registered problem (see 'invkit list'), or a file of simulations "
                        "(.npz, .npy, .csv: the problem 'file' with path=FILE)")
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="quick (seconds), default (minutes on a laptop), paper (the authors')")
    p.add_argument("--out", type=Path, help="run directory (default runs/PROBLEM/TIMESTAMP)")
    p.add_argument("--seed", type=int, help="one seed fixes data, init, permutations and noise")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.lr=3e-4 or --set labels=some")
    p.add_argument("--config", type=Path, help="a TOML file of config keys")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out run directory (one invkit wrote); with "
                        "--resume: continue with the checkpoint's config when config.toml "
                        "was edited")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue an interrupted run from its last checkpoint")
    p.add_argument("--no-eval", action="store_true", help="train and save only")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (the summary is printed either way)")
    add_threads(p)
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from invkit import api

    progress = not args.quiet
    if args.resume is not None:
        if args.overrides or args.config or args.preset or args.seed is not None:
            raise InvkitError("--resume continues a run with its saved config; drop --set, "
                              "--config, --preset and --seed (start a new run to change them).")
        result = api.resume(args.resume, progress=progress, evaluate=not args.no_eval,
                            device=args.device, force=args.force, threads=args.threads)
    else:
        if not args.problem:
            raise InvkitError("invkit run needs a PROBLEM (see 'invkit list'), or --resume "
                              "RUN_DIR.")
        problem, pairs = _problem_or_file(args.problem, overrides(args.overrides))
        result = api.train(problem, args.preset or "default",
                           overrides=pairs, config_file=args.config,
                           seed=args.seed, device=args.device, out=args.out, force=args.force,
                           progress=progress, evaluate=not args.no_eval,
                           threads=args.threads)
    from invkit.distributed import is_main

    if is_main():  # under torchrun, one summary (rank 0's)
        print_summary(result.metrics, result.run_dir)
    return 0


FILE_SUFFIXES = (".npz", ".npy", ".csv")


def _problem_or_file(name: str, pairs: list[tuple[str, str]]
                     ) -> tuple[str, list[tuple[str, str]]]:
    """``invkit run sims.npz`` is ``invkit run file --set path=sims.npz`` (a registered
    problem of the same name wins)."""
    from invkit.registry import get_registry

    if Path(name).suffix.lower() in FILE_SUFFIXES and not get_registry().has("problem", name):
        return "file", [("problem.path", name), *pairs]
    return name, pairs
