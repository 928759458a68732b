"""The ABC baseline: correctness against brute force and a closed-form posterior, chunking."""

from __future__ import annotations

import math

import pytest
import torch

from invkit.errors import InvkitError
from invkit.problem import ForwardProcess, Prior, Problem
from invkit.registry import Registry
from invkit_abc import plugin as abc_plugin
from invkit_abc import quantile_abc, rejection_abc
from invkit_abc.stream import stream
from invkit_kinematics import plugin as kin_plugin
from invkit_kinematics.plots import COMPARISON_TARGETS

A = torch.tensor([[1.0, 0.5], [-0.3, 1.0]])
NOISE = 0.3


def linear_problem(noise_std: float = NOISE) -> Problem:
    """x ~ N(0, I_2), y = A x + N(0, noise_std^2 I): the posterior is Gaussian in closed form."""
    prior = Prior(
        "lin_prior", 2, lambda n, g: torch.randn((n, 2), generator=g, device=g.device)
    )
    forward = ForwardProcess("lin_forward", 2, 2, lambda x: x @ A.to(x).T)
    return Problem("linear", prior, forward, noise_std=noise_std)


def linear_posterior(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = A.double()
    cov = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + a.T @ a / NOISE**2)
    mean = (cov @ a.T @ y.double().T / NOISE**2).T
    return mean, cov


@pytest.fixture(scope="module")
def arm_problem() -> Problem:
    reg = Registry()
    reg.add_plugin(kin_plugin, name="kinematics")
    return reg.build_problem("kinematics")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def pool(problem: Problem, budget: int, seed: int, seed_block: int):
    """The exact simulations an ABC call with this seed sees, for brute-force comparisons."""
    chunks = list(stream(problem, budget, seed_block, seed_block, gen(seed)))
    x = torch.cat([p[0] for c in chunks for p in c])
    y = torch.cat([p[1] for c in chunks for p in c])
    return x, y


def test_rejection_acceptances_lie_within_tolerance(arm_problem: Problem) -> None:
    tol = 0.01
    res = rejection_abc(
        arm_problem, COMPARISON_TARGETS, tol, 1_000_000, generator=gen(), progress=False
    )
    assert res.n_simulations == 1_000_000
    assert sum(res.counts) > 50
    for target, x in zip(COMPARISON_TARGETS, res.samples, strict=True):
        if len(x):
            d = (arm_problem.simulate(x) - target).norm(dim=1)
            assert d.max() < tol + 1e-6


def many_targets(problem: Problem, m: int) -> torch.Tensor:
    """m observations of prior draws: enough targets to take the sorted-band path."""
    return problem.simulate(problem.sample_prior(m, gen(99)))


@pytest.mark.parametrize("m", [3, 40])
def test_rejection_equals_brute_force(arm_problem: Problem, m: int) -> None:
    """The filters drop nothing: the accepted set is exactly the brute-force one."""
    tol, budget, block = 0.05, 300_000, 2**14
    targets = COMPARISON_TARGETS[[1, 4, 5]] if m == 3 else many_targets(arm_problem, m)
    res = rejection_abc(
        arm_problem, targets, tol, budget, chunk_size=block, seed_block=block,
        generator=gen(7), progress=False,
    )
    x, y = pool(arm_problem, budget, 7, block)
    for target, got in zip(targets, res.samples, strict=True):
        d2 = ((y - target) ** 2).sum(1)
        want = x[d2 < tol**2]
        assert torch.equal(got, want)


def test_reach_prefilter_drops_nothing(arm_problem: Problem, monkeypatch) -> None:
    """Few targets take the one-coordinate prefilter; with duplicate and overlapping targets
    (shared coordinates, intervals that nest) the accepted set is still the brute-force one."""
    from invkit_abc.prefilter import Filter

    used = []
    original = Filter._within_reach

    def spy(self, p, thr):
        out = original(self, p, thr)
        used.append(out is not None)
        return out

    monkeypatch.setattr(Filter, "_within_reach", spy)
    targets = torch.tensor([[1.5, 0.5], [1.5, 0.5], [1.5, 0.51], [1.505, 0.0], [1.9, 0.4],
                            [1.0, 1.0]])
    tol, budget, block = 0.02, 400_000, 2**14
    res = rejection_abc(arm_problem, targets, tol, budget, chunk_size=block, seed_block=block,
                        generator=gen(11), progress=False)
    assert used and all(used)
    x, y = pool(arm_problem, budget, 11, block)
    for target, got in zip(targets, res.samples, strict=True):
        want = x[((y - target) ** 2).sum(1) < tol**2]
        assert len(want) > 0 and torch.equal(got, want)


