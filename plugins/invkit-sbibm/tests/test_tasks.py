"""The tasks' priors and simulators: contract (shapes, dtypes, seeds, per-sample noise) and
statistics against sbibm 1.1.0's definitions. None of these need sbibm installed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from invkit_sbibm import tasks
from invkit_sbibm.tasks import TASKS, get_task
from sbibm_helpers import gen

ALL = sorted(TASKS)


def sd_of_mean(var: float, n: int) -> float:
    return math.sqrt(var / n)


# -- contract, for every task ------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_shapes_dtypes_and_finiteness(name):
    task = get_task(name)
    theta = task.sample_prior(500, gen(0))
    assert theta.shape == (500, task.dim_theta) and theta.dtype == torch.float32
    x = task.simulate(theta, gen(1))
    assert x.shape == (500, task.dim_x) and x.dtype == torch.float32
    assert torch.isfinite(theta).all() and torch.isfinite(x).all()
    lp = task.prior.log_prob(theta)
    assert lp.shape == (500,) and torch.isfinite(lp).all()


@pytest.mark.parametrize("name", ALL)
def test_seeded_generator_reproduces_and_other_seeds_differ(name):
    task = get_task(name)
    runs = []
    for seed in (3, 3, 4):
        g = gen(seed)
        theta = task.sample_prior(64, g)
        runs.append((theta, task.simulate(theta, g)))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][0], runs[2][0])
    assert not torch.equal(runs[0][1], runs[2][1])


@pytest.mark.parametrize("name", ALL)
def test_global_rngs_are_untouched(name):
    task = get_task(name)
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    g = gen(0)
    task.simulate(task.sample_prior(16, g), g)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state)


@pytest.mark.parametrize("name", ALL)
def test_noise_is_drawn_per_sample_not_per_batch(name):
    task = get_task(name)
    theta = task.sample_prior(1, gen(0)).expand(200, -1).contiguous()
    x = task.simulate(theta, gen(1))
    # one parameter repeated: every row is a fresh simulation
    assert torch.unique(x, dim=0).shape[0] > 150  # spike trains may repeat, reals never


@pytest.mark.parametrize("name", ALL)
def test_a_batch_equals_its_rows_in_distribution_and_sizes_work(name):
    task = get_task(name)
    for n in (0, 1, 7):
        g = gen(n)
        x = task.simulate(task.sample_prior(n, g), g)
        assert x.shape == (n, task.dim_x)


def test_bad_theta_is_refused_with_the_expected_shape():
    task = get_task("slcp")
    with pytest.raises(ValueError, match=r"\(n, 5\)"):
        task.simulate(torch.zeros(4), gen())
    with pytest.raises(ValueError, match=r"\(n, 5\)"):
        task.simulate(torch.zeros(4, 3), gen())
    with pytest.raises(KeyError, match="implemented"):
        get_task("lotka_volterra")


def test_float64_theta_gives_float64_data():
    for name in ("two_moons", "slcp", "gaussian_mixture", "bernoulli_glm"):
        task = get_task(name)
        theta = task.sample_prior(8, gen()).double()
        assert task.simulate(theta, gen()).dtype == torch.float64


# -- priors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in ALL if isinstance(TASKS[n].prior, tasks.BoxUniform)])
def test_uniform_priors(name):
    prior = get_task(name).prior
    theta = prior.sample(100_000, gen(5))
    assert theta.min() >= prior.low and theta.max() < prior.high
    width = prior.high - prior.low
    mid = (prior.high + prior.low) / 2
    tol = 5 * sd_of_mean(width**2 / 12, 100_000)
    assert (theta.mean(0) - mid).abs().max() < tol
    assert ((theta.var(0) / (width**2 / 12)) - 1).abs().max() < 0.02
    ref = torch.distributions.Uniform(prior.low, prior.high)
    torch.testing.assert_close(prior.log_prob(theta[:100]), ref.log_prob(theta[:100]).sum(-1))
    outside = theta[:3].clone()
    outside[0, 0], outside[1, -1], outside[2, 0] = prior.high, prior.low - 1e-3, prior.high + 1
    assert torch.isinf(prior.log_prob(outside)).all()
    assert torch.isfinite(prior.log_prob(torch.full((1, prior.dim), prior.low)))


@pytest.mark.parametrize("name", ["gaussian_linear", "bernoulli_glm"])
def test_gaussian_priors(name):
    prior = get_task(name).prior
    cov = prior.covariance
    theta = prior.sample(200_000, gen(6)).double()
    emp = torch.cov(theta.T)
    scale = cov.diagonal().sqrt()
    # covariance entries within 5 sd of their estimate (var of an entry ~ (s_i s_j)^2 2 / n)
    tol = 5 * math.sqrt(2 / 200_000) * torch.outer(scale, scale)
    assert ((emp - cov).abs() <= tol).all()
    assert (theta.mean(0).abs() <= 5 * scale / math.sqrt(200_000)).all()
    ref = torch.distributions.MultivariateNormal(torch.zeros(prior.dim, dtype=torch.float64),
                                                 precision_matrix=prior.precision)
    torch.testing.assert_close(prior.log_prob(theta[:100].float()).double(),
                               ref.log_prob(theta[:100].float().double()), rtol=1e-5,
                               atol=1e-4)


def test_gaussian_linear_prior_is_variance_point_one():
    # sbibm's "prior_scale" 0.1 enters as precision 1 / 0.1: a variance, std 0.316
    cov = get_task("gaussian_linear").prior.covariance
    torch.testing.assert_close(cov, 0.1 * torch.eye(10, dtype=torch.float64))


def test_glm_prior_precision_definition():
    p = tasks.glm_prior_precision()
    m = 9
    d = np.eye(m) - np.eye(m, k=-1)
    f = d @ d + np.diag(np.sqrt(np.arange(m) / m))
    expected = np.zeros((10, 10))
    expected[0, 0] = 0.5
    expected[1:, 1:] = f.T @ f
    np.testing.assert_allclose(p.numpy(), expected, atol=1e-6)


# -- two moons ---------------------------------------------------------------------------------
def _moon_residual(theta: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, v): x minus the theta-dependent shift, relative to the crescent's centre."""
    z0 = (theta[:, 0] + theta[:, 1]) / math.sqrt(2)
    z1 = (theta[:, 1] - theta[:, 0]) / math.sqrt(2)
    return x[:, 0] + z0.abs() - 0.25, x[:, 1] - z1


