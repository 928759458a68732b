"""Exceptions whose messages are meant for the person at the keyboard.

The CLI prints an ``InvkitError`` as one paragraph without a traceback; anything else is a bug.
"""

from __future__ import annotations

import difflib
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