@pytest.mark.parametrize("m", [9, 40])
def test_quantile_equals_brute_force(arm_problem: Problem, m: int) -> None:
    k, budget, block = 300, 200_000, 2**13
    targets = COMPARISON_TARGETS if m == 9 else many_targets(arm_problem, m)
    res = quantile_abc(
        arm_problem, targets, k, budget, chunk_size=4 * block, seed_block=block,
        generator=gen(3), progress=False,
    )
    x, y = pool(arm_problem, budget, 3, block)
    for i, target in enumerate(targets):
        d2 = ((y - target) ** 2).sum(1)
        order = torch.argsort(d2)[:k]
        assert torch.equal(res.samples[i], x[order])
        assert res.info["tolerance"][i] == pytest.approx(float(d2[order[-1]].sqrt()), rel=1e-6)


def test_quantile_matches_closed_form_posterior() -> None:
    y = torch.tensor([[0.0, 0.0], [1.0, -0.5], [-1.2, 0.8]])
    res = quantile_abc(linear_problem(), y, 2000, 2_000_000, generator=gen(), progress=False)
    mean, cov = linear_posterior(y)
    for i in range(len(y)):
        x = res.samples[i].double()
        assert x.shape == (2000, 2)
        assert torch.allclose(x.mean(0), mean[i], atol=0.03)
        assert torch.allclose(torch.cov(x.T), cov, atol=0.015)
    assert max(res.info["tolerance"]) < 0.1


def test_rejection_matches_closed_form_posterior() -> None:
    y = torch.tensor([[0.5, 0.5]])
    res = rejection_abc(linear_problem(), y, 0.05, 2_000_000, generator=gen(1), progress=False)
    mean, cov = linear_posterior(y)
    x = res.samples[0].double()
    assert x.shape[0] > 1000  # expected about 1700
    assert torch.allclose(x.mean(0), mean[0], atol=0.03)
    assert torch.allclose(torch.cov(x.T), cov, atol=0.02)


@pytest.mark.parametrize("method", ["rejection", "quantile"])
def test_results_do_not_depend_on_chunk_size(arm_problem: Problem, method: str) -> None:
    def run(chunk: int):
        if method == "rejection":
            return rejection_abc(
                arm_problem, COMPARISON_TARGETS, 0.03, 300_000, chunk_size=chunk,
                seed_block=2**13, generator=gen(5), progress=False,
            )
        return quantile_abc(
            arm_problem, COMPARISON_TARGETS, 200, 300_000, chunk_size=chunk, seed_block=2**13,
            generator=gen(5), progress=False,
        )

    a, b = run(2**13), run(2**17)
    assert a.n_simulations == b.n_simulations == 300_000
    for sa, sb in zip(a.samples, b.samples, strict=True):
        assert torch.equal(sa, sb)


