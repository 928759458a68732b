"""Posterior summaries: mean, standard deviation and quantiles per observation and parameter.

What a scientist reports from posterior samples, in one structure that prints as a table of
80 columns, turns into rows for a CSV (long format: one row per observation and parameter) or
a data frame (``pandas.DataFrame(summary.to_rows())``), and into JSON (one entry per
observation, with its y). ``invkit sample --summary`` and ``Posterior.summary`` both make it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from invkit.errors import InvkitError

QUANTILES = (0.05, 0.5, 0.95)
"""The default quantile levels: the median and a central 90% interval."""
SUMMARY_FORMATS = (".csv", ".json")


def quantile_key(level: float) -> str:
    """The column of a quantile level: 0.05 -> 'q5', 0.5 -> 'q50', 0.025 -> 'q2.5'."""
    return f"q{round(100 * level, 10):g}"


def check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    """Quantile levels as floats in [0, 1], at least one, none twice."""
    try:
        levels = tuple(float(q) for q in quantiles)
    except (TypeError, ValueError):
        raise InvkitError(f"quantiles must be numbers in [0, 1], got {quantiles!r}.") from None
    if not levels or not all(math.isfinite(q) and 0 <= q <= 1 for q in levels):
        raise InvkitError(f"quantiles must be one or more numbers in [0, 1], got {quantiles!r}.")
    keys = [quantile_key(q) for q in levels]
    if len(set(keys)) != len(keys):
        raise InvkitError(f"quantiles {quantiles!r} name a level twice.")
    return levels


@dataclass(frozen=True)
class PosteriorSummary:
    """Statistics of posterior samples for ``m`` observations and ``dim_x`` parameters.

    Arrays (float64): ``y`` ``(m, dim_y)``, ``mean`` and ``std`` ``(m, dim_x)`` (``std`` with
    ``ddof=1``, the sample standard deviation), ``quantile_values`` ``(m, len(quantiles),
    dim_x)`` (numpy's default, linear interpolation). ``summary[i]`` is observation ``i`` as a
    dict, the entry ``to_json()`` writes for it.
    """

    x_names: list[str]
    y_names: list[str]
    y: np.ndarray
    n_samples: int
    mean: np.ndarray
    std: np.ndarray
    quantiles: tuple[float, ...]
    quantile_values: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"observation {i} of {len(self)}")
        i %= len(self)
        return {"observation": i,
                "y": {n: float(v) for n, v in zip(self.y_names, self.y[i])},
                "n_samples": self.n_samples,
                "parameters": {name: self._stats(i, k) for k, name in enumerate(self.x_names)}}

    @property
    def statistics(self) -> list[str]:
        """The statistics' names, in column order: mean, std, then one per quantile."""
        return ["mean", "std", *(quantile_key(q) for q in self.quantiles)]

    def _stats(self, i: int, k: int) -> dict[str, float]:
        values = [self.mean[i, k], self.std[i, k], *self.quantile_values[i, :, k]]
        return {s: float(v) for s, v in zip(self.statistics, values)}

    def to_rows(self) -> list[dict[str, Any]]:
        """Long format: one dict per observation and parameter, with the observation's index,
        the parameter's name, the statistics and then the observation's values by name (a
        name that clashes with a column of its own is written ``y:NAME``)."""
        fixed = {"observation", "parameter", *self.statistics}
        y_cols = [f"y:{n}" if n in fixed else n for n in self.y_names]
        rows = []
        for i in range(len(self)):
            y = dict(zip(y_cols, (float(v) for v in self.y[i])))
            for k, name in enumerate(self.x_names):
                rows.append({"observation": i, "parameter": name, **self._stats(i, k), **y})
        return rows

    def to_json(self) -> list[dict[str, Any]]:
        """A list with one entry per observation: its index, its y by name, the number of
        samples and a dict of statistics per parameter (plain Python types, for json.dump)."""
        return [_json_safe(self[i]) for i in range(len(self))]

    def to_csv(self) -> str:
        """The rows of ``to_rows()`` as CSV text with a header row."""
        rows = self.to_rows()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in r.items()}
                         for r in rows)
        return buf.getvalue()

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write ``.csv`` (long format) or ``.json`` atomically: a temporary file in the same
        folder, then a rename, so a reader never sees half a file."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix not in SUMMARY_FORMATS:
            raise InvkitError(f"A summary is written as {' or '.join(SUMMARY_FORMATS)}, got "
                              f"{str(p)!r}.")
        text = self.to_csv() if suffix == ".csv" else \
            json.dumps(self.to_json(), indent=1, allow_nan=False) + "\n"
        write_text_atomic(p, text)
        return p

    def table(self, width: int = 80, max_observations: int | None = None) -> str:
        """A plain-text table, one block per observation headed by its values, each line at
        most ``width`` characters (names and long observations are cut with '...')."""
        labels = ["mean", "std", *(f"{100 * q:.3g}%" for q in self.quantiles)]
        num = 10
        longest = max(len("parameter") - 2, *(len(n) for n in self.x_names))
        name_w = 2 + max(4, min(longest, width - 2 - len(labels) * (num + 1)))
        lines = [_cut(f"{'parameter':<{name_w}}" + "".join(f" {lab:>{num}}" for lab in labels),
                      width)]
        shown = len(self) if max_observations is None else min(len(self), max_observations)
        for i in range(shown):
            values = ", ".join(f"{n}={v:.4g}" for n, v in zip(self.y_names, self.y[i]))
            lines.append(_cut(f"observation {i}: {values}", width))
            for k, name in enumerate(self.x_names):
                stats = self._stats(i, k).values()
                lines.append(_cut(f"  {_cut(name, name_w - 2):<{name_w - 2}}"
                                  + "".join(f" {v:>{num}.4g}" for v in stats), width))
        if shown < len(self):
            lines.append(f"... and {len(self) - shown} more observation(s)")
        return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """NaN (the std of one sample) as null: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(0, width - 3)] + "..."


def summarise(samples: Any, y: Any, x_names: Sequence[str], y_names: Sequence[str],
              quantiles: Sequence[float] = QUANTILES) -> PosteriorSummary:
    """The summary of samples ``(m, n, dim_x)`` (or ``(n, dim_x)`` for one observation) drawn
    for observations ``y`` ``(m, dim_y)``; numpy or torch in. Statistics are computed in
    float64, one observation at a time (no copy of all samples in float64)."""
    levels = check_quantiles(quantiles)
    s = _numpy(samples)
    yy = np.atleast_2d(_numpy(y).astype(np.float64))
    if s.ndim == 2:
        s = s[None]
    if s.ndim != 3 or s.shape[0] != yy.shape[0] or s.shape[2] != len(x_names) \
            or yy.shape[1] != len(y_names) or s.shape[1] < 1:
        raise InvkitError(f"summarise: samples {tuple(s.shape)} and y {tuple(yy.shape)} do not "
                          f"fit {len(x_names)} parameter and {len(y_names)} observation names.")
    m, n, d = s.shape
    mean, std = np.empty((m, d)), np.empty((m, d))
    qv = np.empty((m, len(levels), d))
    for i in range(m):
        xi = s[i].astype(np.float64)
        mean[i] = xi.mean(axis=0)
        std[i] = xi.std(axis=0, ddof=1) if n > 1 else np.nan
        qv[i] = np.quantile(xi, levels, axis=0)
    return PosteriorSummary(list(x_names), list(y_names), yy, n, mean, std, levels, qv)


def _numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
