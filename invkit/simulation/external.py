"""A forward process that runs an external program: x in as CSV on stdin, y out as CSV.

Many simulators are programs (Fortran, C++, a script with its own environment) rather than
Python functions. :func:`external_program` wraps one as a numpy-backend
:class:`~invkit.problem.ForwardProcess`, so it takes part in everything else: seed blocks,
worker processes (each worker runs its own copy of the program), the cache and the NaN policy.

The protocol is deliberately plain. invkit writes one row per sample to the program's stdin,
``dim_x`` comma-separated numbers each (full float64 precision, no header), and reads the
program's stdout: one row per sample, ``dim_y`` numbers separated by commas (or whitespace);
blank lines and one header line are ignored. ``batched=True`` sends all rows of a block to one
run of the program; ``batched=False`` runs the program once per sample (one row in, one out).

Reproducibility: a stochastic program takes its seed from invkit. Put ``{seed}`` in the
command (for example ``["./sim", "--seed", "{seed}"]``): each run of the program gets a fresh
seed drawn from the numpy ``Generator`` invkit derives from the block's seed, and the same
seed is in the environment variable ``INVKIT_SEED``. Such a process is declared
``rng="generator"``; without ``{seed}`` (and ``stochastic=False``) the program must be
deterministic.
"""

from __future__ import annotations

import io
import math
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from invkit.errors import InvkitError
from invkit.problem import ForwardProcess
from invkit.simulation.files import is_number

SEED = "{seed}"
"""The placeholder in a command that invkit replaces with the program's seed."""

BLOCK_BATCHED = 256
"""Rows per seed block of a batched program: one program start per 256 simulations keeps the
start-up cost small, and blocks small enough that a slow program reports progress."""


class ExternalProgramError(InvkitError):
    """The program exited with an error, timed out, or printed something that is not y."""


class _Program:
    """The callable a ForwardProcess holds: runs the command on rows of x."""

    def __init__(self, args: list[str], dim_x: int, dim_y: int, name: str, batched: bool,
                 timeout: float | None, stochastic: bool, cwd: str | None,
                 env: Mapping[str, str] | None, block_size: int | None) -> None:
        self.args, self.dim_x, self.dim_y, self.name = args, dim_x, dim_y, name
        self.batched, self.timeout, self.stochastic = batched, timeout, stochastic
        self.cwd, self.env = cwd, dict(env) if env is not None else None
        if block_size is not None or batched:
            self.invkit_block_size = block_size or BLOCK_BATCHED

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        rows = np.atleast_2d(np.asarray(x, dtype=np.float64))
        seed = int(rng.integers(0, 2**63 - 1)) if rng is not None else None
        y = self._run(rows, seed)
        return y if self.batched else y[0]

    def _run(self, rows: np.ndarray, seed: int | None) -> np.ndarray:
        args = [a.replace(SEED, str(seed)) for a in self.args] if seed is not None \
            else list(self.args)
        shown = shlex.join(args)
        env = dict(os.environ if self.env is None else self.env)
        if seed is not None:
            env["INVKIT_SEED"] = str(seed)
        buf = io.StringIO()
        np.savetxt(buf, rows, delimiter=",", fmt="%.17g")
        try:
            done = subprocess.run(args, input=buf.getvalue(), capture_output=True, text=True,
                                  timeout=self.timeout, cwd=self.cwd, env=env, check=False)
        except FileNotFoundError:
            raise ExternalProgramError(
                f"External program of forward process {self.name!r}: {args[0]!r} was not "
                f"found (command: {shown}). Give its full path, or check that it is "
                f"installed and on PATH.") from None
        except PermissionError:
            raise ExternalProgramError(
                f"External program of forward process {self.name!r}: {args[0]!r} is not "
                f"executable (command: {shown}); chmod +x it, or run it through its "
                f"interpreter (e.g. [sys.executable, 'sim.py']).") from None
        except subprocess.TimeoutExpired as exc:
            raise ExternalProgramError(
                f"External program of forward process {self.name!r} did not finish within "
                f"{self.timeout:g} s on {len(rows)} row(s) and was stopped (command: "
                f"{shown}). Raise its timeout, or send fewer rows per run (block_size)."
                f"{_tail(exc.stderr)}") from None
        if done.returncode != 0:
            how = f"was killed by signal {-done.returncode}" if done.returncode < 0 \
                else f"exited with status {done.returncode}"
            raise ExternalProgramError(
                f"External program of forward process {self.name!r} {how} on {len(rows)} "
                f"row(s) (command: {shown}).{_tail(done.stderr)}")
        return self._parse(done.stdout, len(rows), shown, done.stderr)

    def _parse(self, out: str, n: int, shown: str, stderr: str) -> np.ndarray:
        lines = [(i + 1, line) for i, line in enumerate(out.splitlines()) if line.strip()]
        if lines and not any(is_number(c) for c in _cells(lines[0][1])):
            lines = lines[1:]  # a header line
        rows = []
        for lineno, line in lines:
            try:
                rows.append([float(c) for c in _cells(line)])
            except ValueError:
                raise ExternalProgramError(
                    f"External program of forward process {self.name!r} printed line "
                    f"{lineno} {line[:80]!r}, which is not {self.dim_y} numbers (command: "
                    f"{shown}). It must print one row of y per input row, numbers separated "
                    f"by commas.{_tail(stderr)}") from None
        widths = sorted({len(r) for r in rows})
        if len(rows) != n or widths != [self.dim_y]:
            got = f"{len(rows)} row(s) of {'/'.join(map(str, widths)) or 0} number(s)"
            raise ExternalProgramError(
                f"External program of forward process {self.name!r} printed {got} for {n} "
                f"input row(s); expected {n} row(s) of {self.dim_y} (command: {shown})."
                f"{_tail(stderr)}")
        return np.asarray(rows, dtype=np.float64)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split(",")] if "," in line else line.split()


