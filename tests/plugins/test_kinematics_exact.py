"""The arm's exact posterior: it solves the arm, is reproducible, matches closed forms, and is
what rejection ABC converges to as its tolerance shrinks."""

from __future__ import annotations

import math

import pytest
import torch

import invkit
from invkit.errors import InvkitError
from invkit.evaluation.metrics import err_post
from invkit.kernels import benchmark_kernel
from invkit.validation import check_problem
from invkit_abc import rejection_abc
from invkit_kinematics import arm
from invkit_kinematics.exact import reference_posterior, sample_posterior
from invkit_kinematics.exact_charts import chart_weights

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def prior_targets(m: int, seed: int = 0) -> torch.Tensor:
    return arm.forward(arm.sample_prior(m, gen(seed)))


def test_every_sample_reaches_its_target():
    edges = torch.tensor([[2.0, 0.1], [-2.0, -0.3], [2 - 1e-6, 0.0], [1.0, 0.0], [0.0, 2.5],
                          [1.95, 1.0], [0.5, -2.0]])  # stretched, critical y1, far from the prior
    y = torch.cat([prior_targets(24), edges])
    x = reference_posterior(y, 300, gen(1))
    assert x.shape == (len(y), 300, 4) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    resid = arm.forward(x.reshape(-1, 4).double()).reshape(len(y), 300, 2) - y.double()[:, None]
    assert resid.abs().max() < 1e-5
    resid32 = arm.forward(x.reshape(-1, 4)).reshape(len(y), 300, 2) - y[:, None]
    assert resid32.abs().max() < 1e-5


def test_fully_stretched_targets_are_the_limiting_point_mass():
    x = reference_posterior(torch.tensor([[2.0, 0.3], [-2.0, 0.1]]), 400, gen())
    assert torch.equal(x[0], torch.tensor([0.3, 0.0, 0.0, 0.0]).expand(400, 4))
    assert torch.equal(x[1, :, 0], torch.full((400,), 0.1)) and (x[1, :, 2:] == 0).all()
    assert torch.allclose(x[1, :, 1].abs(), torch.tensor(math.pi))
    assert 120 < int((x[1, :, 1] > 0).sum()) < 280  # a1 = +pi or -pi, equally likely


def test_out_of_reach_targets_are_named():
    y = torch.tensor([[1.0, 0.0], [2.5, 0.3], [-2.1, 0.0]])
    with pytest.raises(InvkitError, match=r"2 target\(s\) out of the arm's reach: target 1 "
                                          r"y=\(2\.5, 0\.3\); target 2 y=\(-2\.1, 0\)"):
        reference_posterior(y, 10, gen())
    with pytest.raises(InvkitError, match="target 0"):
        reference_posterior(torch.tensor([[math.nan, 0.0]]), 10, gen())
    with pytest.raises(InvkitError, match=r"shape \(m, 2\)"):
        reference_posterior(torch.zeros(3), 10, gen())


def test_reproducible_with_a_seed():
    y = prior_targets(5)
    a = reference_posterior(y, 200, gen(3))
    assert torch.equal(a, reference_posterior(y, 200, gen(3)))
    assert not torch.equal(a, reference_posterior(y, 200, gen(4)))


def test_batching_over_targets_changes_no_target_s_law():
    """A target's samples do not depend on which others share its batch (in law: the streams
    differ), checked on the mean of x1."""
    y = prior_targets(9, seed=2)
    alone = reference_posterior(y[:1], 4000, gen(5))[0]
    batch = reference_posterior(y, 4000, gen(6))[0]
    assert (alone.mean(0) - batch.mean(0)).abs().max() < 5 * alone.std(0).max() / math.sqrt(4000)


def test_chart_weights_are_a_partition_of_unity():
    a = torch.randn(10_000, 3, generator=gen(), dtype=torch.float64) * 2
    w = chart_weights(a)
    assert (w >= 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(10_000, dtype=torch.float64), atol=1e-12)
    # on chart 3's fold (last segment horizontal) its weight vanishes
    fold = torch.tensor([[0.3, 0.4, -0.7]], dtype=torch.float64)
    assert chart_weights(fold)[0, 2].abs() < 1e-30


