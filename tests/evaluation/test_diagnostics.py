"""Calibration diagnostics as run metrics: an exact posterior sampler passes, an overconfident
or underconfident one is flagged; the run-level wrapper and the ABC adapter work.

Problem: x ~ N(0, I_2), y = x + N(0, s^2 I), so p(x | y) = N(y / (1 + s^2), s^2 / (1 + s^2) I).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from invkit.config import RunConfig, set_key
from invkit.evaluation.diagnostics import (
    baseline_sampler,
    calibration_metrics,
    calibration_report,
    posterior_log_prob,
)
from invkit.problem import EvalContext

S = 0.5
POST_STD = math.sqrt(S * S / (1 + S * S))
N_TARGETS = 500
N_SAMPLES = 99


pytestmark = pytest.mark.usefixtures("one_thread")


def make_data(n: int = N_TARGETS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    return x, x + S * torch.randn(n, 2, generator=g)


def post_mean(y: torch.Tensor) -> torch.Tensor:
    return y / (1 + S * S)


def sampler(scale: float = 1.0, seed: int = 1):
    """The exact posterior with its std multiplied by ``scale`` (< 1: overconfident)."""
    g = torch.Generator().manual_seed(seed)

    def sample(y: torch.Tensor, n: int) -> torch.Tensor:
        noise = torch.randn(y.shape[0], n, y.shape[1], generator=g)
        return post_mean(y)[:, None, :] + POST_STD * scale * noise

    return sample


def log_prob(scale: float = 1.0):
    def lp(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Normal(post_mean(y), POST_STD * scale).log_prob(x).sum(-1)

    return lp


class ExactPosterior:
    """Stands in for invkit's Posterior: sample(y, n, generator=) and log_prob(x, y)."""

    has_density = True

    def sample(self, y, n, *, generator=None):
        noise = torch.randn(y.shape[0], n, y.shape[1], generator=generator, device=y.device)
        return post_mean(y)[:, None, :] + POST_STD * noise

    def log_prob(self, x, y):
        return log_prob()(x, y)


@pytest.mark.parametrize("with_log_prob", [True, False])
def test_exact_sampler_is_calibrated(with_log_prob, tmp_path):
    x, y = make_data()
    rep = calibration_report(sampler(), x, y, N_SAMPLES,
                             log_prob_fn=log_prob() if with_log_prob else None,
                             plot_dir=tmp_path, labels=["a", "b"])
    assert rep["calibration_ok"] and rep["calibration_flags"] == []
    assert rep["calibration_rank_pvalue_bonferroni"] > 0.01
    assert rep["calibration_max_coverage_deviation"] < 0.06
    assert rep["calibration_hpd_max_coverage_deviation"] < 0.06
    assert rep["calibration_hpd_score"] == ("log_prob" if with_log_prob else "kde")
    assert rep["calibration_bins_outside_band"] <= 3
    assert rep["calibration_targets"] == N_TARGETS and rep["calibration_rank_bins"] == 20
    levels, cov = rep["calibration_levels"], rep["calibration_coverage_central"]
    assert len(levels) == len(cov) == len(rep["calibration_hpd_coverage"])
    for p in rep["calibration_plots"]:
        assert (tmp_path / p.split("/")[-1]).stat().st_size > 0


@pytest.mark.parametrize("with_log_prob", [True, False])
def test_overconfident_sampler_is_flagged(with_log_prob):
    x, y = make_data()
    rep = calibration_report(sampler(scale=0.6), x, y, N_SAMPLES,
                             log_prob_fn=log_prob(0.6) if with_log_prob else None)
    assert not rep["calibration_ok"]
    flags = " ".join(rep["calibration_flags"])
    assert "not uniform" in flags and "overconfident" in flags
    assert rep["calibration_mean_coverage_deviation"] < -0.05
    assert rep["calibration_hpd_mean_coverage_deviation"] < -0.05
    assert rep["calibration_bins_outside_band"] > 5


def test_underconfident_sampler_is_flagged():
    x, y = make_data()
    rep = calibration_report(sampler(scale=1.6), x, y, N_SAMPLES)
    assert not rep["calibration_ok"]
    assert "underconfident" in " ".join(rep["calibration_flags"])
    assert rep["calibration_mean_coverage_deviation"] > 0.05


def test_biased_sampler_is_flagged():
    x, y = make_data()
    base = sampler()
    rep = calibration_report(lambda yb, n: base(yb, n) + 0.5 * POST_STD, x, y, N_SAMPLES)
    assert not rep["calibration_ok"] and rep["calibration_rank_pvalue_min"] < 1e-6


def test_run_level_metrics_use_the_held_out_split_and_config(tmp_path):
    x, y = make_data(300)
    cfg = RunConfig(problem="toy")
    set_key(cfg, "eval.calibration_targets", 120)
    set_key(cfg, "eval.calibration_samples", 49)

    class _Problem:
        name, dim_x = "toy", 2

    ctx = EvalContext(problem=_Problem(), posterior=ExactPosterior(), config=cfg,
                      device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
                      plot_dir=tmp_path / "plots", x_test=x, y_test=y)
    out = calibration_metrics(ctx)
    assert out["calibration_targets"] == 120 and out["calibration_samples"] == 49
    assert out["calibration_hpd_score"] == "log_prob" and out["calibration_ok"]
    # the paths of the files drawn into ctx.plot_dir (the run records them relative to it)
    assert sorted(Path(p).name for p in out["calibration_plots"]) == [
        "calibration_coverage.png", "calibration_ranks.png"]
    assert all(Path(p).parent == ctx.plot_dir for p in out["calibration_plots"])
    assert posterior_log_prob(object()) is None
    set_key(cfg, "eval.calibration_targets", 0)
    assert calibration_metrics(ctx) == {}


def test_abc_sampler_adapter():
    from invkit.registry import get_registry

    problem = get_registry().build_problem("kinematics", {})
    g = torch.Generator().manual_seed(0)
    x, y = problem.sample_joint(40, g)
    sample = baseline_sampler(problem, "abc", {"budget": 200_000}, g)
    rep = calibration_report(sample, x, y, 19, batch=40)
    assert rep["calibration_targets"] == 40 and rep["calibration_hpd_score"] == "kde"
    assert math.isfinite(rep["calibration_max_coverage_deviation"])