def test_two_moons_geometry():
    task = get_task("two_moons")
    g = gen(7)
    theta = task.sample_prior(100_000, g).double()
    x = task.simulate(theta, g)
    u, v = _moon_residual(theta, x)
    r, angle = torch.hypot(u, v), torch.atan2(v, u)
    assert (u >= 0).all()  # a right half circle: angles in (-pi/2, pi/2)
    assert abs(r.mean() - 0.1) < 5 * 0.01 / math.sqrt(1e5)
    assert abs(r.std() / 0.01 - 1) < 0.02
    assert angle.abs().max() < math.pi / 2
    assert abs(angle.mean()) < 5 * math.sqrt(math.pi**2 / 12 / 1e5)
    assert abs(angle.var() / (math.pi**2 / 12) - 1) < 0.02
    assert abs(torch.corrcoef(torch.stack([r, angle]))[0, 1]) < 0.02


def test_two_moons_mirror_symmetry():
    # x depends on |z0|: theta and its mirror image (-theta1, -theta0) simulate identically,
    # which is what makes the posterior two moons
    task = get_task("two_moons")
    theta = task.sample_prior(1000, gen(8))
    mirror = torch.stack([-theta[:, 1], -theta[:, 0]], dim=1)
    torch.testing.assert_close(task.simulate(theta, gen(9)), task.simulate(mirror, gen(9)))


# -- Gaussian linear ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gaussian_linear", "gaussian_linear_uniform"])
def test_gaussian_linear_noise(name):
    task = get_task(name)
    n = 100_000
    theta = task.sample_prior(n, gen(10))
    noise = (task.simulate(theta, gen(11)) - theta).double()
    assert noise.mean(0).abs().max() < 5 * sd_of_mean(0.1, n)
    cov = torch.cov(noise.T)
    tol = 5 * 0.1 * math.sqrt(2 / n)
    assert (cov - 0.1 * torch.eye(10, dtype=torch.float64)).abs().max() < tol
    # the noise does not depend on theta
    torch.testing.assert_close(task.simulate(theta * 0, gen(11)).double(), noise, atol=1e-5,
                               rtol=0)


