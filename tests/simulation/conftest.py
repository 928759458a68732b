"""The problems here are built in code: keep invkit's registry (and its plugins) out of the way
unless a test asks for it."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_registry_lookups(monkeypatch):
    """Problems here are built in code: keep the registry out of the way (and fast)."""
    monkeypatch.setenv("INVKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    import invkit.registry as registry

    monkeypatch.setattr(registry, "_DEFAULT", None)
    yield
    monkeypatch.setattr(registry, "_DEFAULT", None)
