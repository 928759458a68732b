"""Files of simulations (``.npz``, ``.npy``, ``.csv``): pairs (x, y) made elsewhere.

A scientist often has simulations already (a cluster run, another group's data set) and no
simulator at hand. These readers turn such a file into float32 tensors, with the columns of x
and y named the way the file allows, and with errors that say what to change:

* ``.npz``: arrays by name: ``x="theta"``, ``y="obs"`` (several names are joined column by
  column: ``x="mass,radius"``); the defaults read arrays named ``x`` and ``y``. A file with one
  2-D array is split by column index like a ``.npy``.
* ``.npy``: one 2-D array split by column index: ``x="0:3"``, ``y="3:5"``.
* ``.csv``: a header row, then one row per simulation, comma-separated; columns by name
  (``x="theta1,theta2"``) or by index (``x="0:2"``). An empty cell is a missing value (NaN),
  as pandas writes it.

A column selection is a string of comma-separated items (or a list of them): a name, an index
(``2``, ``-1``) or a Python slice of indices (``0:3``, ``3:``). Give only x and y is the rest
of the columns, and the other way round. Rows with NaN or infinite values follow the NaN
policy (:mod:`invkit.simulation.policy`).

HDF5 is not read: it would add a compiled dependency (h5py) for what one line does,
``numpy.savez("sims.npz", x=f["x"][:], y=f["y"][:])`` with the file ``f`` open in h5py.
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from invkit.errors import InvkitError, suggest
from invkit.paths import existing_file, user_path
from invkit.simulation import policy

ColumnSpec = str | Sequence[str | int] | None
"""A column selection: 'a,b', '0:3', '3:', ['a', 2], or None (the other columns)."""

FORMATS = (".npz", ".npy", ".csv")
_SLICE = re.compile(r"^(-?\d*):(-?\d*)$")
_INDEX = re.compile(r"^-?\d+$")


@dataclass(frozen=True)
class FileLayout:
    """Where x and y are in a file, found from its header alone (no data read)."""

    path: Path
    kind: str
    x_cols: tuple[int, ...]
    y_cols: tuple[int, ...]
    x_names: tuple[str, ...] | None
    y_names: tuple[str, ...] | None
    keys: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    """For an .npz read by array name: the arrays of x and of y."""

    @property
    def dim_x(self) -> int:
        return len(self.x_cols)

    @property
    def dim_y(self) -> int:
        return len(self.y_cols)


@dataclass
class FileSimulations:
    """Pairs read from a file: float32 ``x`` (n, dim_x) and ``y`` (n, dim_y), the columns'
    names when the file has them, the rows read and the rows dropped as non-finite."""

    x: Tensor
    y: Tensor
    x_names: list[str] | None
    y_names: list[str] | None
    path: Path
    rows: int
    dropped: int


def read_simulations(path: str | os.PathLike[str], x: ColumnSpec = None, y: ColumnSpec = None,
                     *, dim_x: int | None = None, dim_y: int | None = None,
                     nan_policy: str = "drop") -> FileSimulations:
    """Read x and y from a file (see the module docstring for formats and selections).

    ``dim_x`` / ``dim_y``: the widths a problem expects (checked when given);
    ``nan_policy``: ``"drop"``, ``"error"``, or ``"keep"`` (rows as they are, for a caller
    that applies the policy itself).
    """
    if nan_policy != "keep":
        policy.check_policy(nan_policy)
    layout = inspect_file(path, x, y, dim_x=dim_x, dim_y=dim_y)
    xs, ys = load(layout)
    rows, dropped = int(xs.shape[0]), 0
    if nan_policy != "keep":
        xs, ys, dropped = policy.apply(xs, ys, nan_policy, f"the file {layout.path}")
    return FileSimulations(xs, ys, list(layout.x_names) if layout.x_names else None,
                           list(layout.y_names) if layout.y_names else None, layout.path,
                           rows, dropped)


def inspect_file(path: str | os.PathLike[str], x: ColumnSpec = None, y: ColumnSpec = None,
                 *, dim_x: int | None = None, dim_y: int | None = None) -> FileLayout:
    """The layout of x and y in the file, from its header: column errors surface here,
    before any data is read (a problem from a file is built without loading it)."""
    p = _existing(path)
    kind = p.suffix.lower()
    if kind == ".npz":
        layout = _npz_layout(p, x, y)
    elif kind == ".npy":
        shape, _ = _npy_header(p)
        layout = _table_layout(p, "npy", shape[1], None, x, y)
    else:
        layout = _table_layout(p, "csv", *_csv_header(p), x, y)
    for what, want, got, names in (("x", dim_x, layout.dim_x, layout.x_names),
                                   ("y", dim_y, layout.dim_y, layout.y_names)):
        if want is not None and want != got:
            shown = f" ({', '.join(names)})" if names else ""
            raise InvkitError(f"{p}: {what} has {got} column(s){shown}, but the problem "
                              f"expects dim_{what}={want}. Select {want} column(s) for "
                              f"{what}.")
    return layout


def load(layout: FileLayout) -> tuple[Tensor, Tensor]:
    """All rows of x and y as float32 tensors, non-finite rows included."""
    if layout.keys is not None:
        with np.load(layout.path, allow_pickle=False) as data:
            parts = [[_as_columns(data[k]) for k in keys] for keys in layout.keys]
        lengths = {k: a.shape[0] for keys, arrays in zip(layout.keys, parts)
                   for k, a in zip(keys, arrays)}
        if len(set(lengths.values())) > 1:
            raise InvkitError(f"{layout.path}: the arrays of x and y have different numbers "
                              f"of rows ({', '.join(f'{k}: {n}' for k, n in lengths.items())})"
                              f"; each row must be one simulation.")
        xs, ys = (np.concatenate(arrays, axis=1) for arrays in parts)
        return _tensor(xs), _tensor(ys)
    if layout.kind == "csv":
        table = _read_csv(layout.path)
    elif layout.kind == "npy":
        table = np.load(layout.path, allow_pickle=False)
    else:
        with np.load(layout.path, allow_pickle=False) as data:
            table = data[data.files[0]]
    return _tensor(table[:, list(layout.x_cols)]), _tensor(table[:, list(layout.y_cols)])


# -- finding the columns ---------------------------------------------------------------------
def _existing(path: str | os.PathLike[str]) -> Path:
    p = user_path(path)
    if p.suffix.lower() in (".h5", ".hdf5", ".hdf"):
        raise InvkitError(f"{p}: HDF5 files are not read directly. Convert it once with h5py: "
                          f"numpy.savez('sims.npz', x=f['x'][:], y=f['y'][:]).")
    return existing_file(p, "simulations", FORMATS)


def _items(spec: ColumnSpec, what: str) -> list[str | int | slice]:
    raw: list[str | int] = [s for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    out: list[str | int | slice] = []
    for item in raw:
        if isinstance(item, int) and not isinstance(item, bool):
            out.append(item)
            continue
        s = str(item).strip()
        if not s:
            raise InvkitError(f"{what}={spec!r} has an empty item; separate columns with single "
                              f"commas, e.g. {what}=theta1,theta2 or {what}=0:3.")
        m = _SLICE.match(s)
        if m:
            out.append(slice(int(m[1]) if m[1] else None, int(m[2]) if m[2] else None))
        elif _INDEX.match(s):
            out.append(int(s))
        else:
            out.append(s)
    return out


def _select(spec: ColumnSpec, what: str, path: Path, n: int, names: list[str] | None
            ) -> list[int]:
    cols: list[int] = []
    for item in _items(spec, what):
        if isinstance(item, slice):
            for end in (item.start, item.stop):
                if end is not None and not -n <= end <= n:
                    raise InvkitError(f"{path}: {what} asks for columns up to index {end}, but "
                                      f"the file has {n} column(s) (indices 0 to {n - 1}).")
            cols.extend(range(n)[item])
        elif isinstance(item, int):
            if not -n <= item < n:
                raise InvkitError(f"{path}: {what} asks for column {item}, but the file has "
                                  f"{n} column(s) (indices 0 to {n - 1}).")
            cols.append(item % n)
        elif names is None:
            raise InvkitError(f"{path}: {what} names a column {item!r}, but this file has no "
                              f"column names; select columns by index, e.g. x=0:3 y=3:5.")
        elif names.count(item) != 1:
            if item in names:
                raise InvkitError(f"{path}: the header names {names.count(item)} columns "
                                  f"{item!r}; select them by index instead.")
            raise InvkitError(f"{path} has no column {item!r}.{suggest(item, names)} Its "
                              f"columns: {_listing(names)}.")
        else:
            cols.append(names.index(item))
    if not cols:
        raise InvkitError(f"{path}: {what}={spec!r} selects no columns (the file has {n}).")
    twice = sorted({c for c in cols if cols.count(c) > 1})
    if twice:
        raise InvkitError(f"{path}: {what} selects column(s) {_shown(twice, names)} more than "
                          f"once.")
    return cols


def _table_layout(path: Path, kind: str, n: int, names: list[str] | None, x: ColumnSpec,
                  y: ColumnSpec) -> FileLayout:
    if x is None and y is None:
        cols = f"its columns: {_listing(names)}" if names else f"it has {n} columns"
        example = f"x={','.join(names[:min(n - 1, 3)])} y={names[-1]}" if names and n > 1 \
            else f"x=0:{max(n - 1, 1)} y={max(n - 1, 1)}:"
        raise InvkitError(f"{path}: say which columns are x and which are y ({cols}), e.g. "
                          f"{example}.")
    xc = _select(x, "x", path, n, names) if x is not None else None
    yc = _select(y, "y", path, n, names) if y is not None else None
    if xc is None:
        xc = [c for c in range(n) if c not in set(yc or [])]
    if yc is None:
        yc = [c for c in range(n) if c not in set(xc)]
    for what, cols in (("x", xc), ("y", yc)):
        if not cols:
            raise InvkitError(f"{path}: no columns are left for {what} (the file has {n}); "
                              f"select {what}'s columns explicitly.")
    both = sorted(set(xc) & set(yc))
    if both:
        raise InvkitError(f"{path}: column(s) {_shown(both, names)} are selected for both x "
                          f"and y; each column belongs to one of them.")
    return FileLayout(path, kind, tuple(xc), tuple(yc),
                      tuple(names[c] for c in xc) if names else None,
                      tuple(names[c] for c in yc) if names else None)


def _shown(cols: list[int], names: list[str] | None) -> str:
    return ", ".join(repr(names[c]) if names else str(c) for c in cols)


def _listing(names: list[str], most: int = 20) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > most else ""
    return ", ".join(names[:most]) + more


# -- .npz ------------------------------------------------------------------------------------
def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each array's shape and dtype, read from the headers inside the zip (not the data)."""
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                    else:  # a newer header: read the array itself
                        with np.load(path, allow_pickle=False) as data:
                            a = data[info.filename[:-4]]
                        shape, dtype = a.shape, a.dtype
                out[info.filename[:-4]] = (tuple(shape), np.dtype(dtype))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvkitError(f"{path} is not a readable .npz file ({exc}); write it with "
                          f"numpy.savez('sims.npz', x=x, y=y).") from None
    if not out:
        raise InvkitError(f"{path} holds no arrays.")
    return out