class _Recording:
    """Wraps a problem and records the batch sizes it is asked to simulate."""

    def __init__(self, problem: Problem) -> None:
        self.problem, self.sizes = problem, []
        self.name, self.dim_x, self.dim_y = problem.name, problem.dim_x, problem.dim_y

    def sample_prior(self, n: int, g: torch.Generator) -> torch.Tensor:
        self.sizes.append(n)
        return self.problem.sample_prior(n, g)

    def simulate(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self.problem.simulate(x, g)


def test_memory_bounded_by_chunk_not_budget() -> None:
    """A budget many times the chunk streams through in chunk-sized pieces; kept state is m*k."""
    problem = _Recording(linear_problem())
    budget, block = 2_000_003, 4096
    res = quantile_abc(
        problem, torch.zeros(4, 2), 50, budget, chunk_size=block, seed_block=block,
        generator=gen(), progress=False,
    )
    assert res.n_simulations == budget
    assert max(problem.sizes) == block
    assert len(problem.sizes) == math.ceil(budget / block)
    assert res.counts == [50] * 4
    res = rejection_abc(
        problem, torch.zeros(2), 0.01, budget, chunk_size=block, seed_block=block,
        generator=gen(), progress=False,
    )
    assert res.n_simulations == budget and max(problem.sizes) == block


def test_max_accept_stops_early_and_keeps_first_acceptances(arm_problem: Problem) -> None:
    targets = COMPARISON_TARGETS[[2, 5]]
    kw = dict(chunk_size=2**14, seed_block=2**14, progress=False)
    full = rejection_abc(arm_problem, targets, 0.02, 2_000_000, generator=gen(2), **kw)
    assert min(full.counts) > 40
    short = rejection_abc(
        arm_problem, targets, 0.02, 2_000_000, generator=gen(2), max_accept=20, **kw
    )
    assert short.counts == [20, 20]
    assert short.n_simulations < full.n_simulations and short.info["stopped_early"]
    for a, b in zip(short.samples, full.samples, strict=True):
        assert torch.equal(a, b[:20])


def test_min_accept_warning_names_the_short_targets(arm_problem: Problem) -> None:
    targets = torch.tensor([[1.9, 0.4], [1.0, 0.5]])  # dense, sparse
    with pytest.warns(UserWarning, match=r"1 of 2 targets.*target 1 y=\(1, 0.5\)"):
        res = rejection_abc(
            arm_problem, targets, 0.005, 200_000, generator=gen(), progress=False,
            min_accept=5,
        )
    assert res.counts[0] >= 5 and res.counts[1] < 5
    assert len(res.info["warnings"]) == 1 and "Raise the budget" in res.info["warnings"][0]


def test_invalid_inputs_raise_actionable_errors(arm_problem: Problem) -> None:
    kw = dict(generator=gen(), progress=False)
    with pytest.raises(InvkitError, match=r"shape \(m, 2\)"):
        rejection_abc(arm_problem, torch.zeros(3, 4), 0.01, 1000, **kw)
    with pytest.raises(InvkitError, match="tolerance"):
        rejection_abc(arm_problem, torch.zeros(1, 2), -1.0, 1000, **kw)
    with pytest.raises(InvkitError, match="budget"):
        rejection_abc(arm_problem, torch.zeros(1, 2), 0.1, 0, **kw)
    with pytest.raises(InvkitError, match="raise the budget"):
        quantile_abc(arm_problem, torch.zeros(1, 2), 100, 50, **kw)


def test_quantile_skips_invalid_simulations() -> None:
    base = linear_problem(0.0)
    forward = ForwardProcess(
        "nan_forward", 2, 2,
        lambda x: torch.where(x[:, :1] > 0, torch.nan, x @ A.to(x).T),
    )
    problem = Problem("nan_linear", base.prior, forward)
    res = quantile_abc(problem, torch.zeros(2, 2), 100, 100_000, generator=gen(), progress=False)
    assert res.counts == [100, 100]
    assert all(torch.isfinite(s).all() and (s[:, 0] <= 0).all() for s in res.samples)


def test_registered_baseline_runs_both_methods(arm_problem: Problem) -> None:
    reg = Registry()
    reg.add_plugin(abc_plugin, name="abc")
    baseline = reg.baseline("abc")
    opts = {**baseline.options, "budget": 300_000, "min_accept": 0}
    y = COMPARISON_TARGETS[[5, 8]]
    res = baseline.run(arm_problem, y, 30, {**opts, "tolerance": 0.02}, gen())
    assert res.counts == [30, 30] and res.n_simulations <= 300_000 and res.wall_time_s > 0
    res = baseline.run(arm_problem, y, 30, {**opts, "method": "quantile"}, gen())
    assert res.counts == [30, 30] and res.n_simulations == 300_000
    assert res.info["method"] == "quantile"
    with pytest.raises(InvkitError, match="Did you mean 'quantile'"):
        baseline.run(arm_problem, y, 30, {**opts, "method": "quantil"}, gen())
    with pytest.raises(InvkitError, match="no option 'budjet'"):
        baseline.run(arm_problem, y, 30, {"budjet": 10}, gen())


def test_progress_bar_runs(arm_problem: Problem, capsys: pytest.CaptureFixture[str]) -> None:
    res = quantile_abc(arm_problem, COMPARISON_TARGETS[:1], 10, 100_000, generator=gen(),
                       progress=True)
    assert res.counts == [10]
    assert "sims" in capsys.readouterr().err
