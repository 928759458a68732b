"""A problem made of a file of simulations, with no simulator at all.

``file_problem("sims.csv", x="theta1,theta2", y="obs1")`` is an :class:`~invkit.problem.Problem`
whose training pairs come from the file (``simulations=Simulations(...)``), with parameter and
observation names from the CSV header or the npz array names. The file's header is read when
the problem is built, so a wrong path or column fails at once; the data are read on first
use and kept.

:data:`FILE_PROBLEM_SPEC` is the same as the problem ``file`` that the core registers as a
built-in, so that ``invkit run file --set path=sims.npz --set x=theta --set y=obs`` trains on a
file with no plugin written. Its options are strings: ``path``, and the selections ``x`` and
``y`` (default ``x`` and ``y``: an npz holding arrays named so; an empty selection means the
columns the other one leaves).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from torch import Tensor

from invkit.errors import InvkitError
from invkit.problem import Problem, ProblemSpec, Simulations
from invkit.simulation.files import ColumnSpec, inspect_file, load

FILE_OPTIONS = {"path": "", "x": "x", "y": "y"}
"""The options of the built-in problem ``file`` and their defaults."""


def file_problem(path: str | os.PathLike[str], x: ColumnSpec = None, y: ColumnSpec = None,
                 name: str = "file", *, description: str = "") -> Problem:
    """A problem whose pairs are read from ``path`` (see :mod:`invkit.simulation.files`).

    ``x`` / ``y``: the columns (CSV, npy) or arrays (npz) of each; one left out (None or '')
    is the columns the other leaves; both left out read the arrays ``x`` and ``y`` of an npz.
    ``problem.simulations.load()`` gives the rows as they are in the file (non-finite ones
    included): the NaN policy is applied where they are used
    (:func:`invkit.simulation.simulate`), so that runs count and report what they drop.
    """
    x = x if x not in ("", None) else None
    y = y if y not in ("", None) else None
    layout = inspect_file(path, x, y)
    layout = replace(layout, path=layout.path.resolve())
    kept: list[tuple[Tensor, Tensor]] = []

    def load_once() -> tuple[Tensor, Tensor]:
        if not kept:
            kept.append(load(layout))
        return kept[0]

    where = f"{Path(path).name}"
    sims = Simulations(dim_x=layout.dim_x, dim_y=layout.dim_y, load=load_once,
                       description=f"file {where}")
    return Problem(
        name=name, simulations=sims,
        description=description or f"simulations read from {where} ({layout.dim_x} "
                                   f"parameters, {layout.dim_y} observed values)",
        param_names=_names(layout.x_names, "x"), obs_names=_names(layout.y_names, "y"))


def _names(names: tuple[str, ...] | None, prefix: str) -> list[str] | None:
    """The file's names, with a default for any blank one (a problem's names are non-empty)."""
    if not names:
        return None
    return [n or f"{prefix}{j + 1}" for j, n in enumerate(names)]


def _build(path: str = FILE_OPTIONS["path"], x: str = FILE_OPTIONS["x"],
           y: str = FILE_OPTIONS["y"]) -> Problem:
    if not str(path).strip():
        raise InvkitError("Problem 'file' trains on a file of simulations: give its path and "
                          "columns, e.g. invkit run file --set path=sims.npz --set x=theta "
                          "--set y=obs (or --set path=sims.csv --set x=theta1,theta2 --set "
                          "y=obs1).")
    return file_problem(path, x, y, name="file")


FILE_PROBLEM_SPEC = ProblemSpec(
    name="file",
    build=_build,
    description="pairs (x, y) read from a .npz, .npy or .csv file of simulations "
                "(options path, x, y); no simulator",
    options=dict(FILE_OPTIONS),
)
"""The built-in problem ``file`` (registered by the core, not by this module)."""