def _npz_layout(path: Path, x: ColumnSpec, y: ColumnSpec) -> FileLayout:
    headers = _npz_headers(path)
    keys = list(headers)
    if x is None and y is None and {"x", "y"} <= set(keys):
        x, y = "x", "y"
    by_name = [it for what, spec in (("x", x), ("y", y)) if spec is not None
               for it in _items(spec, what) if isinstance(it, str)]
    if len(keys) == 1 and not (by_name and set(by_name) <= set(keys)):
        shape, dtype = headers[keys[0]]
        _check_array(path, keys[0], shape, dtype)
        return _table_layout(path, "npz", shape[1] if len(shape) == 2 else 1, None, x, y)
    listing = ", ".join(f"{k} {headers[k][0]}" for k in keys)
    if x is None or y is None:
        raise InvkitError(f"{path}: name the arrays of x and y, e.g. x={keys[0]} y="
                          f"{keys[-1]}; the file holds: {listing}.")
    chosen: list[list[str]] = []
    for what, spec in (("x", x), ("y", y)):
        items = _items(spec, what)
        for it in items:
            if not isinstance(it, str):
                raise InvkitError(f"{path} holds several arrays ({listing}): select x and y "
                                  f"by array name, not by column index ({what}={spec!r}).")
            if it not in headers:
                raise InvkitError(f"{path} has no array {it!r}.{suggest(it, keys)} It holds: "
                                  f"{listing}.")
            _check_array(path, it, *headers[it])
        chosen.append([str(it) for it in items])
    both = sorted(set(chosen[0]) & set(chosen[1]))
    if both:
        raise InvkitError(f"{path}: array(s) {', '.join(both)} are selected for both x and y; "
                          f"each array belongs to one of them.")
    names: list[list[str]] = []
    for arrays in chosen:
        cols = []
        for k in arrays:
            shape = headers[k][0]
            width = shape[1] if len(shape) == 2 else 1
            cols += [k] if width == 1 else [f"{k}{j + 1}" for j in range(width)]
        names.append(cols)
    return FileLayout(path, "npz", tuple(range(len(names[0]))), tuple(range(len(names[1]))),
                      tuple(names[0]), tuple(names[1]),
                      keys=(tuple(chosen[0]), tuple(chosen[1])))


