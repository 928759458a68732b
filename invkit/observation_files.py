"""Files of observations (``.csv``, ``.npy``, ``.npz``): many y at once for ``invkit sample``.

A scientist has observations in a file (one per row), not one typed on the command line. This
reader turns such a file into a float64 array ``(m, dim_y)`` in the problem's order of
observation names, and refuses anything it would have to guess, with the row and column that
is wrong:

* ``.csv``: one observation per row, comma-separated. The first row is a **header** when it
  names the problem's observations (``problem.y_names``, in any order: the columns are put in
  the problem's order by name), or when any of its cells is not a number (then every name must
  be one of the problem's). A first row of numbers only is data, and the columns are then taken
  in the problem's order. A header may start with ``#`` (``numpy.savetxt`` writes it so).
  Cells are parsed as strictly as ``--y``: no empty cells, no digit separators.
* ``.npy``: one array, ``(m, dim_y)``; a 1-D array is one observation (or, when ``dim_y`` is 1,
  one observation per value).
* ``.npz``: exactly one array, read like a ``.npy``.

Every value must be finite and within float32's range (the network computes in float32).
"""

from __future__ import annotations

import csv
import difflib
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from invkit.errors import InvkitError
from invkit.paths import existing_file

FORMATS = (".csv", ".npy", ".npz")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)",
                    re.IGNORECASE)
"""One number as a user may type it: no spaces inside, no digit separators (``1_000``)."""
FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMERIC = re.compile(r"[\d\s.eE+\-;_]*|[+-]?(inf|infinity|nan)", re.IGNORECASE)
"""A cell that is a number or nothing but digits and separators: a first row of such cells is
data, never a header (its mistakes are then reported cell by cell)."""


@dataclass(frozen=True)
class ObservationFile:
    """Observations read from a file: ``y`` float64 ``(m, dim_y)`` in the problem's order,
    the file's line of each row (CSV only) and whether the file had a header."""

    path: Path
    y: np.ndarray
    lines: tuple[int, ...] | None = None
    header: bool = False

    def __len__(self) -> int:
        return int(self.y.shape[0])


def read_observations(path: str | os.PathLike[str], names: Sequence[str]) -> ObservationFile:
    """The observations in ``path``, one per row, for a problem whose observations are named
    ``names`` (``problem.y_names``; their count is ``dim_y``)."""
    names = [str(n) for n in names]
    p = _existing(path)
    kind = p.suffix.lower()
    if kind == ".csv":
        return _read_csv(p, names)
    array = _read_npz(p) if kind == ".npz" else _read_npy(p)
    values = _as_rows(p, array, names)
    _check_values(p, values, None)
    return ObservationFile(p, values)


def _existing(path: str | os.PathLike[str]) -> Path:
    return existing_file(path, "observations", FORMATS, label="--y-file")


def _expected(names: Sequence[str]) -> str:
    """'dim_y=2 (y1, y2)': what a row must hold, with the names (cut short when many)."""
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    return f"dim_y={len(names)} ({shown})"


# -- .npy / .npz -----------------------------------------------------------------------------
def _read_npy(p: Path) -> np.ndarray:
    try:
        return np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        detail = "the file is empty" if p.stat().st_size == 0 else str(exc).splitlines()[0]
        raise InvkitError(f"{str(p)!r} is not a readable .npy file ({detail}); write one with "
                          f"numpy.save('obs.npy', y), y of shape (m, dim_y).") from None


def _read_npz(p: Path) -> np.ndarray:
    try:
        with np.load(p, allow_pickle=False) as data:
            keys = list(data.files)
            if len(keys) != 1:
                held = ", ".join(f"{k} {data[k].shape}" for k in keys) or "no arrays"
                raise InvkitError(f"{str(p)!r} holds {len(keys)} arrays ({held}); a .npz of "
                                  f"observations holds exactly one, e.g. "
                                  f"numpy.savez('obs.npz', y=y).")
            return data[keys[0]]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        detail = "the file is empty" if p.stat().st_size == 0 else str(exc).splitlines()[0]
        raise InvkitError(f"{str(p)!r} is not a readable .npz file ({detail}); write one with "
                          f"numpy.savez('obs.npz', y=y).") from None


def _as_rows(p: Path, a: np.ndarray, names: Sequence[str]) -> np.ndarray:
    dim_y = len(names)
    if a.dtype.kind not in "biuf":
        raise InvkitError(f"{str(p)!r} holds {a.dtype} values; observations must be numbers.")
    if a.ndim == 1:
        a = a.reshape(-1, 1) if dim_y == 1 else a.reshape(1, -1)
    if a.ndim != 2:
        raise InvkitError(f"{str(p)!r} holds an array of shape {a.shape}; observations are "
                          f"one per row, shape (m, dim_y) with {_expected(names)}.")
    if a.shape[0] == 0:
        raise InvkitError(f"{str(p)!r} holds no observations (shape {a.shape}).")
    if a.shape[1] != dim_y:
        raise InvkitError(f"{str(p)!r} holds an array of shape {a.shape}: {a.shape[1]} "
                          f"value(s) per observation, but this problem's observations have "
                          f"{_expected(names)}. Give one row per observation.")
    return a.astype(np.float64)


