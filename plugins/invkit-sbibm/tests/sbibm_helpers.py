"""Helpers shared by the test modules (a module of its own, not conftest, so that it cannot be
confused with another suite's conftest when several run in one pytest session)."""

from __future__ import annotations

import pytest
import torch

from invkit_sbibm import data

requires_sbibm = pytest.mark.skipif(
    not data.is_installed(),
    reason=f"sbibm's data files are not installed ({data.INSTALL_COMMAND})",
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
