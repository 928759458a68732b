"""Shared fixtures: small configs and a temporary cache so tests never touch ~/.cache."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("INVKIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _threads():
    # CI machines have 2 cores; more threads than cores only adds contention
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def one_thread(_threads):
    """One torch thread and denormals kept (training flushes them; hypothesis needs them):
    tiny networks run fastest on one thread, and two threads on a shared 2-core machine can be
    10x slower (OpenMP barriers). Restored afterwards. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(False)
    yield
    torch.set_num_threads(before)
    torch.set_flush_denormal(False)