def _check_values(p: Path, y: np.ndarray, lines: Sequence[int] | None) -> None:
    """Finite and within float32: the first offending row named (with its line in a CSV)."""
    for bad, what in ((~np.isfinite(y), "NaN or infinite values; observations must be "
                                        "finite"),
                      (np.abs(np.nan_to_num(y)) > FLOAT32_MAX,
                       "values beyond float32's range (about 3.4e38), which the network "
                       "computes in")):
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            first = int(rows[0])
            where = f"line {lines[first]}" if lines else f"row {first} (counting from 0)"
            more = f" and {rows.size - 1} more row(s)" if rows.size > 1 else ""
            raise InvkitError(f"{str(p)!r}, {where}{more}: {what}. Fix or remove that row.")


# -- .csv ------------------------------------------------------------------------------------
def _rows(p: Path) -> list[tuple[int, list[str]]]:
    """(line, cells) of every non-blank row."""
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            out = []
            for row in reader:
                if row and any(c.strip() for c in row):
                    out.append((reader.line_num, row))
            return out
    except UnicodeDecodeError as exc:
        raise InvkitError(f"{str(p)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8 "
                          f"CSV.") from None
    except csv.Error as exc:
        raise InvkitError(f"{str(p)!r} is not a readable CSV file ({exc}).") from None


def _header(p: Path, cells: list[str], names: list[str]) -> list[int] | None:
    """For a header row, the file column of each of the problem's names; None for data."""
    given = [c.strip() for c in cells]
    if given and given[0].startswith("#"):
        given[0] = given[0][1:].strip()
    if sorted(given) != sorted(names) and all(_NUMERIC.fullmatch(c) for c in given):
        return None  # numbers (perhaps badly separated): data, checked cell by cell
    unknown = [g for g in given if g not in names]
    if unknown:
        shown = ", ".join(repr(u) + _close(u, names) for u in unknown[:5])
        raise InvkitError(f"{str(p)!r}, line 1: the header names {shown}, which this "
                          f"problem's observations are not. They are {_expected(names)}; name "
                          f"each column by one of them, in any order (or leave the header out "
                          f"and give the columns in that order).")
    twice = sorted({g for g in given if given.count(g) > 1})
    if twice:
        raise InvkitError(f"{str(p)!r}, line 1: the header names {', '.join(twice)} more than "
                          f"once; each observation name belongs to one column.")
    missing = [n for n in names if n not in given]
    if missing:
        raise InvkitError(f"{str(p)!r}, line 1: the header has no column "
                          f"{', '.join(repr(m) for m in missing[:5])}"
                          f"{' ...' if len(missing) > 5 else ''}; this problem's observations "
                          f"have {_expected(names)}, and each needs a column.")
    return [given.index(n) for n in names]


def _close(name: str, names: Sequence[str]) -> str:
    near = difflib.get_close_matches(name, list(names), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(m) for m in near)}?)" if near else ""


def _read_csv(p: Path, names: list[str]) -> ObservationFile:
    rows = _rows(p)
    if not rows:
        raise InvkitError(f"{str(p)!r} is empty; give one observation per row "
                          f"({_expected(names)}), with or without a header row naming them.")
    order = _header(p, rows[0][1], names)
    header = order is not None
    data = rows[1:] if header else rows
    if not data:
        raise InvkitError(f"{str(p)!r} has a header but no observations; add one row per "
                          f"observation below it.")
    columns = order if order is not None else list(range(len(names)))
    labels = names if not header else [names[columns.index(j)] for j in range(len(names))]
    values = np.empty((len(data), len(names)), dtype=np.float64)
    for i, (line, cells) in enumerate(data):
        if len(cells) != len(names):
            raise InvkitError(_width_message(p, line, cells, names))
        for j, cell in enumerate(cells):
            c = cell.strip()
            if not NUMBER.fullmatch(c):
                what = "is empty" if not c else f"{c[:40]!r} is not a number"
                raise InvkitError(f"{str(p)!r}, line {line}, column {j + 1} ({labels[j]}): "
                                  f"the cell {what}. Each cell is one plain number, e.g. 1.5 "
                                  f"or -2e-3.")
            values[i, j] = float(c)
    values = values[:, columns]
    lines = tuple(line for line, _ in data)
    _check_values(p, values, lines)
    return ObservationFile(p, values, lines, header)


def _width_message(p: Path, line: int, cells: list[str], names: list[str]) -> str:
    n = len(cells)
    hint = ""
    if n == len(names) + 1 and not cells[-1].strip():
        hint = " (the last cell is empty: a comma at the end of the line?)"
    elif n == 1 and re.search(r"[;\t ]", cells[0].strip()):
        hint = " (cells are separated by commas, not semicolons, tabs or spaces)"
    return (f"{str(p)!r}, line {line}: {n} value(s){hint}; this problem's observations have "
            f"{_expected(names)}. Give one value per observation on every row.")