# -- Gaussian mixture --------------------------------------------------------------------------
def test_gaussian_mixture_index_is_drawn_per_sample():
    """sbibm's simulator once drew ONE mixture index per batch; here every sample gets its own,
    shared by its two coordinates."""
    task = get_task("gaussian_mixture")
    n = 20_000
    theta = task.sample_prior(n, gen(12))
    d = (task.simulate(theta, gen(13)) - theta).double()
    # rows within 0.5 of theta in both coordinates: all narrow ones (5 sd) and
    # (2 Phi(0.5) - 1)^2 = 0.1466 of the wide ones -> 0.5733 in all; a per-batch index gives
    # about 1.0 or 0.147
    inner = (d.abs().max(1).values < 0.5).double().mean()
    expected = 0.5 + 0.5 * math.erf(0.5 / math.sqrt(2)) ** 2
    assert abs(inner - expected) < 5 * math.sqrt(expected * (1 - expected) / n)
    assert abs(d.var() / 0.505 - 1) < 0.05
    # both coordinates share the index: far off in one -> wide in the other too
    wide_rows = d[:, 0].abs() > 1.0
    mean_abs = d[wide_rows, 1].abs().mean()
    assert abs(mean_abs - math.sqrt(2 / math.pi)) < 0.03  # 0.44 with independent indices
    # and small batches, down to one sample per call, still mix both components
    g = gen(14)
    small = torch.cat([task.simulate(torch.zeros(1, 2), g) for _ in range(400)])
    narrow = (small.abs().max(1).values < 0.5).double().mean()
    assert 0.45 < narrow < 0.70


# -- SLCP --------------------------------------------------------------------------------------
def test_slcp_draws_are_iid_gaussians_with_the_defined_covariance():
    task = get_task("slcp")
    theta = torch.tensor([[0.7, -1.2, 1.3, -0.8, 0.6]])
    n = 50_000
    x = task.simulate(theta.expand(n, -1).contiguous(), gen(15)).double().reshape(n, 4, 2)
    s1, s2, rho = 1.3**2, 0.8**2, math.tanh(0.6)
    cov = torch.tensor([[s1**2 + 1e-6, rho * s1 * s2], [rho * s1 * s2, s2**2 + 1e-6]],
                       dtype=torch.float64)
    points = x.reshape(-1, 2)
    m = points.shape[0]
    assert (points.mean(0) - torch.tensor([0.7, -1.2], dtype=torch.float64)).abs().max() < (
        5 * math.sqrt(s1**2 / m))
    emp = torch.cov(points.T)
    assert ((emp - cov).abs() < 5 * math.sqrt(2 / m) * torch.outer(cov.diagonal().sqrt(),
                                                                   cov.diagonal().sqrt())).all()
    # the four draws of one simulation are independent
    corr = torch.corrcoef(torch.cat([x[:, 0], x[:, 1]], dim=1).T)
    assert corr[:2, 2:].abs().max() < 5 / math.sqrt(n)


def test_slcp_is_finite_and_accurate_at_the_prior_corners():
    task = get_task("slcp")
    corners = torch.tensor([[0.0, 0.0, 3.0, 3.0, 3.0], [0.0, 0.0, 3.0, -3.0, -3.0],
                            [0.0, 0.0, 0.0, 3.0, 3.0], [0.0, 0.0, 3.0, 0.0, 3.0]])
    n = 20_000
    x = task.simulate(corners.repeat_interleave(n, 0), gen(16)).double()
    pts = x.reshape(4, n * 4, 2)
    assert torch.isfinite(pts).all()
    for i, c in enumerate(corners.double()):
        s1, s2, rho = float(c[2]) ** 2, float(c[3]) ** 2, math.tanh(float(c[4]))
        var = torch.tensor([s1**2 + 1e-6, s2**2 + 1e-6], dtype=torch.float64)
        emp = pts[i].var(0)
        assert ((emp / var - 1).abs() < 0.05).all(), (i, emp, var)
        if s1 > 0 and s2 > 0:
            assert abs(torch.corrcoef(pts[i].T)[0, 1] - rho) < 0.01


