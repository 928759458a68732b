"""The subcommands: each adds its parser and a handler taking the parsed arguments."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from invkit.config import PRESETS, parse_assignment
from invkit.errors import InvkitError


def _console():
    from rich.console import Console

    return Console()


def _overrides(pairs: list[str] | None) -> list[tuple[str, str]]:
    return [parse_assignment(p) for p in pairs or []]


# -- list ------------------------------------------------------------------------------------
def add_list(sub: Any) -> None:
    p = sub.add_parser("list", help="every registered problem, prior, forward process, baseline")
    p.set_defaults(handler=cmd_list)


LIST_TITLES = {
    "prior": "priors",
    "forward process": "forward processes",
    "problem": "problems (invkit run NAME)",
    "baseline": "baselines (invkit baseline NAME PROBLEM)",
}


def cmd_list(args: argparse.Namespace) -> int:
    import warnings

    from rich import box
    from rich.table import Column, Table
    from rich.text import Text

    from invkit.errors import InvkitWarning, join_sentences
    from invkit.registry import KINDS, get_registry

    reg = get_registry()
    console = _console()
    for kind in KINDS:
        if not reg.names(kind):
            console.print(f"{LIST_TITLES[kind]}: none", highlight=False)
            continue
        # names are what users type: never cut or wrapped (at 80 columns or piped, too);
        # the descriptions wrap instead, and a long distribution name folds
        table = Table(Column("name", no_wrap=True, style="bold"),
                      Column("plugin (distribution)", overflow="fold"),
                      Column("description", overflow="fold", ratio=1),
                      title=LIST_TITLES[kind], title_justify="left", box=box.SIMPLE_HEAD,
                      pad_edge=False, expand=True)
        for name in reg.names(kind):
            e = reg.entries[kind][name]
            obj = e.obj
            about = Text(obj.description)
            dims = ""
            if hasattr(obj, "dim"):
                dims = f"x: {obj.dim}"
            elif hasattr(obj, "dim_x"):
                dims = f"x: {obj.dim_x} -> y: {obj.dim_y}"
            if kind in ("problem", "baseline") and obj.options:
                dims = "options: " + ", ".join(f"{k}={v!r}" for k, v in obj.options.items())
            if dims:
                about.append(("\n" if obj.description else "") + dims, style="dim")
            version = f" {e.origin.version}" if e.origin.version else ""
            table.add_row(Text(name), Text(f"{e.origin.plugin}\n{e.origin.distribution}{version}"),
                          about)
        console.print(table)
    # on stderr, as 'warning: ...' (main prints InvkitWarnings so): the tables stay clean
    for f in reg.failed:
        warnings.warn(InvkitWarning(join_sentences(
            f.describe(), "It was skipped; the plugins listed above work")), stacklevel=1)
    for w in reg.warnings:
        warnings.warn(InvkitWarning(w.message), stacklevel=1)
    return 0


# -- run -------------------------------------------------------------------------------------
def add_run(sub: Any) -> None:
    p = sub.add_parser("run", help="train, evaluate and plot a posterior for a problem")
    p.add_argument("problem", nargs="?", help="a registered problem (see 'invkit list')")
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="quick (seconds), default (minutes on a laptop), paper (the authors')")
    p.add_argument("--out", type=Path, help="run directory (default runs/PROBLEM/TIMESTAMP)")
    p.add_argument("--seed", type=int, help="one seed fixes data, init, permutations and noise")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.lr=3e-4 or --set labels=some")
    p.add_argument("--config", type=Path, help="a TOML file of config keys")
    p.add_argument("--force", action="store_true", help="replace an existing --out directory")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue an interrupted run from its last checkpoint")
    p.add_argument("--no-eval", action="store_true", help="train and save only")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (the summary is printed either way)")
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from invkit import api

    progress = not args.quiet
    if args.resume is not None:
        if args.overrides or args.config or args.preset or args.seed is not None:
            raise InvkitError("--resume continues a run with its saved config; drop --set, "
                              "--config, --preset and --seed (start a new run to change them).")
        result = api.resume(args.resume, progress=progress, evaluate=not args.no_eval,
                            device=args.device)
    else:
        if not args.problem:
            raise InvkitError("invkit run needs a PROBLEM (see 'invkit list'), or --resume "
                              "RUN_DIR.")
        result = api.train(args.problem, args.preset or "default",
                           overrides=_overrides(args.overrides), config_file=args.config,
                           seed=args.seed, device=args.device, out=args.out, force=args.force,
                           progress=progress, evaluate=not args.no_eval)
    from invkit.distributed import is_main

    if is_main():  # under torchrun, one summary (rank 0's)
        print_summary(result.metrics, result.run_dir)
    return 0


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


SUMMARY_KEYS = (
    "problem", "problem_options", "preset", "device", "steps", "train_time_s",
    "forward_accuracy", "mode_tv_mean", "mmd_exact_mean", "err_post", "err_post_reference",
    "err_resim", "sampling_rate_per_s", "calibration_max_coverage_deviation",
    "calibration_hpd_max_coverage_deviation", "calibration_rank_pvalue_bonferroni",
    "calibration_bins_outside_band", "calibration_flags", "eval_time_s",
)


def print_summary(metrics: dict[str, Any], run_dir: Path) -> None:
    from rich.table import Table

    table = Table(title=f"run {run_dir}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SUMMARY_KEYS:
        if key in metrics:
            table.add_row(key, _fmt(metrics[key]))
    for key in sorted(metrics):
        if key not in SUMMARY_KEYS and isinstance(metrics[key], (int, float)) \
                and not isinstance(metrics[key], bool):
            table.add_row(key, _fmt(metrics[key]))
    console = _console()
    console.print(table)
    console.print(f"run directory: {run_dir} (config.toml, model.pt, metrics.json, plots/)")


# -- sample ----------------------------------------------------------------------------------
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
    p.set_defaults(handler=cmd_sample)


def parse_observation(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").strip("[]()").split(",") if v]
    except ValueError:
        raise InvkitError(f"--y {text!r} is not a comma-separated list of numbers "
                          f"(e.g. --y 1.5,0.3).") from None


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from invkit.device import resolve_device
    from invkit.rundir import load_posterior

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
        _console().print(f"wrote {tuple(x.shape)} samples (observation, sample, dim) to "
                         f"{args.out}")
        return 0
    from rich.table import Table

    table = Table(title=f"posterior samples ({args.n} per observation)")
    table.add_column("y")
    table.add_column("mean x")
    table.add_column("std x")
    for y, xs in zip(ys, x):
        table.add_row(_fmt(y), _fmt(xs.mean(0).tolist()), _fmt(xs.std(0).tolist()))
    _console().print(table)
    return 0


# -- evaluate --------------------------------------------------------------------------------
def add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="recompute a run's metrics (and plots)")
    p.add_argument("run_dir", type=Path, help="a run directory written by 'invkit run'")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="eval settings, e.g. --set eval.n_targets=1000 --set eval.n_samples=4000")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | mps (default cpu)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (the summary is printed either way)")
    p.set_defaults(handler=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from invkit import api
    from invkit.device import resolve_device

    metrics = api.reevaluate(args.run_dir, device=resolve_device(args.device),
                             overrides=dict(_overrides(args.overrides)),
                             progress=not args.quiet)
    print_summary(metrics, args.run_dir)
    return 0


# -- baseline --------------------------------------------------------------------------------
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
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (the table and the JSON summary line are printed "
                        "either way)")
    p.set_defaults(handler=cmd_baseline)


def cmd_baseline(args: argparse.Namespace) -> int:
    import torch

    from invkit import distributed
    from invkit.device import make_generator, resolve_device
    from invkit.posterior import as_observations
    from invkit.registry import get_registry, resolve_options

    reg = get_registry()
    baseline = reg.baseline(args.name)
    given = _overrides(args.overrides)
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
    options["progress"] = not args.quiet and distributed.is_main()
    y, _ = as_observations([parse_observation(t) for t in args.y], problem.dim_y, dev)
    result = baseline.run(problem, y, args.n, options, make_generator(dev, args.seed))
    if not distributed.is_main():
        return 0
    from rich.table import Table

    table = Table(title=f"baseline {args.name} on {args.problem}: {result.n_simulations:.3g} "
                        f"simulations in {result.wall_time_s:.2f} s "
                        f"({result.n_simulations / max(result.wall_time_s, 1e-9):.3g}/s)")
    for col in ("y", "accepted", "mean x", "std x"):
        table.add_column(col)
    for yi, s in zip(y.tolist(), result.samples):
        table.add_row(_fmt(yi), str(s.shape[0]),
                      _fmt(s.mean(0).tolist()) if s.shape[0] else "-",
                      _fmt(s.std(0).tolist()) if s.shape[0] > 1 else "-")
    _console().print(table)
    for w in result.info.get("warnings", []):
        _console().print(f"[yellow]warning:[/] {w}", highlight=False)
    if args.out is not None:
        torch.save({"y": y.cpu(), "samples": [s.cpu() for s in result.samples],
                    "n_simulations": result.n_simulations, "wall_time_s": result.wall_time_s},
                   args.out)
        _console().print(f"wrote samples to {args.out}")
    print(json.dumps({"n_simulations": result.n_simulations,
                      "wall_time_s": round(result.wall_time_s, 3),
                      "accepted": result.counts}))
    return 0
