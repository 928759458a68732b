"""Shared helpers of the benchmark scripts: machine header, interleaved timing, tables.

Timings on a shared machine are noisy, so every script measures its baseline in the same run,
interleaved with the measured code (A B B A A B ... repeats), and reports medians and the
median of the per-pair ratios: contention that slows one repeat slows both sides of its pair.
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(title: str, device: str = "cpu") -> None:
    """The command line and the machine, printed before any figure."""
    print(f"# {title}")
    print(f"command: python {shlex.join(sys.argv)}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores ({cpu_model()}), load average {load:.2f}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; device {device}")
    if device.startswith("cuda") and torch.cuda.is_available():
        print(f"gpu: {torch.cuda.get_device_name()}")
    print()


def set_threads(n: int) -> None:
    if n > 0:
        torch.set_num_threads(n)


def sync(device: str | torch.device) -> None:
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def interleaved(cases: dict[str, Callable[[], object]], repeats: int,
                device: str | torch.device = "cpu", warmup: int = 1) -> dict[str, list[float]]:
    """Wall time of each case, ``repeats`` times, in alternating order (A B, B A, A B, ...)."""
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    sync(device)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            sync(device)
            t0 = time.perf_counter()
            cases[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def paired_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """Median over repeats of num[i] / den[i] (both measured back to back)."""
    return statistics.median(a / b for a, b in zip(num, den))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table (numbers already formatted by the caller)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    return "\n".join([line, sep, *body])


def fmt_rate(x: float) -> str:
    return f"{x:.3g}"


def write_report(out: os.PathLike[str] | str, text: str, rows: list) -> None:
    """The markdown ``text`` to ``out`` and the ``rows`` as JSON beside it; both printed."""
    import json
    from pathlib import Path

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    print(text)
    print(f"written: {out} and {out.with_suffix('.json')}")
