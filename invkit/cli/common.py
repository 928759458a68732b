"""What the subcommands share: the console, number formatting, ``--set`` and ``--y`` parsing,
and the summary table of a run's metrics."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console

from invkit.config import parse_assignment
from invkit.errors import InvkitError
from invkit.observation_files import NUMBER


def console() -> Console:
    return Console()


SEED_MAX = 2**63 - 1
MAX_THREADS = 1024


def check_seed(seed: int, option: str = "--seed") -> int:
    """A seed torch's generators accept (they take 64 bits; larger numbers overflow)."""
    if not 0 <= seed <= SEED_MAX:
        raise InvkitError(f"{option} must be between 0 and {SEED_MAX} (2**63 - 1), got {seed}.")
    return seed


def threads_arg(text: str) -> int | None:
    """``--threads``: a positive count, or 'auto' (None: chosen by timing)."""
    if text.strip().lower() == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_THREADS:
        import argparse

        raise argparse.ArgumentTypeError(f"expected a number of threads from 1 to "
                                         f"{MAX_THREADS}, or 'auto'; got {text!r}")
    return n


def add_threads(parser: Any, default: str = "auto") -> None:
    parser.add_argument(
        "--threads", type=threads_arg, default=threads_arg(default), metavar="N|auto",
        help="torch's CPU threads; auto times a few training steps with 1 and all cores and "
             "keeps the faster (a busy machine is often faster with 1)")


def apply_threads(n: int | None) -> None:
    """For commands that do not train: a given count is set; auto leaves torch's default."""
    if n is not None:
        import torch

        torch.set_num_threads(n)


def overrides(pairs: list[str] | None) -> list[tuple[str, str]]:
    return [parse_assignment(p) for p in pairs or []]


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    return str(v)


_FIELD = NUMBER  # one definition of a plain number, for --y and for --y-file


def parse_observation(text: str, option: str = "--y") -> list[float]:
    """One observation typed as comma-separated numbers, parsed strictly: every field must be a
    plain number (no empty fields, no spaces inside a number, no digit separators)."""
    body = text.strip()
    if body[:1] in "[(" and body[-1:] in "])":
        body = body[1:-1]
    fields = body.split(",")
    values = []
    for k, field in enumerate(fields, start=1):
        f = field.strip()
        if not _FIELD.fullmatch(f):
            what = "is empty" if not f else f"{f!r} is not a number"
            raise InvkitError(f"{option} {text!r}: field {k} {what}. Give comma-separated "
                              f"numbers, e.g. {option} 1.5,0.3.")
        value = float(f)
        if not math.isfinite(value):
            raise InvkitError(f"{option} {text!r}: field {k} ({f}) is not finite; observations "
                              f"must be finite numbers.")
        values.append(value)
    return values


def print_summary(metrics: dict[str, Any], run_dir: Path) -> None:
    """The headline figures in a short table that fits 80 columns; metrics.json has the rest."""
    from rich import box
    from rich.table import Column, Table

    table = Table(Column("", no_wrap=True, style="bold"), Column("", overflow="fold"),
                  title=f"run {run_dir}", title_justify="left", box=box.SIMPLE,
                  show_header=False, pad_edge=False)
    for label, value in summary_rows(metrics):
        table.add_row(label, value)
    out = console()
    out.print(table)
    out.print(f"every figure: {Path(run_dir) / 'metrics.json'}; plots: {Path(run_dir) / 'plots'}",
              highlight=False, soft_wrap=True)


def summary_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of the end-of-run summary, from metrics.json's keys."""
    rows: list[tuple[str, str]] = []
    options = ", ".join(f"{k}={v}" for k, v in (m.get("problem_options") or {}).items())
    if "problem" in m:
        rows.append(("problem", f"{m['problem']}{f' ({options})' if options else ''}, preset "
                                f"{m.get('preset', '?')}, seed {m.get('seed', '?')}"))
    if "steps" in m:
        threads = f", {m['threads']} thread{'s' * (m['threads'] != 1)}" if "threads" in m else ""
        rows.append(("training", f"{m['steps']} steps in {fmt(m.get('train_time_s', 0.0))} s"
                                 f"{threads}"))
        if "val_best_step" in m:
            # early stopping and keep_best act on their own by default: say what they did
            stop = (f"stopped early at step {m['stopped_early_step']}; "
                    if m.get("stopped_early_step") else "")
            kept = ", its weights kept" if m.get("kept_best_weights") else ""
            rows.append(("validation", f"{stop}best loss {fmt(m['val_loss_best'])} at step "
                                       f"{m['val_best_step']}{kept}"))
    if "err_post" in m:
        rows.append(("err_post", f"{fmt(m['err_post'])} (against the "
                                 f"{m.get('err_post_reference', '?')} reference)"))
    elif "err_post_skipped" in m:
        rows.append(("err_post", f"skipped: {m['err_post_skipped']}"))
    if "err_resim" in m:
        rows.append(("err_resim", fmt(m["err_resim"])))
    if "c2st_mean" in m:
        rows.append(("c2st", f"{fmt(m['c2st_mean'])} (0.5 is perfect)"))
    for key in m.get("problem_metrics", []):
        if isinstance(m.get(key), (int, float)) and not isinstance(m.get(key), bool):
            rows.append((key, fmt(m[key])))
    if "calibration_ok" in m:
        flags = m.get("calibration_flags") or []
        text = "ok" if not flags else f"{len(flags)} flag(s): {flags[0]}"
        if flags and m.get("calibration_note"):
            text += f". Note: {m['calibration_note']}"
        rows.append(("calibration", text))
    if "sampling_rate_per_s" in m:
        rows.append(("sampling", f"{fmt(m['sampling_rate_per_s'])} samples/s"))
    return rows
