"""invkit.simulators: how a forward process of any kind is called (shapes, types, seeds)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from simkinds import (
    global_rngs_process,
    numpy_generator_process,
    numpy_per_sample_process,
    prior,
    torch_generator_process,
    torch_global_process,
    torch_process,
)

from invkit.errors import PluginError
from invkit.problem import ForwardProcess, Problem
from invkit.simulators import call, draw_seed, global_rngs_seeded
from invkit.validation import check_problem

PROCESSES = [torch_process, torch_generator_process, numpy_generator_process,
             numpy_per_sample_process, global_rngs_process, torch_global_process]


def _x(n=5, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("make", PROCESSES, ids=lambda f: f.__name__)
def test_every_kind_maps_a_batch_to_float32_rows(make):
    process = make()
    y = call(process, _x(), torch.Generator().manual_seed(1))
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    assert y.shape == (5, process.dim_y) and torch.isfinite(y).all()


@pytest.mark.parametrize("make", PROCESSES, ids=lambda f: f.__name__)
def test_the_same_generator_seed_gives_the_same_simulations(make):
    process = make()
    a = call(process, _x(), torch.Generator().manual_seed(7))
    b = call(process, _x(), torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    if process.stochastic:
        c = call(process, _x(), torch.Generator().manual_seed(8))
        assert not torch.equal(a, c)


def test_a_process_with_one_output_may_return_one_number_per_sample():
    numpy = ForwardProcess("s", 2, 1, lambda x: x.sum(1), backend="numpy")
    assert call(numpy, _x(4)).shape == (4, 1)
    for backend in ("numpy", "torch"):
        per_sample = ForwardProcess("s", 2, 1, lambda row: float(row.sum()), backend=backend,
                                    vectorized=False)
        assert call(per_sample, _x(4)).shape == (4, 1)


def test_a_batched_torch_process_must_return_n_by_dim_y():
    """Batched torch results pass through untouched (no copy on the hot path), so the first-use
    check refuses (n,) when the problem is built, with the shape it expects."""
    process = ForwardProcess("flat", 2, 1, lambda x: x.sum(1))
    assert call(process, _x(4)).shape == (4,)
    with pytest.raises(PluginError, match=r"'flat' returned shape \(16,\); expected \(16, 1\)"):
        check_problem(Problem("p", prior(), process), "test")


@pytest.mark.parametrize("vectorized", [True, False])
def test_a_wrong_shape_names_the_process_and_the_expected_shape(vectorized):
    fn = (lambda x: x) if vectorized else (lambda row: row)
    process = ForwardProcess("bad_shape", 2, 3, fn, backend="numpy", vectorized=vectorized)
    with pytest.raises(ValueError, match=r"'bad_shape' returned shape \(4, 2\).*\(4, 3\)"):
        call(process, _x(4))


def test_numpy_processes_get_float64_and_their_own_generator():
    seen = {}

    def fn(x, rng):
        seen["dtype"], seen["rng"] = x.dtype, rng
        return x

    call(ForwardProcess("n", 2, 2, fn, backend="numpy", rng="generator"), _x(),
         torch.Generator().manual_seed(0))
    assert seen["dtype"] == np.float64 and isinstance(seen["rng"], np.random.Generator)


def test_global_rngs_are_seeded_inside_and_restored_after():
    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    before = (np.random.get_state()[1].copy(), random.getstate(), torch.get_rng_state())
    for make in (global_rngs_process, torch_global_process):
        call(make(), _x(), torch.Generator().manual_seed(3))
    after = (np.random.get_state()[1], random.getstate(), torch.get_rng_state())
    assert np.array_equal(before[0], after[0]) and before[1] == after[1]
    assert torch.equal(before[2], after[2])


def test_global_rngs_seeded_gives_the_same_draws_for_the_same_seed():
    with global_rngs_seeded(5):
        a = (np.random.rand(), random.random(), torch.rand(1))
    with global_rngs_seeded(5):
        b = (np.random.rand(), random.random(), torch.rand(1))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_draw_seed_is_63_bits_from_the_generator():
    g = torch.Generator().manual_seed(0)
    seeds = [draw_seed(g) for _ in range(50)]
    assert all(0 <= s < 2**63 for s in seeds) and len(set(seeds)) == 50
    assert seeds[0] == draw_seed(torch.Generator().manual_seed(0))


def test_only_batched_deterministic_torch_processes_are_differentiable():
    assert torch_process().differentiable
    for make in PROCESSES[1:]:
        assert not make().differentiable
    x = _x().requires_grad_()
    call(torch_process(), x).sum().backward()
    assert x.grad is not None


def test_problem_simulate_adds_the_observation_noise_from_the_generator():
    problem = Problem("p", prior(), torch_process(), noise_std=0.5)
    a = problem.simulate(_x(), torch.Generator().manual_seed(1))
    b = problem.simulate(_x(), torch.Generator().manual_seed(1))
    clean = call(torch_process(), _x())
    assert torch.equal(a, b) and not torch.allclose(a, clean)
