"""The run directory: its layout, and making one safely.

A run directory holds ``config.toml``, ``model.pt``, ``metrics.json``, ``plots/`` and a marker
file, ``.invkit-run``, that says invkit wrote it (with a format version). ``--force`` replaces
only such a directory (or, for runs written before the marker, one with exactly the run
layout and nothing else), and never deletes it before the new run has started: the old run is
moved aside, the new one is created in a temporary folder and renamed into place already
locked (:mod:`invkit.lock`), and the old one is deleted only once the new one has trained (or
put back if the new one fails before its first step).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from invkit.errors import InvkitError, os_error_fix
from invkit.lock import LOCK, RunLock

CONFIG, MODEL, METRICS, PLOTS = "config.toml", "model.pt", "metrics.json", "plots"
MARKER = ".invkit-run"
MARKER_FORMAT = {"format": "invkit-run", "version": 1}
TRAIN_LOG, SIMULATIONS = "train_log.csv", "simulations"
_LAYOUT = {CONFIG, MODEL, METRICS, PLOTS, MARKER, LOCK, TRAIN_LOG, SIMULATIONS, "tensorboard"}
"""Everything invkit writes into a run directory (plus its own hidden temporary files)."""


def default_run_dir(problem: str, root: Path = Path("runs")) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / problem / stamp
    k = 1
    while path.exists():
        path = root / problem / f"{stamp}-{k}"
        k += 1
    return path


def is_run_dir(path: Path) -> bool:
    """Whether invkit wrote ``path``: its marker, or (runs older than the marker) exactly the
    run layout, with nothing that invkit does not write."""
    path = Path(path)
    if not path.is_dir():
        return False
    marker = path / MARKER
    if marker.is_file():
        with contextlib.suppress(OSError, ValueError):
            return json.loads(marker.read_text()).get("format") == MARKER_FORMAT["format"]
        return False
    names = {p.name for p in path.iterdir()}
    ours = {n for n in names if n in _LAYOUT or (n.startswith(".") and n.endswith(".tmp"))}
    plots_ok = not (path / PLOTS).is_dir() or \
        all(p.suffix == ".png" or p.name.endswith(".tmp") for p in (path / PLOTS).iterdir())
    return bool(names) and names == ours and (CONFIG in names or MODEL in names) and plots_ok


class NewRun:
    """A freshly made run directory, locked; it may have replaced an older run (``--force``).

    ``settle()`` once the new run has trained: the old run, moved aside, is deleted.
    ``abandon()`` if it fails before training: the new directory is removed and the old run
    put back. ``release()`` drops the lock (at the end of the process in any case).
    """

    def __init__(self, path: Path, lock: RunLock, aside: Path | None, old_lock: RunLock | None,
                 made_parents: list[Path]) -> None:
        self.path, self.lock, self.aside = path, lock, aside
        self._old_lock, self._made_parents = old_lock, made_parents

    def settle(self) -> None:
        if self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None
        self._release_old()

    def abandon(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self.aside is not None:
            with contextlib.suppress(OSError):
                os.rename(self.aside, self.path)
            self.aside = None
        for parent in self._made_parents:  # and the folders made for it (runs/PROBLEM/)
            with contextlib.suppress(OSError):
                parent.rmdir()
        self._release_old()

    def release(self) -> None:
        self.lock.release()
        self._release_old()

    def _release_old(self) -> None:
        if self._old_lock is not None:
            self._old_lock.release()
            self._old_lock = None


def create_run_dir(path: Path, force: bool = False) -> NewRun:
    """Make and lock the run directory; an existing one is replaced only with ``force`` and
    only if invkit wrote it (see the module docstring)."""
    path = Path(path)
    aside: Path | None = None
    old_lock: RunLock | None = None
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise InvkitError(f"--out {str(path)!r} is a file, not a run directory; invkit "
                              f"writes a run into a folder. Choose another --out.")
        if not force:
            hint = ", or continue it with --resume" if (path / MODEL).is_file() else ""
            raise InvkitError(f"Output directory {str(path)!r} already exists; invkit never "
                              f"overwrites a run. Choose another --out, add --force to replace "
                              f"it{hint}.")
        if not is_run_dir(path):
            raise InvkitError(
                f"--force replaces only a run directory that invkit wrote, and {str(path)!r} is "
                f"not one (it has no {MARKER} marker and holds files invkit does not write). "
                f"Nothing was deleted. Choose another --out, or move the folder yourself.")
        old_lock = RunLock(path, "replace").acquire()
        aside = path.parent / f".{path.name}.replaced-{os.getpid()}"
        os.rename(path, aside)
    made = [p for p in path.absolute().parents if not p.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-", dir=path.parent))
        (tmp / PLOTS).mkdir()
        (tmp / MARKER).write_text(json.dumps(MARKER_FORMAT) + "\n")
        lock = RunLock(tmp, "use").acquire()
        os.rename(tmp, path)
    except OSError as exc:
        if aside is not None:
            with contextlib.suppress(OSError):
                os.rename(aside, path)
        if old_lock is not None:
            old_lock.release()
        raise InvkitError(f"Cannot create the run directory {str(path)!r}: "
                          f"{exc.strerror or exc}. {os_error_fix(exc)}") from None
    return NewRun(path, lock, aside, old_lock, made)


def remove_stale_temporaries(run_dir: Path) -> None:
    """Hidden temporary files left by a process killed while writing (a checkpoint, metrics)."""
    for stale in [*Path(run_dir).glob(".*.tmp"), *Path(run_dir).glob("*.json.tmp")]:
        with contextlib.suppress(OSError):
            stale.unlink()


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. a full disk: leave no half-written file behind
        raise


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / METRICS
    return json.loads(path.read_text()) if path.exists() else {}


def check_writable(run_dir: Path) -> None:
    """Raise before any work if the run directory (and its plots) cannot be written, so an
    evaluation never leaves metrics and plots out of step with each other."""
    for folder in (Path(run_dir), Path(run_dir) / PLOTS):
        if not folder.is_dir():
            continue
        try:
            fd, probe = tempfile.mkstemp(prefix=".write-test-", suffix=".tmp", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise InvkitError(f"Cannot write to {str(folder)!r}: {exc.strerror or exc}. "
                              f"{os_error_fix(exc).replace('--out', 'a copy of the run')} "
                              f"Nothing was changed.") from None