def _check_array(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype.kind not in "biuf":
        raise InvkitError(f"{path}: array {key!r} holds {dtype} values; simulations must be "
                          f"numbers (ints or floats).")
    if len(shape) not in (1, 2):
        raise InvkitError(f"{path}: array {key!r} has shape {shape}; expected one row per "
                          f"simulation, (n,) or (n, columns).")


def _as_columns(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, 1) if a.ndim == 1 else a


# -- .npy ------------------------------------------------------------------------------------
def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InvkitError(f"{path} is not a readable .npy file ({exc}); write it with "
                          f"numpy.save('sims.npy', np.hstack([x, y])).") from None
    _check_array(path, "(the array)", a.shape, a.dtype)
    if a.ndim != 2:
        raise InvkitError(f"{path} holds an array of shape {a.shape}; a .npy file of "
                          f"simulations is one 2-D array, x's and y's columns side by side.")
    return a.shape, a.dtype


# -- .csv ------------------------------------------------------------------------------------
def _csv_header(path: Path) -> tuple[int, list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh), None)
    if not header or all(not h.strip() for h in header):
        raise InvkitError(f"{path} is empty; a CSV of simulations starts with a header row "
                          f"naming its columns, then one row per simulation.")
    names = [h.strip() for h in header]
    if all(is_number(h) for h in names if h):
        raise InvkitError(f"{path}: the first row ({', '.join(names[:6])}) looks like data. A "
                          f"CSV of simulations needs a header row naming its columns, e.g. "
                          f"theta1,theta2,obs1.")
    return len(names), names


def is_number(cell: str) -> bool:
    """Whether a text cell parses as a float (nan and inf included: the NaN policy decides)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> np.ndarray:
    """The data rows as float64: numpy's fast reader, and on any trouble a careful pass that
    says which row and cell is wrong (and reads empty cells as NaN)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": said below, clearer
            table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64,
                               encoding="utf-8-sig")
    except ValueError:
        table = None
    n, names = _csv_header(path)
    if table is not None and table.shape[1] == n and table.shape[0] > 0:
        return table
    rows: list[list[float]] = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        next(reader)
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != n:
                raise InvkitError(f"{path}, line {line}: {len(row)} cells, but the header has "
                                  f"{n} columns; every row must have one cell per column.")
            values = []
            for j, cell in enumerate(row):
                c = cell.strip()
                if not c:
                    values.append(math.nan)  # a missing value, as pandas writes NaN
                    continue
                try:
                    values.append(float(c))
                except ValueError:
                    raise InvkitError(f"{path}, line {line}, column {names[j]!r}: {c[:40]!r} "
                                      f"is not a number.") from None
            rows.append(values)
    if not rows:
        raise InvkitError(f"{path} has a header but no rows of simulations.")
    return np.asarray(rows, dtype=np.float64)


def _tensor(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
