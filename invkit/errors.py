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


class ConfigError(InvkitError):
    """A config key or value is unknown, mistyped or out of range."""


class CheckpointError(InvkitError):
    """A checkpoint is missing, truncated, corrupted or from an incompatible version."""


class TrainingDiverged(InvkitError):
    """A loss became NaN or infinite during training."""


class InvkitWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it)."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix with close matches, or an empty string."""
    matches = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"