# -- SLCP with distractors ---------------------------------------------------------------------
def test_slcp_distractors_embed_slcp_and_permute_columns():
    task, base = get_task("slcp_distractors"), get_task("slcp")
    theta = task.sample_prior(300, gen(17))
    x = task.simulate(theta, gen(18))
    perm = tasks.slcp_distractor_constants()[2]
    informative = perm < 8
    assert int(informative.sum()) == 8
    # the SLCP part comes first from the generator: same seed, same values, moved to perm's
    # positions
    torch.testing.assert_close(x[:, informative], base.simulate(theta, gen(18))[:, perm[
        informative]])
    # the distractors do not depend on theta
    other = task.simulate(task.sample_prior(300, gen(19)), gen(18))
    torch.testing.assert_close(x[:, ~informative], other[:, ~informative])
    assert sorted(perm.tolist()) == list(range(100))


def test_distractor_mixture_components_and_student_t_draws():
    loc, scale_tril, _ = tasks.slcp_distractor_constants()
    assert loc.shape == (20, 92) and scale_tril.shape == (20, 92, 92)
    n = 40_000
    noise, comp = tasks.sample_distractors(n, gen(20))
    counts = torch.bincount(comp, minlength=20).double()
    chi2 = float(((counts - n / 20) ** 2 / (n / 20)).sum())
    assert chi2 < 50  # 19 degrees of freedom: p ~ 1e-4
    # one coordinate of a component's draw, centred and divided by the norm of its row of the
    # scale factor, is Student-t with 2 degrees of freedom: P(|t| < 1) = 1 / sqrt(3). (The
    # factors are far too ill-conditioned to whiten whole draws.)
    t = (noise.double() - loc[comp]) / scale_tril.norm(dim=2)[comp]
    assert abs((t.abs() < 1).double().mean() - 1 / math.sqrt(3)) < 0.003
    assert abs((t.abs() < 3).double().mean() - 3 / math.sqrt(11)) < 0.003
    # a whole row shares one scale w: the sizes of its coordinates are correlated
    assert torch.corrcoef(t[:, :2].abs().log().T)[0, 1] > 0.2


# -- Bernoulli GLM -----------------------------------------------------------------------------
def _sbibm_summary(spikes: torch.Tensor) -> torch.Tensor:
    """The statistics computed the way sbibm writes them: spike count and the last 9 outputs of
    a conv1d of the spike train with the stimulus, padded by 8."""
    stimulus = tasks.glm_design_matrix()[:, 1]
    sta = torch.nn.functional.conv1d(spikes[:, None, :], stimulus.reshape(1, 1, -1),
                                     padding=8)[:, 0, -9:]
    return torch.cat([spikes.sum(1, keepdim=True), sta], dim=1)


def test_glm_summary_equals_sbibm_conv1d_statistics():
    spikes = (torch.rand((500, 100), generator=gen(21)) < 0.4).float()
    torch.testing.assert_close(tasks.glm_summary(spikes), _sbibm_summary(spikes), atol=1e-4,
                               rtol=1e-5)


def test_glm_design_matrix_structure():
    design = tasks.glm_design_matrix()
    stimulus = torch.from_numpy(np.random.RandomState(42).randn(100).astype(np.float32))
    assert design.shape == (100, 10) and (design[:, 0] == 1).all()
    for lag in range(9):
        assert (design[:lag, lag + 1] == 0).all()
        assert torch.equal(design[lag:, lag + 1], stimulus[: 100 - lag])


def test_glm_spike_probabilities():
    task = get_task("bernoulli_glm_raw")
    theta = task.sample_prior(1, gen(22))
    n = 20_000
    spikes = task.simulate(theta.expand(n, -1).contiguous(), gen(23)).double()
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    p = torch.sigmoid(tasks.glm_design_matrix().double() @ theta[0].double())
    sd = (p * (1 - p) / n).sqrt().clamp_min(1e-4)
    assert ((spikes.mean(0) - p).abs() <= 5 * sd).all()
    # bins spike independently given theta
    corr = torch.corrcoef(spikes[:, 40:44].T)
    assert (corr - torch.eye(4, dtype=torch.float64)).abs().max() < 5 / math.sqrt(n)


def test_glm_summary_task_is_the_summary_of_the_raw_task():
    theta = get_task("bernoulli_glm").sample_prior(50, gen(24))
    raw = get_task("bernoulli_glm_raw").simulate(theta, gen(25))
    torch.testing.assert_close(get_task("bernoulli_glm").simulate(theta, gen(25)),
                               tasks.glm_summary(raw))
