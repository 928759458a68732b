"""A folder of simulated blocks, so that no simulation is run twice.

Simulations are the expensive part of a slow simulator's run, and a budget counts every one.
Each finished block of a stream (:mod:`invkit.simulation.blocks`) is written here at once, so
a run that is interrupted, or a simulator that raises half-way, loses nothing: the next run
with the same problem and seed reads the blocks back instead of simulating them, and so does
a second model trained on the same problem.

Layout: ``ROOT/<problem>-seed<seed>-<digest>/`` per *key*, holding ``manifest.json`` (the
key, readable) and one ``block-<k>.npz`` per block (``block-<k>-<rows>.npz`` for a block cut
short by ``n``). The key is everything that fixes a block's content: the problem's name and
options, the forward process's name and calling convention, the dimensions and observation
noise, the plugin's version when known, the seed, the block size, the device type and a
format tag. Another key is another folder, so blocks of another problem, option or seed are
never mixed in; a folder whose manifest names another key is refused.

Blocks are raw simulations (rows with NaN included: the NaN policy is applied after reading,
so its counts do not depend on the cache). Each is written to a temporary file and renamed,
so a block file is either whole or absent; one that cannot be read anyway (a disk error, a
file cut by a full disk) is moved aside and simulated again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from invkit.errors import InvkitError
from invkit.version import __version__

CACHE_FORMAT = 1
"""Bumped when the files' layout changes; part of the key, so old folders are not read."""

MANIFEST = "manifest.json"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return repr(value)


def digest(key: Mapping[str, Any]) -> str:
    """A short stable hash of a key (its canonical JSON)."""
    text = json.dumps(_jsonable(key), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "problem"


class BlockCache:
    """The blocks of one key, in ``folder``. Create with :meth:`open`."""

    def __init__(self, folder: Path, key: Mapping[str, Any], block_size: int) -> None:
        self.folder, self.key, self.block_size = folder, dict(key), block_size
        self.damaged: list[Path] = []

    @classmethod
    def open(cls, root: str | os.PathLike[str], key: Mapping[str, Any]) -> BlockCache:
        """The key's folder under ``root``, created (with its manifest) when new."""
        key = _jsonable(key)
        name = f"{_slug(str(key.get('problem', 'problem')))}-seed{key.get('seed')}-{digest(key)}"
        folder = Path(root) / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvkitError(f"Cannot create the simulation cache folder {folder}: {exc}. "
                              f"Name a writable folder (data.cache) or turn the cache off.") \
                from None
        manifest = folder / MANIFEST
        try:
            found = json.loads(manifest.read_text())["key"]
        except FileNotFoundError:
            found = None
        except (OSError, ValueError, KeyError, TypeError):
            found = None  # unreadable: the folder name's digest still names the key
        if found is not None and found != key:
            diff = sorted(k for k in set(found) | set(key) if found.get(k) != key.get(k))
            raise InvkitError(
                f"The simulation cache folder {folder} holds simulations of another setting "
                f"(its manifest differs in: {', '.join(diff)}). invkit never mixes them: "
                f"remove that folder or choose another cache folder.")
        if found is None:
            _write_atomic(manifest, json.dumps(
                {"key": key, "written_by": f"invkit {__version__}",
                 "about": "blocks of simulations; see invkit.simulation.cache"},
                indent=2, sort_keys=True).encode())
        cache = cls(folder, key, int(key["block_size"]))
        cache._remove_stale_temporaries()
        return cache

    # -- blocks ----------------------------------------------------------------------------
    def path(self, k: int, rows: int) -> Path:
        tail = "" if rows == self.block_size else f"-{rows}"
        return self.folder / f"block-{k:08d}{tail}.npz"

    def load(self, k: int, rows: int, dim_x: int, dim_y: int
             ) -> tuple[np.ndarray, np.ndarray] | None:
        """Block ``k`` with ``rows`` rows, or None when absent or damaged (then noted in
        :attr:`damaged` and moved aside, so it is simulated again)."""
        path = self.path(k, rows)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                x, y = np.asarray(data["x"]), np.asarray(data["y"])
            ok = (x.shape == (rows, dim_x) and y.shape == (rows, dim_y)
                  and x.dtype == np.float32 and y.dtype == np.float32)
        except Exception:  # any unreadable file is a damaged block, whatever numpy raises
            ok = False
        if ok:
            return x, y
        self.damaged.append(path)
        with contextlib.suppress(OSError):
            os.replace(path, path.with_name(path.name + ".damaged"))
        return None

    def save(self, k: int, x: np.ndarray, y: np.ndarray) -> None:
        """Write block ``k`` atomically (temporary file, then rename)."""
        buf = io.BytesIO()
        np.savez(buf, x=np.ascontiguousarray(x, dtype=np.float32),
                 y=np.ascontiguousarray(y, dtype=np.float32))
        _write_atomic(self.path(k, int(x.shape[0])), buf.getvalue())

    def count(self) -> int:
        """How many block files the folder holds (any row count)."""
        return sum(1 for _ in self.folder.glob("block-*.npz"))

    def _remove_stale_temporaries(self) -> None:
        """Temporary files left by a process that was killed while writing."""
        for tmp in self.folder.glob(".*.tmp"):
            pid = tmp.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    tmp.unlink()


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # cannot tell cheaply; keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to ``.NAME.PID.tmp`` beside ``path``, flush to disk, rename over ``path``: a
    reader sees the old file, or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise InvkitError(f"Cannot write the simulation cache file {path}: {exc}.") from None
