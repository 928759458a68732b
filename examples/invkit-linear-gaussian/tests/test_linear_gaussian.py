"""Tests of the example plugin: the maths, the contract with invkit, and the CLI end to end."""

from __future__ import annotations

import json

import invkit
import pytest
import torch
from invkit.cli.main import main

from invkit_linear_gaussian.model import LinearGaussian, make_matrix
from invkit_linear_gaussian.plugin import OPTIONS, build


@pytest.fixture(scope="module")
def problem():
    return invkit.get_problem("linear_gaussian")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- the closed-form posterior --------------------------------------------------------------------
def test_posterior_matches_gaussian_conditioning():
    """S and K agree with conditioning the joint Gaussian of (x, y), a different formula."""
    lg = LinearGaussian(make_matrix(2, 3, 0), 0.1)
    a, s2 = lg.matrix, 0.1**2
    cov_y = a @ a.T + s2 * torch.eye(2, dtype=torch.float64)  # Cov(y)
    gain = a.T @ torch.linalg.inv(cov_y)  # Cov(x, y) Cov(y)^-1
    torch.testing.assert_close(lg.gain, gain)
    torch.testing.assert_close(lg.cov, torch.eye(3, dtype=torch.float64) - gain @ a)


def test_posterior_matches_monte_carlo(problem):
    """Regressing prior draws x on their simulated y recovers the posterior mean map and
    the residual covariance, the exact posterior's covariance."""
    x, y = problem.sample_joint(400_000, gen(1))
    x, y = x.double(), y.double()
    k_hat = torch.linalg.lstsq(y, x).solution.T  # x ~ K y (both have mean zero)
    residual = x - y @ k_hat.T
    cov_hat = residual.T @ residual / x.shape[0]
    lg = LinearGaussian(make_matrix(2, 3, 0), 0.1)
    torch.testing.assert_close(k_hat, lg.gain, atol=0.02, rtol=0.02)
    torch.testing.assert_close(cov_hat, lg.cov, atol=0.01, rtol=0.02)


def test_reference_samples_have_the_exact_moments(problem):
    y = torch.tensor([[0.3, -0.2], [1.0, 0.5]])
    samples = problem.reference_posterior(y, 200_000, gen(2)).double()
    lg = LinearGaussian(make_matrix(2, 3, 0), 0.1)
    torch.testing.assert_close(samples.mean(1), lg.posterior_mean(y.double()), atol=0.01,
                               rtol=0)
    for row in samples:
        c = row - row.mean(0)
        torch.testing.assert_close(c.T @ c / row.shape[0], lg.cov, atol=0.01, rtol=0.02)


def test_reference_posterior_is_batched(problem):
    y = torch.zeros(5, problem.dim_y)
    out = problem.reference_posterior(y, 7, gen())
    assert out.shape == (5, 7, problem.dim_x)
    assert out.dtype == torch.float32


def test_posterior_draws_of_simulated_data_follow_the_prior(problem):
    """Self-consistency: x* ~ prior, y ~ p(y | x*), x ~ p(x | y) makes x ~ prior again."""
    _, y = problem.sample_joint(100_000, gen(3))
    x = problem.reference_posterior(y, 1, gen(4))[:, 0].double()
    torch.testing.assert_close(x.mean(0), torch.zeros(3, dtype=torch.float64), atol=0.02, rtol=0)
    torch.testing.assert_close(x.T @ x / x.shape[0], torch.eye(3, dtype=torch.float64),
                               atol=0.02, rtol=0)


# -- the contract with invkit ---------------------------------------------------------------------
def test_forward_shape_and_noise(problem):
    x = problem.sample_prior(1000, gen())
    assert x.shape == (1000, 3)
    y = problem.forward(x)
    assert y.shape == (1000, 2)
    noisy = problem.simulate(x, gen(5))
    assert abs(float((noisy - y).std()) - 0.1) < 0.01


def test_discovered_through_its_entry_point():
    registry = invkit.get_registry()
    origin = registry.origin("problem", "linear_gaussian")
    assert origin.distribution == "invkit-linear-gaussian"
    assert origin.plugin == "linear_gaussian"
    assert "linear_gaussian_prior" in registry.names("prior")
    assert "linear_gaussian_forward" in registry.names("forward process")


def test_options_change_the_dims():
    p = invkit.get_problem("linear_gaussian", dim_x=5, dim_y=4, noise_std=0.5)
    assert (p.dim_x, p.dim_y, p.noise_std) == (5, 4, 0.5)
    assert p.reference_posterior(torch.zeros(2, 4), 3, gen()).shape == (2, 3, 5)


def test_bad_options_get_a_clear_error():
    with pytest.raises(invkit.InvkitError, match="noise_std must be positive"):
        invkit.get_problem("linear_gaussian", noise_std=0)
    with pytest.raises(invkit.InvkitError, match="has no option 'dimx'"):
        invkit.get_problem("linear_gaussian", dimx=4)
    assert build(**OPTIONS).name == "linear_gaussian"


# -- end to end, as a user runs it ----------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lg"
    assert main(["run", "linear_gaussian", "--preset", "quick", "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_run_writes_a_complete_run_directory(run_dir):
    assert {p.name for p in run_dir.iterdir()} >= {"config.toml", "model.pt", "metrics.json",
                                                   "plots"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["problem"] == "linear_gaussian"
    assert metrics["err_post_reference"] == "exact"
    # a quick run is a smoke test, not a good posterior; still it must be in the right place
    assert metrics["mean_error"] < 1.0
    assert any(run_dir.glob("plots/*.png"))


def test_sample_from_the_run(run_dir, tmp_path):
    out = tmp_path / "samples.pt"
    assert main(["sample", str(run_dir), "--y", "0.3,-0.2", "--y", "1,0.5", "-n", "50",
                 "--out", str(out)]) == 0
    assert torch.load(out, weights_only=True).shape == (2, 50, 3)
    post = invkit.load(run_dir)
    assert post.sample([0.3, -0.2], 10).shape == (10, 3)


def test_evaluate_the_run(run_dir):
    assert main(["evaluate", str(run_dir), "--set", "eval.n_targets=4", "--quiet"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_targets"] == 4