def _tail(stderr: str | bytes | None, lines: int = 12, chars: int = 1500) -> str:
    """' Its stderr ended with: ...' (the last lines), or '' when it wrote nothing."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    text = "\n".join((stderr or "").strip().splitlines()[-lines:])[-chars:]
    return f" Its stderr ended with:\n{text}" if text else " It wrote nothing to stderr."


def external_program(command: str | Sequence[str | os.PathLike[str]], dim_x: int, dim_y: int,
                     *, name: str, batched: bool = True, timeout: float | None = None,
                     stochastic: bool | None = None, cwd: str | os.PathLike[str] | None = None,
                     env: Mapping[str, str] | None = None, block_size: int | None = None,
                     description: str = "") -> ForwardProcess:
    """A forward process that runs ``command`` (see the module docstring for the protocol).

    ``command``: a list of arguments, or one string split like a shell would (no shell runs
    it); ``{seed}`` in it is replaced by a seed derived from invkit's. ``batched``: all rows
    of a block in one run (default), or one run per sample. ``timeout``: seconds per run;
    ``stochastic``: whether the program draws random numbers (default: whether the command
    holds ``{seed}``); ``cwd`` / ``env``: where and with which environment it runs (default:
    invkit's); ``block_size``: rows per seed block (default 256 batched, 32 per sample).
    """
    args = shlex.split(command) if isinstance(command, str) else [os.fspath(a) for a in command]
    if not args:
        raise InvkitError(f"external_program {name!r}: the command is empty.")
    for what, value in (("dim_x", dim_x), ("dim_y", dim_y)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvkitError(f"external_program {name!r}: {what}={value!r}; expected a "
                              f"positive int.")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0
                                    and math.isfinite(timeout)):
        raise InvkitError(f"external_program {name!r}: timeout={timeout!r}; expected seconds "
                          f"> 0, or None for no limit.")
    seeded = any(SEED in a for a in args)
    stochastic = seeded if stochastic is None else bool(stochastic)
    fn = _Program(args, dim_x, dim_y, name, batched, timeout, stochastic,
                  None if cwd is None else str(Path(cwd)), env, block_size)
    how = "all rows per run" if batched else "one run per sample"
    return ForwardProcess(
        name=name, dim_x=dim_x, dim_y=dim_y, fn=fn, backend="numpy",
        rng="generator" if stochastic else "none", vectorized=batched,
        description=description or f"external program: {shlex.join(args)} ({how})")
