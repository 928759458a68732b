"""Paths a user typed: ``~`` expanded, and a clear error where it cannot be."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from invkit.errors import InvkitError, suggest


def user_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded.

    pathlib raises a bare ``RuntimeError`` for ``~nosuchuser`` (or ``~`` without a home
    directory); a user gets the path back with what to do instead.
    """
    p = Path(path)
    try:
        return p.expanduser()
    except RuntimeError:
        raise InvkitError(f"Cannot expand {str(p)!r}: no home directory is known for "
                          f"{p.parts[0]!r}. Write the path out in full (from / on) if the "
                          f"'~' is part of a folder's name.") from None


def existing_file(path: str | os.PathLike[str], what: str, formats: Sequence[str],
                  label: str = "") -> Path:
    """``path`` (``~`` expanded) if it is an existing file of one of ``formats``; otherwise an
    error that names ``what`` it should hold, the formats, and a close name in its folder.

    ``label`` prefixes the path in messages (the option it came from, e.g. ``--y-file``).
    """
    p = user_path(path)
    name = f"{label} {str(p)!r}" if label else repr(str(p))
    if p.suffix.lower() not in formats:
        raise InvkitError(f"{name}: files of {what} are {', '.join(formats)}; this one ends in "
                          f"{p.suffix or '(nothing)'!r}.")
    if not p.exists():
        try:
            near = suggest(p.name, [q.name for q in p.parent.iterdir()])
        except OSError:
            near = ""
        raise InvkitError(f"The file of {what} {str(p)!r} does not exist.{near} Give its path "
                          f"(relative paths start in the current folder).")
    if p.is_dir():
        raise InvkitError(f"{str(p)!r} is a folder; name a file of {what} "
                          f"({', '.join(formats)}).")
    return p
