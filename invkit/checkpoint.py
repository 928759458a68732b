"""Checkpoints: written atomically, loaded with ``weights_only=True``, checked before use."""

from __future__ import annotations

import io
import os
import pickle
import re
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from invkit.errors import CheckpointError
from invkit.version import __version__

FORMAT = "invkit-checkpoint"
FORMAT_VERSION = 1


def versions() -> dict[str, str]:
    def dist_version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {"invkit": __version__, "FrEIA": dist_version("FrEIA"),
            "torch": torch.__version__.split("+")[0]}


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash at any moment leaves either the old file or the new one, never a torn one. The
    checkpoint is serialised in memory first and written with plain file I/O, so a full disk
    is the OSError it is (torch's zip writer reports it as an obscure RuntimeError).
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buffer.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def first_line(exc: BaseException) -> str:
    """The first informative line of an exception's message, without terminal escapes."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Error(s) in loading")]
    return lines[0] if lines else ""


def make_checkpoint(state: dict[str, Any], config: dict[str, Any], problem: dict[str, str],
                    complete: bool) -> dict[str, Any]:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": versions(),
            "config": config, "problem": problem, "state": state, "complete": complete}


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint; every failure is a CheckpointError with a way out."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {str(path)!r}. A run directory holds model.pt "
                              f"once training has saved; pass the run directory.")
    try:
        # torch warns about what it reads before it fails (random bytes can look like an odd
        # pickle protocol); a file it cannot read gets one error, not a warning and an error
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        if isinstance(exc, pickle.UnpicklingError):
            detail = ("not a weights-only torch file: a checkpoint holds tensors and plain data, "
                      "nothing that could run code")
        else:
            detail = f"{type(exc).__name__}: {first_line(exc)}".rstrip(": ")
        raise CheckpointError(
            f"{str(path)!r} cannot be read as an invkit checkpoint ({detail}). It may be "
            f"truncated, corrupted or not a checkpoint; retrain, or resume from an intact copy."
        ) from None
    for w in caught:  # a file that loaded: its warnings are the user's to see
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is a torch file but not an invkit checkpoint.")
    if not isinstance(ckpt.get("versions", {}), dict):
        raise CheckpointError(f"{str(path)!r} lacks its 'versions' section; it is damaged.")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint format {ckpt.get('format_version')}, this invkit "
            f"reads format {FORMAT_VERSION}. Use the invkit version that wrote it "
            f"({ckpt.get('versions', {}).get('invkit', '?')})."
        )
    saved = ckpt.get("versions", {})
    here = versions()
    if saved.get("FrEIA") != here["FrEIA"]:
        raise CheckpointError(
            f"{str(path)!r} was written with FrEIA {saved.get('FrEIA')}, this environment has "
            f"FrEIA {here['FrEIA']}; FrEIA networks of different versions are not "
            f"interchangeable. Install FrEIA=={saved.get('FrEIA')}."
        )
    for key in ("config", "problem", "state"):
        if key not in ckpt:
            raise CheckpointError(f"{str(path)!r} lacks its {key!r} section; it is damaged.")
    return ckpt
