"""Ctrl-C and SIGTERM during a run: a request to stop, honoured at a safe point.

While a run trains and saves, SIGINT and SIGTERM only set a flag (:class:`StopRequest`): the
training loop checks it once per step, saves a checkpoint and stops; a signal that arrives after
the last step lets the final save finish first. Nothing a run has trained is lost, and a run
directory in which training has run is never deleted. Under torchrun the ranks agree on the flag
every step (one tiny all-reduce), so a signal that reaches one rank stops them all at the same
step and no rank is left waiting in a collective.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class StopRequest:
    """Set by SIGINT / SIGTERM inside :func:`deferred`; ``requested`` names the signal."""

    def __init__(self) -> None:
        self.requested = ""

    def __bool__(self) -> bool:
        return bool(self.requested)


@contextmanager
def deferred() -> Iterator[StopRequest]:
    """Turn SIGINT/SIGTERM into a flag for the block's duration (main thread only; elsewhere
    signals keep their handlers and the flag stays unset)."""
    flag = StopRequest()
    previous = {}

    def handler(signum, frame):  # noqa: ARG001
        flag.requested = signal.Signals(signum).name

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: signals cannot be caught here
        previous = {}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
