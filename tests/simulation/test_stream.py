"""simulate(): every kind of simulator end to end, the same pairs whatever the workers or the
cache, and a stream that a larger n extends."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from simkinds import KINDS, make_problem, prior, torch_process

from invkit.errors import InvkitError
from invkit.problem import ForwardProcess, Problem
from invkit.simulation import (
    BLOCK_NUMPY,
    BLOCK_PER_SAMPLE,
    BLOCK_TORCH,
    block_seed,
    default_block_size,
    external_program,
    simulate,
)

N, BS = 40, 16  # three blocks, the last one cut short


def _same(a, b):
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_gives_the_same_pairs_with_0_1_2_workers_and_with_a_cache(kind, tmp_path):
    problem = make_problem(kind, tmp_path, noise_std=0.05)
    ref = simulate(problem, N, seed=3, block_size=BS)
    assert ref.x.shape == (N, 2) and ref.y.shape == (N, problem.dim_y)
    assert ref.x.dtype == ref.y.dtype == torch.float32 and torch.isfinite(ref.y).all()
    assert (ref.requested, ref.simulated, ref.from_cache, ref.dropped) == (N, N, 0, 0)
    assert ref.process == problem.forward_process.name
    for workers in (1, 2):
        _same(ref, simulate(problem, N, seed=3, block_size=BS, workers=workers))
    cached = simulate(problem, N, seed=3, block_size=BS, workers=2, cache=tmp_path / "c")
    again = simulate(problem, N, seed=3, block_size=BS, cache=tmp_path / "c")
    _same(ref, cached)
    _same(ref, again)
    assert (again.simulated, again.from_cache) == (0, N)
    other = simulate(problem, N, seed=4, block_size=BS)
    assert not torch.equal(ref.x, other.x)


@pytest.mark.parametrize("kind", ["torch_generator", "numpy_generator", "global_rngs",
                                  "torch_global", "external"])
def test_a_stochastic_simulator_draws_its_noise_from_the_seed(kind, tmp_path):
    """Same x, other seed: the simulator's own noise changes (it is not fixed by x alone)."""
    problem = make_problem(kind, tmp_path)
    a = simulate(problem, 8, seed=1, block_size=8)
    b = simulate(problem, 8, seed=1, block_size=8)
    _same(a, b)
    gen = torch.Generator().manual_seed(block_seed(1, 0))
    x = problem.sample_prior(8, gen)
    assert torch.equal(x, a.x)
    y_other = problem.simulate(x, torch.Generator().manual_seed(12345))
    assert not torch.allclose(y_other, a.y)


def test_global_rng_simulators_leave_the_callers_rngs_untouched():
    np.random.seed(1)
    random.seed(1)
    torch.manual_seed(1)
    before = (np.random.get_state()[1].copy(), random.getstate(), torch.get_rng_state())
    for kind in ("global_rngs", "torch_global"):
        simulate(make_problem(kind), 24, seed=0, block_size=8)
    assert np.array_equal(before[0], np.random.get_state()[1])
    assert before[1] == random.getstate() and torch.equal(before[2], torch.get_rng_state())


def test_a_larger_n_extends_the_same_stream():
    problem = make_problem("torch")
    small, large = (simulate(problem, n, seed=0, block_size=BS) for n in (37, 80))
    assert torch.equal(small.x, large.x[:37]) and torch.equal(small.y, large.y[:37])
    noisy = make_problem("numpy_generator")
    small, large = (simulate(noisy, n, seed=0, block_size=BS) for n in (32, 80))
    assert torch.equal(small.x, large.x[:32]) and torch.equal(small.y, large.y[:32])
    cut = simulate(noisy, 37, seed=0, block_size=BS)  # the cut block keeps its x rows
    assert torch.equal(cut.x, large.x[:37]) and torch.equal(cut.y[:32], large.y[:32])


def test_blocks_do_not_depend_on_the_blocks_before_them(tmp_path):
    """A cache holding only some blocks (and a cut block of another n) changes nothing."""
    problem = make_problem("numpy_generator")
    ref = simulate(problem, 100, seed=5, block_size=BS)
    simulate(problem, 37, seed=5, block_size=BS, cache=tmp_path)
    mixed = simulate(problem, 100, seed=5, block_size=BS, cache=tmp_path)
    _same(ref, mixed)
    assert mixed.from_cache == 32 and mixed.simulated == 68


