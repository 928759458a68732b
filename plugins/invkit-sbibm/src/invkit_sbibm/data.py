"""sbibm's official data: 10 observations per task, their true parameters, and 10,000 reference
posterior samples for each, read from the files of an installed sbibm 1.1.0.

sbibm's declared dependencies do not install with current torch, and the package cannot be
imported without them, so it is installed for its data only and never imported::

    pip install --no-deps sbibm==1.1.0

Its files are found with ``importlib.util.find_spec``, which locates the package without
running it. Parsed arrays are cached in memory; every call returns a fresh tensor.
"""

from __future__ import annotations

import bz2
import importlib.util
import warnings
from functools import cache, lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from invkit.errors import InvkitError
from torch import Tensor

from invkit_sbibm.tasks import Task, get_task

NUM_OBSERVATIONS = 10
SBIBM_VERSION = "1.1.0"
INSTALL_COMMAND = f"pip install --no-deps sbibm=={SBIBM_VERSION}"


class SbibmDataError(InvkitError):
    """sbibm's data files are not installed, or one of them is missing or malformed."""


@lru_cache(maxsize=1)
def tasks_dir() -> Path:
    """The ``sbibm/tasks`` directory of the installed sbibm, found without importing it.

    The installed distribution's files come first: a module that happens to be called
    ``sbibm`` on ``sys.path`` (a script ``sbibm.py`` next to the caller) must not hide them.
    """
    locations = _distribution_package()
    if not locations:
        spec = importlib.util.find_spec("sbibm")
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise SbibmDataError(
            "sbibm's data files (observations and reference posterior samples) are not "
            f"installed. Install them with: {INSTALL_COMMAND} (--no-deps: sbibm's own "
            "dependencies are not needed, and invkit-sbibm never imports it)."
        )
    version = _installed_version()
    if version is not None and version != SBIBM_VERSION:
        warnings.warn(
            f"invkit-sbibm reads sbibm {SBIBM_VERSION}'s files but sbibm {version} is "
            f"installed; to be sure of the official data run: {INSTALL_COMMAND}",
            stacklevel=2,
        )
    return Path(locations[0]) / "tasks"


def _distribution_package() -> list[str]:
    """The folder of the installed ``sbibm`` distribution's package, if it has its tasks."""
    try:
        folder = Path(str(metadata.distribution("sbibm").locate_file("sbibm")))
    except metadata.PackageNotFoundError:
        return []
    return [str(folder)] if (folder / "tasks").is_dir() else []


def _installed_version() -> str | None:
    try:
        return metadata.version("sbibm")
    except metadata.PackageNotFoundError:
        return None


def _observation_dir(task: Task, num_observation: int) -> Path:
    if not 1 <= num_observation <= NUM_OBSERVATIONS:
        raise SbibmDataError(f"sbibm has observations 1 to {NUM_OBSERVATIONS}, not "
                             f"{num_observation}.")
    return tasks_dir() / task.folder / "files" / f"num_observation_{num_observation}"


@cache
def _read_csv(path: Path, columns: int) -> np.ndarray:
    """A float32 array from one of sbibm's csv files (a header line, then rows)."""
    if not path.is_file():
        raise SbibmDataError(
            f"sbibm data file {path.name} is missing from {path.parent}. The sbibm install "
            f"looks incomplete; reinstall it with: {INSTALL_COMMAND} --force-reinstall"
        )
    opener = bz2.open if path.suffix == ".bz2" else open
    try:
        with opener(path, "rt") as fh:
            values = np.loadtxt(fh, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise SbibmDataError(f"cannot parse sbibm data file {path}: {exc}. Reinstall sbibm "
                             f"with: {INSTALL_COMMAND} --force-reinstall") from exc
    if values.shape[1] != columns:
        raise SbibmDataError(f"sbibm data file {path} has {values.shape[1]} columns where "
                             f"{columns} were expected.")
    values = values.astype(np.float32)
    values.flags.writeable = False
    return values


def _tensor(values: np.ndarray) -> Tensor:
    return torch.from_numpy(values.copy())


def observation(task: str, num_observation: int) -> Tensor:
    """Official observation ``num_observation`` (1 to 10) of ``task``: ``(1, dim_x)``."""
    t = get_task(task)
    path = _observation_dir(t, num_observation) / t.observation_file
    return _tensor(_read_csv(path, t.dim_x))


def observations(task: str) -> Tensor:
    """All 10 official observations of ``task``: ``(10, dim_x)``, row k-1 is observation k."""
    return torch.cat([observation(task, k) for k in range(1, NUM_OBSERVATIONS + 1)])


def true_parameters(task: str) -> Tensor:
    """The parameters that generated each official observation: ``(10, dim_theta)``."""
    t = get_task(task)
    rows = [_read_csv(_observation_dir(t, k) / "true_parameters.csv", t.dim_theta)
            for k in range(1, NUM_OBSERVATIONS + 1)]
    return _tensor(np.concatenate(rows))


def reference_samples(task: str, num_observation: int) -> Tensor:
    """sbibm's reference posterior samples for one observation: ``(10000, dim_theta)``."""
    t = get_task(task)
    path = _observation_dir(t, num_observation) / "reference_posterior_samples.csv.bz2"
    return _tensor(_read_csv(path, t.dim_theta))


def all_reference_samples(task: str) -> list[Tensor]:
    """Reference posterior samples for observations 1 to 10, in order."""
    return [reference_samples(task, k) for k in range(1, NUM_OBSERVATIONS + 1)]


def observation_seed(task: str, num_observation: int) -> int:
    """The seed sbibm generated observation ``num_observation`` with."""
    t = get_task(task)
    path = _observation_dir(t, num_observation) / "observation_seed.csv"
    return int(_read_csv(path, 2)[0, 0])


def is_installed() -> bool:
    """Whether sbibm's data files can be found (for tests and optional features)."""
    try:
        return (tasks_dir() / "two_moons" / "files").is_dir()
    except SbibmDataError:
        return False
