"""Calibration diagnostics for any posterior: SBC ranks and expected coverage, as run metrics.

This wires :mod:`invkit.evaluation.calibration` to what invkit trains and compares: a trained
:class:`~invkit.posterior.Posterior` (INN or cINN), a baseline such as ABC, or any function
``sample_fn(y (b, dim_y), n) -> (b, n, dim_x)``.

The check (Talts et al. 2018): draw x from the prior and y = s(x) (the held-out split is
exactly that), ask the sampler for n posterior samples per y, and look where the true x falls.
For the true posterior, per dimension, the rank of x among the samples is uniform on
{0, ..., n}, and every level-a credible region contains x with probability a.

What is reported (keys start with ``calibration_``):

- ``rank_pvalue_min`` / ``rank_pvalue_bonferroni``: chi-square test of rank uniformity, the
  smallest per-dimension p-value, and it times the number of dimensions (capped at 1).
- ``bins_outside_band``: rank-histogram bins (all dimensions) outside the pointwise 99%
  binomial band, next to ``bins_outside_expected``, the number expected by chance.
- ``coverage_central`` at ``levels``: how often x lies in the central level-a interval of its
  dimension's samples (mean over dimensions); ``max_coverage_deviation`` = max |coverage -
  level|, ``mean_coverage_deviation`` signed (negative: overconfident, i.e. too narrow).
- ``hpd_*``: the same for joint highest-density regions, ranked by the model's own
  ``log_prob`` when it has one (the cINN) and otherwise by a leave-one-out KDE of the samples
  (a proxy that is still exactly calibrated for a calibrated sampler).
- ``flags``: plain-language findings (empty when nothing is detected), and ``ok``.

Detection thresholds: ranks flagged when the Bonferroni p-value is below 0.01; coverage when
its largest deviation exceeds 3 binomial standard errors plus the 1/(n+1) rank resolution.

Noiseless simulators (the arm): the exact posterior lives on a lower-dimensional set, and a
model trained with ``train.y_noise > 0`` learns the posterior of y + noise, a thin shell
around it. The truth lies on the set itself, where the model's density peaks, so HPD coverage
by the model's own density reads as underconfident even when central coverage and the ranks
are fine (measured on the arm: HPD deviation 0.28 at exact y, 0.08 when the same noise is
added to the evaluation y). ``calibration_note`` says so when it applies.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from invkit.errors import InvkitError
from invkit.evaluation.calibration import (
    DEFAULT_LEVELS,
    LogProbFn,
    PosteriorSampleFn,
    coverage_from_ranks,
    expected_coverage,
    rank_uniformity,
    sbc_ranks,
)
from invkit.evaluation.calibration_plots import plot_coverage, plot_rank_histograms
from invkit.registry import get_registry

RANK_ALPHA = 0.01
"""Bonferroni-corrected p-value below which ranks are called non-uniform."""
KDE_MAX_PAIRS = 2_000_000_000
"""Above targets x (samples + 1)^2 kernel evaluations, the HPD proxy is Mahalanobis, not KDE."""


def posterior_sampler(posterior: Any, generator: torch.Generator | None = None
                      ) -> PosteriorSampleFn:
    """``sample_fn`` of a trained posterior (anything with ``sample(y, n[, generator=])``)."""

    def sample(y: Tensor, n: int) -> Tensor:
        if generator is not None:
            return posterior.sample(y, n, generator=generator)
        return posterior.sample(y, n)

    return sample


def posterior_log_prob(posterior: Any) -> LogProbFn | None:
    """``log_prob_fn(x (k, d), y (k, d_y)) -> (k,)`` of a posterior with exact densities."""
    if not getattr(posterior, "has_density", False):
        return None
    return lambda x, y: posterior.log_prob(x, y)


def baseline_sampler(problem: Any, baseline: str, options: dict[str, Any] | None = None,
                     generator: torch.Generator | None = None) -> PosteriorSampleFn:
    """``sample_fn`` of a registered baseline; it must return at least n samples per target.

    The baseline's ``reference_options`` apply first (they make it return n samples per
    target), then ``options``. For ABC, ``options={"budget": ...}`` gives the n nearest draws
    of one shared pool per call (so pass all targets in one batch: ``batch=len(y)``).
    """
    spec = get_registry().baseline(baseline)
    opts = {**dict(spec.options), **dict(spec.reference_options or {}), **(options or {})}

    def sample(y: Tensor, n: int) -> Tensor:
        gen = generator or torch.Generator(device=y.device).manual_seed(0)
        result = spec.run(problem, y, n, opts, gen, progress=False)
        short = [i for i, c in enumerate(result.counts) if c < n]
        if short:
            raise InvkitError(
                f"baseline {baseline!r} returned fewer than {n} samples for {len(short)} of "
                f"{len(result.counts)} targets; calibration needs n per target (use ABC's "
                f"quantile method, or a larger budget)."
            )
        return torch.stack([s[:n] for s in result.samples]).to(y.device)

    return sample


class _Replay:
    """Records a sampler's output on the first pass and replays it on the second, so ranks and
    HPD coverage use the same samples and a costly sampler (ABC) runs once."""

    def __init__(self, sample_fn: PosteriorSampleFn) -> None:
        self.sample_fn = sample_fn
        self.stored: list[Tensor] = []
        self.replaying = False
        self.pos = 0

    def __call__(self, y: Tensor, n: int) -> Tensor:
        if not self.replaying:
            s = self.sample_fn(y, n)
            self.stored.append(s)
            return s
        s = self.stored[self.pos]
        self.pos += 1
        return s

    def replay(self) -> _Replay:
        self.replaying, self.pos = True, 0
        return self


def _coverage_flag(what: str, summary: dict[str, Any], n_samples: int) -> str | None:
    tol = 3.0 * summary["standard_error"] + 1.0 / (n_samples + 1)
    dev = summary["max_coverage_deviation"]
    if dev <= tol:
        return None
    levels, cov = summary["levels"], summary["coverage"]
    k = max(range(len(levels)), key=lambda i: abs(cov[i] - levels[i]))
    side = "overconfident (regions too small)" if cov[k] < levels[k] else \
        "underconfident (regions too large)"
    return (f"{what} coverage is {side}: {cov[k]:.2f} at level {levels[k]:.2f} "
            f"(tolerance {tol:.2f})")


def calibration_report(
    sample_fn: PosteriorSampleFn,
    x_true: Tensor,
    y: Tensor,
    n_samples: int = 99,
    *,
    log_prob_fn: LogProbFn | None = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
    batch: int = 100,
    plot_dir: str | Path | None = None,
    plot_prefix: str = "calibration",
    labels: Sequence[str] | None = None,
    title: str | None = None,
    prefix: str = "calibration_",
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """SBC ranks, central and HPD expected coverage, flags and (optionally) plots, for one
    sampler on pairs (x_true, y) with x_true from the prior and y simulated from it.

    Returns a JSON-friendly dict whose keys start with ``prefix`` (see the module docstring).
    With ``plot_dir``, writes ``{plot_prefix}_ranks.png`` (rank histograms with 99% binomial
    bands) and ``{plot_prefix}_coverage.png`` (coverage against level, 99% band); their paths
    are under ``{prefix}plots``.
    """
    t0 = time.perf_counter()
    n_t = int(x_true.shape[0])
    replay = _Replay(sample_fn)
    ranks = sbc_ranks(replay, x_true, y, n_samples, batch=batch, generator=generator)
    uni = rank_uniformity(ranks, n_samples, band=0.99)
    central = coverage_from_ranks(ranks, n_samples, levels)
    dim = int(x_true.shape[1])
    if log_prob_fn is not None:
        hpd = expected_coverage(replay.replay(), x_true, y, n_samples, levels, kind="hpd",
                                log_prob_fn=log_prob_fn, batch=batch)
    else:
        score = "kde" if n_t * (n_samples + 1) ** 2 <= KDE_MAX_PAIRS else "mahalanobis"
        hpd = expected_coverage(replay.replay(), x_true, y, n_samples, levels, kind="hpd",
                                hpd_score=score, batch=batch)  # type: ignore[arg-type]
    per_dim = torch.tensor(central["coverage_per_dim"], dtype=torch.float64)  # (L, d)
    lv = torch.tensor(central["levels"], dtype=torch.float64)[:, None]
    flags: list[str] = []
    if uni["p_value_bonferroni"] < RANK_ALPHA:
        worst = min(range(dim), key=lambda k: uni["p_values"][k])
        flags.append(f"SBC ranks are not uniform (Bonferroni p = "
                     f"{uni['p_value_bonferroni']:.2g}, worst dimension {worst})")
    for what, summary in (("central", central), (f"HPD ({hpd['score']})", hpd)):
        flag = _coverage_flag(what, summary, n_samples)
        if flag:
            flags.append(flag)
    p = prefix
    out: dict[str, Any] = {
        f"{p}targets": n_t,
        f"{p}samples": int(n_samples),
        f"{p}rank_bins": uni["n_bins"],
        f"{p}rank_pvalues": uni["p_values"],
        f"{p}rank_pvalue_min": uni["min_p_value"],
        f"{p}rank_pvalue_bonferroni": uni["p_value_bonferroni"],
        f"{p}bins_outside_band": uni["outside_band_total"],
        f"{p}bins_outside_expected": uni["expected_outside_by_chance"],
        f"{p}levels": central["levels"],
        f"{p}coverage_central": central["coverage"],
        f"{p}max_coverage_deviation": central["max_coverage_deviation"],
        f"{p}mean_coverage_deviation": central["mean_coverage_deviation"],
        f"{p}max_coverage_deviation_per_dim":
            (per_dim - lv).abs().max(dim=0).values.tolist(),
        f"{p}coverage_standard_error": central["standard_error"],
        f"{p}hpd_score": hpd["score"],
        f"{p}hpd_coverage": hpd["coverage"],
        f"{p}hpd_max_coverage_deviation": hpd["max_coverage_deviation"],
        f"{p}hpd_mean_coverage_deviation": hpd["mean_coverage_deviation"],
        f"{p}flags": flags,
        f"{p}ok": not flags,
    }
    if plot_dir is not None:
        plot_dir = Path(plot_dir)
        paths = [
            plot_rank_histograms(ranks, n_samples, plot_dir / f"{plot_prefix}_ranks.png",
                                 n_bins=uni["n_bins"], labels=labels),
            plot_coverage(central["levels"],
                          {"central (mean over dims)": central["coverage"],
                           f"HPD ({hpd['score']})": hpd["coverage"]},
                          plot_dir / f"{plot_prefix}_coverage.png", n_targets=n_t,
                          title=title),
        ]
        out[f"{p}plots"] = [str(q) for q in paths]
    out[f"{p}time_s"] = time.perf_counter() - t0
    return out


def calibration_metrics(ctx: Any, n_targets: int | None = None,
                        n_samples: int | None = None) -> dict[str, Any]:
    """The run's calibration figures (``invkit run`` / ``invkit evaluate``): the first
    ``eval.calibration_targets`` held-out pairs, ``eval.calibration_samples`` samples each,
    the model's exact density for HPD regions when it has one; plots when ``eval.plots``."""
    cfg = ctx.config
    n_t = cfg.eval.calibration_targets if n_targets is None else n_targets
    n_s = cfg.eval.calibration_samples if n_samples is None else n_samples
    n_t = min(int(n_t), int(ctx.x_test.shape[0]))
    if n_t < 1:
        return {}
    post = ctx.posterior
    out = calibration_report(
        posterior_sampler(post, ctx.generator), ctx.x_test[:n_t], ctx.y_test[:n_t], n_s,
        log_prob_fn=posterior_log_prob(post),
        plot_dir=ctx.plot_dir if cfg.eval.plots else None,
        labels=[f"x{k + 1}" for k in range(ctx.problem.dim_x)],
        title=f"{ctx.problem.name} ({getattr(cfg.model, 'kind', 'inn')}): expected coverage",
        generator=ctx.generator,
    )
    y_noise = float(getattr(getattr(cfg, "train", None), "y_noise", 0.0) or 0.0)
    problem = ctx.problem
    forward = getattr(problem, "forward", None)  # None: pairs from a file, noise unknown
    noiseless = forward is not None and float(getattr(problem, "noise_std", 0.0) or 0.0) == 0 \
        and not bool(getattr(forward, "stochastic", False))
    if y_noise > 0 and noiseless:
        out["calibration_note"] = (
            f"noiseless simulator, model trained on y + N(0, {y_noise:g}^2): it learnt the "
            f"slightly wider posterior of noisy observations, so expect some underconfidence "
            f"at exact y, most visible in HPD coverage by its own density (the exact posterior "
            f"is concentrated on a lower-dimensional set, where the truth always lies)."
        )
    return out

