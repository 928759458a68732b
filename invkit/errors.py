"""Exceptions whose messages are meant for the person at the keyboard.

The CLI prints an ``InvkitError`` as one paragraph without a traceback; anything else is a bug.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable


class InvkitError(Exception):
    """An error the user can act on: the message says what was wrong and how to fix it."""


class PluginError(InvkitError):
    """A plugin registered or produced something that breaks the plugin contract."""


class PluginHookError(PluginError):
    """A problem's ``metrics(ctx)`` or ``plots(ctx)`` hook raised or returned the wrong thing
    during evaluation (after training): ``problem`` and ``hook`` name which."""

    def __init__(self, message: str, problem: str = "", hook: str = "") -> None:
        super().__init__(message)
        self.problem, self.hook = problem, hook


class ConfigError(InvkitError):
    """A config key or value is unknown, mistyped or out of range."""


class CheckpointError(InvkitError):
    """A checkpoint is missing, truncated, corrupted or from an incompatible version."""


class TrainingDiverged(InvkitError):
    """A loss became NaN or infinite during training."""


class TrainingInterrupted(InvkitError):
    """Training stopped on Ctrl-C or SIGTERM after saving a checkpoint."""


class InvkitWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it)."""


def sentence(text: object) -> str:
    """``text`` as one sentence of a one-paragraph message: line breaks and runs of spaces
    collapsed, ending in exactly one full stop (none added after '.', '!' or '?')."""
    out = " ".join(str(text).split()).rstrip(" ,;:")
    if not out:
        return ""
    return out if out[-1] in ".!?" else out + "."


def join_sentences(*parts: object) -> str:
    """Sentences joined into one paragraph, each ending in one full stop; empty parts skipped.

    Messages quoted from elsewhere (an exception, another error) may or may not end in a full
    stop; joining through here never gives '..'.
    """
    return " ".join(s for s in (sentence(p) for p in parts) if s)


def suggest(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix with close matches, or an empty string."""
    matches = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"


def os_error_fix(exc: OSError) -> str:
    """What to do about an OS error, by its cause (a full disk is not a read-only one)."""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "The disk is full: free some space or choose another --out."
    if code == errno.EROFS:
        return "That file system is read-only: choose a writable --out."
    if code in (errno.EACCES, errno.EPERM):
        return "That location is not writable: choose a writable --out."
    if code in (errno.ENOENT, errno.ENOTDIR):
        return "Check the path: a folder in it does not exist."
    return "Check the path and the free space."


def os_error_message(exc: OSError) -> str:
    """One sentence for an OS error: what failed, on which file, and the fix."""
    where = f" ({exc.filename})" if exc.filename else ""
    what = exc.strerror or str(exc)
    return f"{what}{where}. {os_error_fix(exc)}"