def one_segment(y: torch.Tensor, sigma: tuple[float, ...]) -> tuple[list, float]:
    """Closed form for lengths (0, 0, 1): y1 = cos T, y2 = x1 + sin T, T = a1 + a2 + a3 ~
    N(0, 3 sa^2). Returns the roots tau (T up to 2 pi j) with their posterior probabilities,
    and p(y) = sum over roots of N(y2 - sin tau; s1) p_T(tau) / |sin tau|."""
    s1, sa = sigma[0], sigma[1]
    norm = torch.distributions.Normal
    roots, total = [], 0.0
    for sign in (1, -1):
        base = sign * math.acos(float(y[0]))
        for j in (-1, 0, 1):
            tau = base + 2 * math.pi * j
            dens = (norm(0.0, s1).log_prob(torch.tensor(float(y[1]) - math.sin(tau))).exp()
                    * norm(0.0, math.sqrt(3) * sa).log_prob(torch.tensor(tau)).exp()
                    / abs(math.sin(tau)))
            roots.append((tau, float(dens)))
            total += float(dens)
    return [(tau, d / total) for tau, d in roots], total


def test_one_segment_arm_matches_its_closed_form():
    """With l1 = l2 = 0 only the angles' sum T matters: the posterior picks a root of
    cos T = y1 with probability proportional to N(y2 - sin T) p(T), then spreads the angles as
    the prior given their sum, and x1 = y2 - sin T."""
    sigma = (1.0, 0.5, 0.5, 0.5)
    y = torch.tensor([[0.3, 0.1]])
    res = sample_posterior(y, 20_000, gen(2), lengths=(0.0, 0.0, 1.0), sigma=sigma)
    x = res.samples[0].double()
    roots, evidence = one_segment(y[0], sigma)
    assert res.evidence[0] == pytest.approx(evidence, rel=0.02)
    t = x[:, 1:].sum(1)
    assert torch.allclose(torch.cos(t), torch.full_like(t, 0.3), atol=1e-5)
    for tau, p in roots:
        mine = (t - tau).abs() < 1e-3
        frac = float(mine.double().mean())
        assert frac == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / 20_000) + 1e-4)
        if p > 0.2:  # given T = tau: mean tau / 3, variance sa^2 (1 - 1/3) for each angle
            a = x[mine, 1:]
            k = int(mine.sum())
            assert torch.allclose(a.mean(0), torch.full((3,), tau / 3, dtype=torch.float64),
                                  atol=5 * 0.41 / math.sqrt(k))
            assert torch.allclose(a.var(0), torch.full((3,), 0.25 * 2 / 3, dtype=torch.float64),
                                  rtol=0.08)
            assert torch.allclose(x[mine, 0], 0.1 - torch.sin(t[mine]), atol=1e-6)


def test_evidence_is_the_density_of_simulated_end_points():
    """sum of the weights / draws estimates p(y), the density of s(x) with x from the prior:
    checks the co-area factor 1 / |grad h| and the charts' weights, not only their shape."""
    y = torch.tensor([[1.9, 0.4], [1.5, 0.5], [1.2, -0.3]])
    res = sample_posterior(y, 100, gen())
    half, counts, total = 0.02, torch.zeros(3), 0
    g = gen(9)
    for _ in range(8):
        sims = arm.forward(arm.sample_prior(1_000_000, g))
        counts += ((sims[None] - y[:, None]).abs().amax(-1) < half).sum(1)
        total += 1_000_000
    density = counts / total / (2 * half) ** 2
    sd = density / counts.sqrt()
    assert ((res.evidence.float() - density).abs() < 4 * sd + 0.02 * density).all(), (
        res.evidence, density)


def test_ess_is_a_large_multiple_of_n_and_short_pools_warn():
    y = prior_targets(6, seed=4)
    res = sample_posterior(y, 500, gen())
    assert (res.ess >= 20 * 500).all()
    assert (res.pool >= res.ess).all()
    with pytest.warns(UserWarning, match=r"1 target\(s\) reached fewer than 1000 x 500"):
        sample_posterior(y[:1], 500, gen(), ess_ratio=1000, max_pool=8192)


def test_is_the_noise_free_problem_s_reference_and_only_that():
    problem = invkit.get_problem("kinematics")
    assert problem.reference_posterior is reference_posterior
    check_problem(problem, "test")
    noisy = invkit.get_registry().build_problem("kinematics", {"noise_std": 0.01})
    assert noisy.reference_posterior is None  # with noise, evaluation keeps using ABC


