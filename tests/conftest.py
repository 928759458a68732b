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
