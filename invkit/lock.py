"""An exclusive lock on a run directory for the life of the process that uses it.

Two ``invkit run --force --out DIR`` at once, or an ``invkit evaluate DIR`` while DIR is still
training, would write over each other's files and both report success. The lock is an OS
file lock (``flock``) on ``DIR/.lock``: released by the kernel when the process ends, however
it ends, so a killed run never leaves a stale lock; the file holds the owner's pid so the
refusal can name it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from invkit.errors import InvkitError

LOCK = ".lock"

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locking, documented
    fcntl = None  # type: ignore[assignment]


class RunLocked(InvkitError):
    """Another process holds the run directory."""


class RunLock:
    """``with RunLock(run_dir, "evaluate"):``, or ``acquire()`` ... ``release()``."""

    def __init__(self, run_dir: Path, what: str = "use") -> None:
        self.path = Path(run_dir) / LOCK
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if fcntl is None:  # pragma: no cover
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise RunLocked(
                f"{str(self.path.parent)!r} is in use by {who} (an 'invkit run', 'evaluate' or "
                f"'--resume' on it); it cannot {self.what} it at the same time. Wait for it to "
                f"finish, or stop it, then try again."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode().strip()
        return str(int(text))
    return ""


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds ``run_dir``'s lock (without taking it)."""
    path = Path(run_dir) / LOCK
    if fcntl is None or not path.exists():
        return False
    try:
        with RunLock(run_dir):
            return False
    except RunLocked:
        return True
