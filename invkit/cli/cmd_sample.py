"""``invkit sample``: posterior samples for observations from a trained run, with a summary
table per observation and parameter, and optionally the samples, the summary and a pair plot
per observation written to files."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from invkit.cli.common import (
    add_threads,
    apply_threads,
    check_seed,
    console,
    parse_observation,
)
from invkit.errors import InvkitError

SAMPLE_FORMATS = (".npy", ".pt", ".csv")
PRINTED_OBSERVATIONS = 20
"""The table printed shows this many observations; --summary FILE has all of them."""
PLOT_NAME = re.compile(r"observation_\d+\.png")


def _path(text: str) -> Path:
    """A file or folder name; an empty one (an unset shell variable) is refused, not taken
    as the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text)


def add_sample(sub: Any) -> None:
    p = sub.add_parser(
        "sample", help="posterior samples for observations",
        description="Draw -n posterior samples for each observation (--y, --y-file or both: "
                    "the --y ones first, then the file's rows, numbered from 0 in that order) "
                    "and print their mean, std and 5/50/95% quantiles per parameter.")
    p.add_argument("run_dir", type=Path, help="a run directory written by 'invkit run'")
    p.add_argument("--y", action="append", metavar="Y1,Y2,...",
                   help="an observation as comma-separated numbers; repeat for several")
    p.add_argument("--y-file", type=_path, metavar="FILE",
                   help="observations, one per row: .csv (with a header row naming the "
                        "problem's observations in any order, or without a header and the "
                        "columns in the problem's order), .npy (shape (m, dim_y)) or .npz "
                        "(one such array)")
    p.add_argument("-n", type=int, default=1000, help="samples per observation (default 1000)")
    p.add_argument("--out", type=_path,
                   help="write all samples to a .npy, .pt or .csv file (shape (observations, "
                        "samples, dim_x); the CSV has one row per sample)")
    p.add_argument("--summary", type=_path, metavar="FILE",
                   help="write the summary of every observation to a .csv (long format: one "
                        "row per observation and parameter) or .json file (one entry per "
                        "observation, with its y)")
    p.add_argument("--plot", type=_path, metavar="DIR",
                   help="write a pair (corner) plot per observation to DIR/observation_000.png, "
                        "... (made if missing)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the sampling noise: the same seed gives the same samples "
                        "(default 0)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | mps (default cpu)")
    p.add_argument("--force", action="store_true",
                   help="overwrite --out, --summary and the plots of --plot")
    add_threads(p, default="auto")
    p.set_defaults(handler=cmd_sample)


def plot_paths(plot_dir: Path, m: int) -> list[Path]:
    """DIR/observation_000.png, ...: zero-padded so that they sort in order."""
    digits = max(3, len(str(m - 1)))
    return [plot_dir / f"observation_{i:0{digits}d}.png" for i in range(m)]


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output's format and overwrite checked before anything is loaded or sampled."""
    if args.out is not None and args.out.suffix not in SAMPLE_FORMATS:
        raise InvkitError(f"--out must end in .npy, .pt or .csv, got {str(args.out)!r}.")
    if args.summary is not None and args.summary.suffix.lower() not in (".csv", ".json"):
        raise InvkitError(f"--summary must end in .csv or .json, got {str(args.summary)!r}.")
    for option, path in (("--out", args.out), ("--summary", args.summary)):
        if path is not None and path.is_dir():
            raise InvkitError(f"{option} {str(path)!r} is a folder; name a file.")
        if path is not None and path.exists() and not args.force:
            raise InvkitError(f"{str(path)!r} exists; add --force to overwrite it.")
        if path is not None and not path.absolute().parent.is_dir():
            raise InvkitError(f"{option} {str(path)!r}: the folder {str(path.parent)!r} does "
                              f"not exist. Check the path: a folder in it does not exist.")
    if args.out is not None and args.summary is not None \
            and args.out.resolve() == args.summary.resolve():
        raise InvkitError("--out and --summary name the same file; give each its own.")
    if args.plot is not None and args.plot.exists() and not args.plot.is_dir():
        raise InvkitError(f"--plot {str(args.plot)!r} is a file; name a folder for the plots.")


