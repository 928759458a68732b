"""Shared by the training tests: a run stopped by SIGTERM at a chosen training step."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest


@pytest.fixture
def sigterm_at_step(monkeypatch) -> Callable[[int], Iterator[None]]:
    """``with sigterm_at_step(n): ...``: the cINN's n-th training forward pass sends SIGTERM,
    so the run inside stops at step n (saving a checkpoint) and raises TrainingInterrupted."""
    from invkit.training.cinn_objective import MaxLikelihoodObjective

    original = MaxLikelihoodObjective.forward

    @contextmanager
    def stop(n: int) -> Iterator[None]:
        calls = {"n": 0}

        def forward(self, *args, **kwargs):
            if self.training:
                calls["n"] += 1
                if calls["n"] == n:
                    os.kill(os.getpid(), signal.SIGTERM)
            return original(self, *args, **kwargs)

        with monkeypatch.context() as m:
            m.setattr(MaxLikelihoodObjective, "forward", forward)
            yield

    return stop