def test_block_seeds_are_distinct_63_bit_and_unrelated_across_neighbours():
    seeds = {block_seed(s, k) for s in range(30) for k in range(30)}
    assert len(seeds) == 900 and all(0 <= s < 2**63 for s in seeds)
    assert block_seed(1, 0) != block_seed(0, 1)
    assert block_seed(-1, 0) == block_seed(2**64 - 1, 0)


def test_default_block_size_follows_the_kind_of_process(tmp_path):
    assert default_block_size(torch_process()) == BLOCK_TORCH
    assert default_block_size(make_problem("numpy_generator").forward_process) == BLOCK_NUMPY
    assert default_block_size(make_problem("numpy_per_sample").forward_process) \
        == BLOCK_PER_SAMPLE
    prog = external_program(["prog"], 1, 1, name="p")
    assert default_block_size(prog) == 256
    assert default_block_size(external_program(["prog"], 1, 1, name="p", batched=False)) \
        == BLOCK_PER_SAMPLE
    result = simulate(make_problem("numpy_per_sample"), 40, seed=0)
    assert result.block_size == BLOCK_PER_SAMPLE


def test_the_result_counts_what_a_run_records():
    result = simulate(make_problem("torch"), 10, seed=2, block_size=4)
    counts = result.counts()
    assert counts["requested"] == counts["simulated"] == counts["returned"] == 10
    assert counts["problem"] == "toy_torch" and counts["process"] == "linear_sin"
    assert "x" not in counts and counts["seed"] == 2 and counts["block_size"] == 4


def test_bad_arguments_are_refused_before_anything_runs():
    problem = make_problem("torch")
    for kwargs, match in (({"nan_policy": "skip"}, "nan_policy"), ({"workers": -1}, "workers"),
                          ({"block_size": 0}, "block_size"), ({"block_size": 2.5}, "block_size")):
        with pytest.raises(InvkitError, match=match):
            simulate(problem, 10, 0, **kwargs)
    with pytest.raises(InvkitError, match="n=None"):
        simulate(problem, None, 0)


def test_a_process_with_the_wrong_shape_names_the_block():
    process = ForwardProcess("wide", 2, 1, lambda x: x)  # returns 2 columns, declares 1
    with pytest.raises(InvkitError, match=r"'wide'.*shape \(8, 2\) in block 0; expected \(8, 1\)"):
        simulate(Problem("p", prior(), process), 8, 0, block_size=8)


def test_a_problem_without_a_simulator_gives_its_stored_pairs():
    from invkit.problem import Simulations

    x = torch.arange(20.0).reshape(10, 2)
    y = x.sum(1, keepdim=True)
    y[3] = float("nan")
    problem = Problem("stored", simulations=Simulations(2, 1, lambda: (x, y)))
    with pytest.warns(UserWarning, match="1 of 10 simulations"):
        everything = simulate(problem, None, seed=0)
    assert everything.n == 9 and everything.from_file == 10 and everything.simulated == 0
    some = simulate(problem, 4, seed=0, nan_policy="drop")
    assert some.requested == 4 and some.n + some.dropped == 4
    assert torch.equal(some.x, simulate(problem, 4, seed=0).x)  # the same rows for a seed
    assert set(map(tuple, some.x.tolist())) <= set(map(tuple, x.tolist()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batched_torch_processes_run_on_the_device_and_per_sample_ones_on_the_cpu():
    torch_result = simulate(make_problem("torch"), 100, seed=0, device="cuda")
    assert torch_result.x.device.type == "cuda"
    cpu = simulate(make_problem("numpy_per_sample"), 40, seed=0)
    cuda = simulate(make_problem("numpy_per_sample"), 40, seed=0, device="cuda", workers=2)
    assert cuda.x.device.type == "cuda" and torch.equal(cpu.x, cuda.x.cpu())


def test_the_progress_bar_counts_simulations_from_the_cache_on(tmp_path, capsys):
    problem = make_problem("numpy_per_sample")
    simulate(problem, 40, seed=0, block_size=BS, cache=tmp_path)
    result = simulate(problem, 80, seed=0, block_size=BS, cache=tmp_path, progress=True,
                      workers=2)
    assert (result.from_cache, result.simulated) == (32, 48)
    assert "sims" in capsys.readouterr().err
