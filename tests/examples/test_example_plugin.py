"""The example plugin in examples/invkit-linear-gaussian keeps working with the core.

CI installs the example and runs its own tests; this cheap check runs with the core's tests
even where the example is not installed, by registering the plugin module in code.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

from invkit.registry import Registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "invkit-linear-gaussian"


@pytest.fixture
def plugin(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    return importlib.import_module("invkit_linear_gaussian.plugin")


def test_entry_point_is_declared():
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "invkit-linear-gaussian"
    assert "invkit" in meta["project"]["dependencies"]
    eps = meta["project"]["entry-points"]["invkit"]
    assert eps == {"linear_gaussian": "invkit_linear_gaussian.plugin"}


def test_registers_and_builds_with_the_exact_posterior(plugin):
    reg = Registry()
    reg.add_plugin(plugin, name="linear_gaussian", distribution="invkit-linear-gaussian")
    assert reg.origin("problem", "linear_gaussian").distribution == "invkit-linear-gaussian"
    problem = reg.build_problem("linear_gaussian", {"noise_std": "0.2"})
    assert (problem.dim_x, problem.dim_y, problem.noise_std) == (3, 2, 0.2)
    y = torch.tensor([[0.5, -1.0], [0.0, 0.0]])
    samples = problem.reference_posterior(y, 50_000, torch.Generator().manual_seed(0))
    assert samples.shape == (2, 50_000, 3)
    # Gaussian conditioning: E[x | y] = A^T (A A^T + s^2 I)^-1 y
    model = importlib.import_module("invkit_linear_gaussian.model")
    a = model.make_matrix(2, 3, 0)
    mean = (a.T @ torch.linalg.solve(a @ a.T + 0.04 * torch.eye(2, dtype=a.dtype),
                                      y.double().T)).T
    torch.testing.assert_close(samples.double().mean(1), mean, atol=0.03, rtol=0)
