"""Paths a user typed: ``~`` expanded, and a clear error where it cannot be."""
from __future__ import annotations

import os
from pathlib import Path

from invkit.errors import InvkitError


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