# -- rejection ABC converges to it -------------------------------------------------------------
def expected_floor(exact: torch.Tensor, n: int, m: int | None = None) -> float:
    """E Err_post between i.i.d. sets of n and m samples (m: default, the size of ``exact``)
    of the law ``exact`` samples: (1/n + 1/m) (k(0) - mean k(x, x')), the biased MMD^2's
    noise floor (mean k over the exact set's distinct pairs). Replicates scatter about it by
    ~40% at a few thousand samples."""
    x = exact.double()
    size = x.shape[0]
    m = m or size
    total = sum(float(benchmark_kernel(torch.cdist(x[i:i + 500], x) ** 2).sum())
                for i in range(0, size, 500))  # in row blocks: bounded memory
    k0 = float(benchmark_kernel(torch.zeros((), dtype=torch.float64)))
    mean_pair = (total - size * k0) / (size * (size - 1))
    return (1 / n + 1 / m) * (k0 - mean_pair)


def test_exact_sets_are_as_close_as_iid_sets():
    """Independent exact sets are, on average, as close as i.i.d. sets are (SIR's repeats, or
    samples shared between sets or targets, would show as more): twelve pairs of 1000, drawn
    in one batch of 24 copies of each target."""
    y = torch.tensor([[1.9, 0.4], [1.2, -0.3]])
    sets = reference_posterior(y.repeat(24, 1), 1000, gen(2)).view(12, 2, 2, 1000, 4)
    errs = torch.stack([err_post(pair[0], pair[1])[1] for pair in sets])
    big = reference_posterior(y, 4000, gen(1))
    floor = torch.tensor([expected_floor(big[i], 1000, 1000) for i in range(len(y))])
    ratio = errs.mean(0) / floor
    assert ((ratio > 0.7) & (ratio < 1.5)).all(), ratio


def abc_vs_exact(y: torch.Tensor, tolerances: list[float], budget: int, n: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Err_post of rejection ABC (n samples, the first n accepted) at each tolerance (rows)
    per target (columns) against 4000 exact samples, and each target's expected noise floor."""
    problem = invkit.get_problem("kinematics")
    exact = reference_posterior(y, 4000, gen(1))
    errs = torch.zeros(len(tolerances), len(y))
    for t, tol in enumerate(tolerances):
        res = rejection_abc(problem, y, tol, budget, generator=gen(100 + t), progress=False,
                            max_accept=n)
        assert min(res.counts) == n, f"ABC kept {res.counts} < {n} at tolerance {tol}"
        errs[t] = err_post(res.samples, exact)[1]
    floor = torch.tensor([expected_floor(exact[i], n) for i in range(len(y))])
    return errs, floor


def assert_converges(errs: torch.Tensor, floor: torch.Tensor) -> None:
    """Clearly off at the largest tolerance; as it shrinks, better or already within the
    floor's band; and at the smallest, down to the floor."""
    assert (errs[0] > 4 * floor).all(), (errs / floor)
    assert ((errs[1:] <= errs[:-1]) | (errs[1:] < 2.5 * floor)).all(), (errs / floor)
    assert (errs[-1] < 2.5 * floor).all(), (errs / floor)


def test_rejection_abc_converges_to_the_exact_posterior():
    """A nearly straight arm, a bent one, one reaching up (|y| = 2.19): 1000 samples each,
    6e7 simulations in all (three seconds)."""
    y = torch.tensor([[1.9, 0.4], [1.5, 0.5], [1.6, 1.5]])
    errs, floor = abc_vs_exact(y, [0.2, 0.1, 0.05, 0.025, 0.0125], 50_000_000, n=1000)
    assert_converges(errs, floor)


@pytest.mark.slow
def test_rejection_abc_converges_to_the_exact_posterior_at_small_tolerances():
    """The same down to tolerance 0.005 (3e8 simulations, about 15 s; deselect with
    ``-m "not slow"``)."""
    y = torch.tensor([[1.9, 0.4], [1.5, 0.5], [1.6, 1.5]])
    errs, floor = abc_vs_exact(y, [0.2, 0.1, 0.05, 0.02, 0.01, 0.005], 400_000_000, n=1000)
    assert_converges(errs, floor)
