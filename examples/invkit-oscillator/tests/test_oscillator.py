"""The plain numpy simulator, and the plugin through invkit: discovered, reproducible from
invkit's seed whatever the number of workers, and trained end to end at a tiny budget."""

from __future__ import annotations

import json

import invkit
import numpy as np
import pytest
import torch
from invkit.cli.main import main
from invkit.simulation import simulate

from invkit_oscillator import model


def test_the_simulator_is_plain_numpy_with_its_own_generator():
    x = np.array([[0.0, 0.2], [0.3, 0.5]])
    a = model.simulate(x, np.random.default_rng(1))
    b = model.simulate(x, np.random.default_rng(1))
    assert a.shape == (2, model.TIMES.size) and np.array_equal(a, b)
    assert np.abs(a - model.positions(x)).max() < 6 * model.NOISE


def test_discovered_through_its_entry_point():
    reg = invkit.get_registry()
    assert reg.origin("problem", "oscillator").distribution == "invkit-oscillator"
    problem = invkit.get_problem("oscillator")
    assert (problem.dim_x, problem.dim_y) == (2, 8)
    assert problem.forward_process.backend == "numpy"


@pytest.mark.parametrize("workers", [0, 2])
def test_simulations_reproduce_from_the_seed(workers):
    problem = invkit.get_problem("oscillator")
    one = simulate(problem, 500, seed=3)
    other = simulate(problem, 500, seed=3, workers=workers)
    assert torch.equal(one.x, other.x) and torch.equal(one.y, other.y)
    assert not torch.equal(one.y, simulate(problem, 500, seed=4).y)


def test_trains_end_to_end(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "oscillator", "--preset", "quick", "--quiet", "--threads", "1",
                 "--set", "data.simulations=2000", "--set", "train.steps=50",
                 "--set", "eval.plots=false", "--set", "eval.reference=none",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # the budget, less invkit's default 10% validation split
    assert (metrics["simulations"]["train"], metrics["simulations"]["validation"]) == (1800, 200)
    post = invkit.load(out)
    x = post.sample(model.positions(np.array([[0.1, 0.3]]))[0], 100)
    assert x.shape == (100, 2)
