"""Calibration diagnostics on a conjugate linear-Gaussian problem with a known posterior.

x ~ N(0, I_2), y = x + N(0, s^2 I): p(x | y) = N(y / (1 + s^2), s^2 / (1 + s^2) I).
The exact sampler must look calibrated; one with its std shrunk 3x must be flagged.
"""

from __future__ import annotations

import math

import pytest
import torch

from invkit.evaluation.calibration import (
    coverage_from_ranks,
    expected_coverage,
    rank_uniformity,
    sbc_ranks,
)
from invkit.evaluation.calibration_plots import plot_coverage, plot_rank_histograms

S = 0.5
POST_STD = math.sqrt(S * S / (1 + S * S))
N_TARGETS = 1000
N_SAMPLES = 99


def post_mean(y: torch.Tensor) -> torch.Tensor:
    return y / (1 + S * S)


def make_data(n: int = N_TARGETS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    return x, x + S * torch.randn(n, 2, generator=g)


def sampler(shrink: float = 1.0, seed: int = 1):
    g = torch.Generator().manual_seed(seed)

    def sample(y: torch.Tensor, n: int) -> torch.Tensor:
        noise = torch.randn(y.shape[0], n, y.shape[1], generator=g)
        return post_mean(y)[:, None, :] + POST_STD / shrink * noise

    return sample


def log_prob(shrink: float = 1.0):
    def lp(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Normal(post_mean(y), POST_STD / shrink).log_prob(x).sum(-1)

    return lp


@pytest.fixture(scope="module")
def data():
    return make_data()


def test_sbc_ranks_shape_range_and_batch_invariance(data):
    x, y = data
    r = sbc_ranks(sampler(seed=1), x, y, N_SAMPLES, batch=128)
    assert r.shape == (N_TARGETS, 2) and r.dtype == torch.long
    assert int(r.min()) >= 0 and int(r.max()) <= N_SAMPLES
    # A sampler that is deterministic given y gives the same ranks whatever the batching.
    fixed = torch.randn(1, 50, 2, generator=torch.Generator().manual_seed(3))

    def det(yb, n):
        return post_mean(yb)[:, None, :] + POST_STD * fixed[:, :n]

    torch.testing.assert_close(sbc_ranks(det, x, y, 50, batch=7), sbc_ranks(det, x, y, 50))


def test_exact_sampler_has_uniform_ranks(data):
    x, y = data
    r = sbc_ranks(sampler(seed=1), x, y, N_SAMPLES)
    u = rank_uniformity(r, N_SAMPLES)
    assert u["n_bins"] == 20  # divides n_samples + 1 = 100, 50 expected per bin
    assert sum(u["bin_widths"]) == N_SAMPLES + 1
    assert min(u["p_values"]) > 1e-3
    assert u["outside_band_total"] <= 3
    assert 0 < u["expected_outside_by_chance"] <= 0.01 * 2 * 20


def test_overconfident_sampler_fails_rank_test(data):
    x, y = data
    r = sbc_ranks(sampler(shrink=3.0, seed=1), x, y, N_SAMPLES)
    u = rank_uniformity(r, N_SAMPLES)
    assert u["p_value_bonferroni"] < 1e-10
    assert u["outside_band_total"] >= 10  # the U shape: both end bins and the middle


def test_rank_uniformity_unequal_bins_and_perfect_histogram():
    n_samples = 100  # 101 rank values: prime, so bins hold 5 or 6 values
    ranks = torch.arange(n_samples + 1).repeat(10)[:, None].expand(-1, 3)
    u = rank_uniformity(ranks, n_samples)
    assert u["n_bins"] == 20
    assert sorted(set(u["bin_widths"])) == [5, 6]
    assert sum(u["expected_counts"]) == pytest.approx(ranks.shape[0])
    assert min(u["p_values"]) == pytest.approx(1.0)
    assert u["outside_band_total"] == 0
    with pytest.raises(ValueError):
        rank_uniformity(ranks + 1, n_samples)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "central"},
        {"kind": "hpd", "log_prob_fn": log_prob()},
        {"kind": "hpd", "hpd_score": "kde"},
        {"kind": "hpd", "hpd_score": "mahalanobis"},
    ],
    ids=["central", "hpd-logprob", "hpd-kde", "hpd-mahalanobis"],
)
def test_exact_sampler_has_nominal_coverage(data, kwargs):
    x, y = data
    c = expected_coverage(sampler(seed=2), x, y, N_SAMPLES, **kwargs)
    assert c["kind"] == kwargs["kind"]
    assert len(c["coverage"]) == len(c["levels"]) == 10
    assert c["max_coverage_deviation"] < 0.05, c["coverage"]
    assert abs(c["mean_coverage_deviation"]) < 0.035


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "central"},
        {"kind": "hpd", "log_prob_fn": log_prob(3.0)},
        {"kind": "hpd", "hpd_score": "kde"},
        {"kind": "hpd", "hpd_score": "mahalanobis"},
    ],
    ids=["central", "hpd-logprob", "hpd-kde", "hpd-mahalanobis"],
)
def test_overconfident_sampler_is_flagged(data, kwargs):
    x, y = data
    c = expected_coverage(sampler(shrink=3.0, seed=2), x, y, N_SAMPLES, **kwargs)
    assert c["mean_coverage_deviation"] < -0.2  # far below the diagonal
    assert c["max_coverage_deviation"] > 0.3
    assert all(cov < lvl for cov, lvl in zip(c["coverage"], c["levels"], strict=True))


def test_central_coverage_equals_coverage_from_ranks(data):
    x, y = data
    c = expected_coverage(sampler(seed=5), x, y, N_SAMPLES, levels=(0.5, 0.9))
    r = sbc_ranks(sampler(seed=5), x, y, N_SAMPLES)
    assert coverage_from_ranks(r, N_SAMPLES, (0.5, 0.9)) == c
    assert len(c["coverage_per_dim"]) == 2 and len(c["coverage_per_dim"][0]) == 2


def test_ties_are_broken_at_random():
    x, y = make_data(500, seed=6)

    def point_mass(yb, n):  # every sample equals y, and the truth is y: all ties
        return yb[:, None, :].expand(-1, n, -1).clone()

    r = sbc_ranks(point_mass, y, y, 9, generator=torch.Generator().manual_seed(0))
    assert int(r.min()) == 0 and int(r.max()) == 9
    assert rank_uniformity(r, 9)["min_p_value"] > 1e-4


def test_bad_inputs_raise(data):
    x, y = data
    with pytest.raises(ValueError, match="sample_fn returned shape"):
        sbc_ranks(lambda yb, n: torch.zeros(yb.shape[0], n, 3), x, y, 10)
    with pytest.raises(ValueError):
        expected_coverage(sampler(), x, y, 10, levels=(0.5, 1.0))
    with pytest.raises(ValueError):
        expected_coverage(sampler(), x, y, 10, kind="marginal")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sbc_ranks(sampler(), x, y[:10], 10)


def test_plots_write_files(tmp_path, data):
    x, y = data
    r = sbc_ranks(sampler(seed=1), x[:200], y[:200], 19)
    p1 = plot_rank_histograms(r, 19, tmp_path / "sub" / "ranks.png", labels=["a", "b"])
    c = coverage_from_ranks(r, 19)
    p2 = plot_coverage(
        c["levels"], {"central": c["coverage"]}, tmp_path / "cov.png", n_targets=200, title="t"
    )
    p3 = plot_coverage(c["levels"], c["coverage"], tmp_path / "cov1.png")
    for p in (p1, p2, p3):
        assert p.exists() and p.stat().st_size > 1000
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
