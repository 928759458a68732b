"""What the subcommands share: the console, number formatting, ``--set`` and ``--y`` parsing,
and the summary table of a run's metrics."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from rich.console import Console

from invkit.config import parse_assignment
from invkit.errors import InvkitError


def console() -> Console:
    return Console()


def overrides(pairs: list[str] | None) -> list[tuple[str, str]]:
    return [parse_assignment(p) for p in pairs or []]


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    return str(v)


_FIELD = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)",
                    re.IGNORECASE)


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
    from rich.table import Table

    table = Table(title=f"run {run_dir}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SUMMARY_KEYS:
        if key in metrics:
            table.add_row(key, fmt(metrics[key]))
    for key in sorted(metrics):
        if key not in SUMMARY_KEYS and isinstance(metrics[key], (int, float)) \
                and not isinstance(metrics[key], bool):
            table.add_row(key, fmt(metrics[key]))
    out = console()
    out.print(table)
    out.print(f"run directory: {run_dir} (config.toml, model.pt, metrics.json, plots/)")


SUMMARY_KEYS = (
    "problem", "problem_options", "preset", "device", "steps", "train_time_s",
    "forward_accuracy", "mode_tv_mean", "mmd_exact_mean", "err_post", "err_post_reference",
    "err_post_skipped", "err_resim", "sampling_rate_per_s", "calibration_max_coverage_deviation",
    "calibration_hpd_max_coverage_deviation", "calibration_rank_pvalue_bonferroni",
    "calibration_bins_outside_band", "calibration_flags", "eval_time_s",
)