def _observations(args: argparse.Namespace, post: Any) -> Any:
    """The --y observations, then the --y-file rows, as one (m, dim_y) float64 array."""
    import numpy as np

    from invkit.observation_files import read_observations

    if not args.y and args.y_file is None:
        raise InvkitError(f"Give the observations: --y Y1,Y2,... (repeat for several) or "
                          f"--y-file FILE (.csv, .npy or .npz, one per row); this problem's "
                          f"observations have dim_y={post.dim_y} "
                          f"({', '.join(post.problem.y_names)}).")
    rows: list[list[float]] = [parse_observation(t) for t in args.y or []]
    if len({len(y) for y in rows}) > 1:
        raise InvkitError("All --y observations must have the same number of values "
                          f"(this problem's dim_y is {post.dim_y}).")
    if rows and len(rows[0]) != post.dim_y:
        raise InvkitError(f"--y has {len(rows[0])} value(s); this problem's observations have "
                          f"dim_y={post.dim_y} ({', '.join(post.problem.y_names)}).")
    ys = np.asarray(rows, dtype=np.float64).reshape(len(rows), post.dim_y)
    if args.y_file is not None:
        ys = np.concatenate([ys, read_observations(args.y_file, post.problem.y_names).y])
    return ys


def cmd_sample(args: argparse.Namespace) -> int:
    from invkit.device import resolve_device
    from invkit.loading import load_posterior
    from invkit.summary import summarise

    check_seed(args.seed)
    if args.n < 1:
        raise InvkitError(f"-n must be a positive number of samples, got {args.n}.")
    _check_outputs(args)
    apply_threads(args.threads)
    post = load_posterior(args.run_dir, resolve_device(args.device))
    ys = _observations(args, post)
    plots = plot_paths(args.plot, len(ys)) if args.plot is not None else []
    existing = [p for p in plots if p.exists()]
    if existing and not args.force:
        raise InvkitError(f"--plot {str(args.plot)!r} already holds {len(existing)} of the "
                          f"plots to write ({existing[0].name}, ...); add --force to overwrite "
                          f"them, or choose another folder.")
    x = post.sample(ys, args.n, seed=args.seed).cpu()  # (m, n, dim_x)
    names = post.problem.x_names
    summary = summarise(x, ys, names, post.problem.y_names)
    print(f"posterior summary ({args.n} samples per observation)")
    print(summary.table(width=80, max_observations=PRINTED_OBSERVATIONS))
    if len(summary) > PRINTED_OBSERVATIONS and args.summary is None:
        print("(write every observation's summary with --summary FILE.csv or FILE.json)")
    out = console()
    if args.out is not None:
        _write_samples(args.out, x, names)
        out.print(f"wrote {tuple(x.shape)} samples (observation, sample, dim) to {args.out}",
                  highlight=False, soft_wrap=True, markup=False)
    if args.summary is not None:
        summary.write(args.summary)
        out.print(f"wrote the summary of {len(summary)} observation(s) to {args.summary}",
                  highlight=False, soft_wrap=True, markup=False)
    if args.plot is not None:
        _write_plots(args.plot, plots, x, summary)
        out.print(f"wrote {len(plots)} pair plot(s) to {args.plot}/ ({plots[0].name}"
                  f"{f' ... {plots[-1].name}' if len(plots) > 1 else ''})",
                  highlight=False, soft_wrap=True, markup=False)
    return 0


def _write_samples(path: Path, x: Any, names: list[str]) -> None:
    import csv

    import numpy as np
    import torch

    if path.suffix == ".npy":
        np.save(path, x.numpy())
    elif path.suffix == ".pt":
        torch.save(x, path)
    else:  # .csv: one row per sample, the observation's index first
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["observation", *names])
            for i in range(x.shape[0]):
                writer.writerows([i, *map(repr, row)] for row in x[i].tolist())


def _write_plots(plot_dir: Path, paths: list[Path], x: Any, summary: Any) -> None:
    """One corner plot per observation, its values in the title; a progress bar when many."""
    from invkit.evaluation.pairplot import pairplot
    from invkit.progress import ProgressBar

    plot_dir.mkdir(parents=True, exist_ok=True)
    stale = sorted(p.name for p in plot_dir.iterdir()
                   if PLOT_NAME.fullmatch(p.name) and p not in set(paths))
    with ProgressBar("pair plots", total=len(paths), enabled=len(paths) > 5) as bar:
        for i, path in enumerate(paths):
            values = ", ".join(f"{n}={v:.4g}" for n, v in zip(summary.y_names, summary.y[i]))
            pairplot(x[i], summary.x_names, path, title=f"observation {i}: {values}")
            bar.update(completed=i + 1)
    if stale:
        import warnings

        from invkit.errors import InvkitWarning

        warnings.warn(InvkitWarning(
            f"{plot_dir} also holds {len(stale)} plot(s) from an earlier call ({stale[0]}, "
            f"...), for observations this call does not have; they were left as they are."),
            stacklevel=2)
