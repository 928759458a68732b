"""Calibration diagnostics for amortised posteriors: simulation-based calibration (SBC) ranks,
their uniformity tests, and expected coverage (per-dimension central intervals and joint
highest-density regions); the figures are in :mod:`invkit.evaluation.calibration_plots`.

All diagnostics take ``sample_fn(y_batch (b, d_y), n) -> (b, n, d)``, so they work for any
sampler (INN, baseline, exact posterior). Targets are processed ``batch`` at a time, so memory
is bounded by ``batch * n_samples * d`` (plus a chunked pairwise matrix for the KDE score).
Sampling randomness belongs to ``sample_fn``; pass one that draws from a seeded
``torch.Generator`` for reproducible figures.

Why these checks: a sampler can have small Err_post on average yet be systematically over- or
under-confident. If x ~ p(x), y ~ p(y | x) and the sampler is the true posterior, the rank of x
among n posterior samples is uniform on {0, ..., n} (Talts et al. 2018) and every credible
region of level a contains x with probability a.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from invkit.evaluation.metrics import _default_chunk
from invkit.kernels import sq_dists

PosteriorSampleFn = Callable[[Tensor, int], Tensor]
"""``sample_fn(y_batch (b, d_y), n) -> (b, n, d)`` posterior samples for each row of y."""

LogProbFn = Callable[[Tensor, Tensor], Tensor]
"""``log_prob_fn(x (k, d), y (k, d_y)) -> (k,)`` log q(x_i | y_i), row by row."""

DEFAULT_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _batches(
    sample_fn: PosteriorSampleFn, x_true: Tensor, y: Tensor, n_samples: int, batch: int
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Yield ``(x_true_b, y_b, samples_b)`` with samples checked to be (b, n_samples, d)."""
    if x_true.ndim != 2 or y.ndim != 2 or x_true.shape[0] != y.shape[0]:
        raise ValueError(
            f"x_true must be (N, d) and y (N, d_y) with equal N; got {tuple(x_true.shape)} "
            f"and {tuple(y.shape)}"
        )
    if n_samples < 1 or batch < 1:
        raise ValueError("n_samples and batch must be positive")
    for b0 in range(0, x_true.shape[0], batch):
        yb = y[b0 : b0 + batch]
        s = sample_fn(yb, n_samples)
        expected = (yb.shape[0], n_samples, x_true.shape[1])
        if tuple(s.shape) != expected:
            raise ValueError(f"sample_fn returned shape {tuple(s.shape)}, expected {expected}")
        yield x_true[b0 : b0 + batch].to(device=s.device, dtype=s.dtype), yb, s


def _tie_generator(device: torch.device, generator: torch.Generator | None) -> torch.Generator:
    return generator if generator is not None else torch.Generator(device=device).manual_seed(0)


@torch.no_grad()
def sbc_ranks(
    sample_fn: PosteriorSampleFn,
    x_true: Tensor,
    y: Tensor,
    n_samples: int,
    *,
    batch: int = 100,
    generator: torch.Generator | None = None,
) -> Tensor:
    """SBC ranks: per dimension, how many of ``n_samples`` posterior samples lie below x_true.

    Returns an int64 tensor (N, d) with values in {0, ..., n_samples}, on the samples' device.
    Ties (discrete or clamped samples) are broken uniformly at random, so ties alone do not
    look like miscalibration; ``generator`` (on the samples' device) makes that reproducible,
    and a fixed seed is used without one.
    """
    out = []
    g = None
    for xt, _, s in _batches(sample_fn, x_true, y, n_samples, batch):
        ref = xt[:, None, :]
        rank = (s < ref).sum(dim=1)
        ties = (s == ref).sum(dim=1)
        if bool(ties.any()):
            if g is None:
                g = _tie_generator(s.device, generator)
            u = torch.rand(ties.shape, generator=g, device=s.device)
            rank = rank + torch.floor(u * (ties + 1)).long()
        out.append(rank.long())
    if not out:
        return torch.zeros(0, x_true.shape[1], dtype=torch.long, device=x_true.device)
    return torch.cat(out)


def _choose_bins(n_ranks: int, n_samples: int, n_bins: int | None) -> int:
    """Bins for a rank histogram: <= 20, >= ~5 expected counts per bin, and preferably a
    divisor of n_samples + 1 so every bin holds the same number of rank values."""
    n_values = n_samples + 1
    if n_bins is not None:
        return max(1, min(int(n_bins), n_values))
    target = max(2, min(20, n_values, n_ranks // 5))
    target = min(target, n_values)
    for cand in range(target, max(1, math.ceil(target / 2)) - 1, -1):
        if n_values % cand == 0 and cand >= 2:
            return cand
    return target


def _rank_histogram(ranks: Tensor, n_samples: int, n_bins: int | None):
    r = ranks.detach().to("cpu", torch.long)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2:
        raise ValueError(f"ranks must be (N, d), got {tuple(ranks.shape)}")
    if r.numel() and (int(r.min()) < 0 or int(r.max()) > n_samples):
        raise ValueError(f"ranks must lie in [0, {n_samples}]")
    n, d = r.shape
    n_bins = _choose_bins(n, n_samples, n_bins)
    bin_of = torch.arange(n_samples + 1) * n_bins // (n_samples + 1)
    widths = torch.bincount(bin_of, minlength=n_bins)
    idx = bin_of[r] + n_bins * torch.arange(d)
    counts = torch.bincount(idx.reshape(-1), minlength=n_bins * d).reshape(d, n_bins)
    return counts, widths, n_bins


def rank_uniformity(
    ranks: Tensor, n_samples: int, *, n_bins: int | None = None, band: float = 0.99
) -> dict[str, Any]:
    """Test SBC ranks for uniformity, per dimension, on an L-bin histogram.

    L defaults to at most 20 bins with >= ~5 expected counts each, preferring a divisor of
    n_samples + 1; otherwise bins hold floor/ceil shares of the rank values and the expected
    counts account for it. Reports chi-square p-values (scipy) per dimension, and how many bins
    fall outside the pointwise ``band`` binomial interval next to the number expected by chance
    (about (1 - band) * L per dimension). All values are JSON-friendly (lists, floats, ints).
    """
    from scipy import stats

    counts, widths, n_bins = _rank_histogram(ranks, n_samples, n_bins)
    d = counts.shape[0]
    n = int(counts[0].sum()) if d else 0
    p = (widths.double() / (n_samples + 1)).numpy()
    expected = n * p
    obs = counts.double().numpy()
    if n > 0 and n_bins > 1:
        chi2 = ((obs - expected) ** 2 / expected).sum(axis=1)
        pvals = stats.chi2.sf(chi2, n_bins - 1)
    else:
        chi2 = obs.sum(axis=1) * 0.0
        pvals = chi2 + 1.0
    tail = (1.0 - band) / 2.0
    lo = stats.binom.ppf(tail, n, p)
    hi = stats.binom.ppf(1.0 - tail, n, p)
    outside = ((obs < lo) | (obs > hi)).sum(axis=1)
    p_out = stats.binom.cdf(lo - 1, n, p) + stats.binom.sf(hi, n, p)
    min_p = float(pvals.min()) if d else 1.0
    return {
        "n_ranks": n,
        "n_samples": int(n_samples),
        "n_bins": int(n_bins),
        "bin_widths": widths.tolist(),
        "expected_counts": expected.tolist(),
        "counts": counts.tolist(),
        "chi2": [float(v) for v in chi2],
        "p_values": [float(v) for v in pvals],
        "min_p_value": min_p,
        "p_value_bonferroni": min(1.0, d * min_p),
        "band": float(band),
        "band_low": lo.tolist(),
        "band_high": hi.tolist(),
        "outside_band": [int(v) for v in outside],
        "outside_band_total": int(outside.sum()),
        "expected_outside_by_chance": float(d * p_out.sum()),
    }


def _check_levels(levels: Sequence[float]) -> Tensor:
    lv = torch.as_tensor([float(a) for a in levels], dtype=torch.float64)
    if lv.numel() == 0 or bool(((lv <= 0) | (lv >= 1)).any()):
        raise ValueError(f"levels must be in (0, 1), got {list(levels)}")
    return lv


def _coverage_summary(
    levels: Tensor, coverage: Tensor, n_targets: int, n_samples: int, kind: str, score: str
) -> dict[str, Any]:
    dev = coverage - levels
    return {
        "kind": kind,
        "score": score,
        "levels": levels.tolist(),
        "coverage": coverage.tolist(),
        "max_coverage_deviation": float(dev.abs().max()),
        "mean_coverage_deviation": float(dev.mean()),
        "standard_error": float(torch.sqrt(levels * (1 - levels) / max(n_targets, 1)).max()),
        "n_targets": int(n_targets),
        "n_samples": int(n_samples),
    }


def coverage_from_ranks(
    ranks: Tensor, n_samples: int, levels: Sequence[float] = DEFAULT_LEVELS
) -> dict[str, Any]:
    """Central-interval coverage from SBC ranks, without drawing samples again.

    x_true lies in the central level-a interval of a dimension's samples when its quantile
    u = (rank + 1/2) / (n + 1) satisfies ``|u - 1/2| <= a / 2`` (exact up to 1 / (n + 1) for a
    calibrated sampler). ``coverage`` is the mean over dimensions, ``coverage_per_dim`` is
    (levels x dims).
    """
    lv = _check_levels(levels)
    r = ranks.detach().to("cpu", torch.float64)
    if r.ndim == 1:
        r = r[:, None]
    u = (r + 0.5) / (n_samples + 1)
    inside = (u - 0.5).abs()[None] <= lv[:, None, None] / 2 + 1e-12  # (L, N, d)
    per_dim = inside.double().mean(dim=1)
    out = _coverage_summary(
        lv, per_dim.mean(dim=1), r.shape[0], n_samples, "central", "marginal_quantiles"
    )
    out["coverage_per_dim"] = per_dim.tolist()
    return out


def _kde_scores(pool: Tensor, chunk_elements: int) -> Tensor:
    """Leave-one-out Gaussian KDE log density of every pool point from the others, (b, P).

    The pool is standardised per dimension and the bandwidth follows Scott's rule, all from
    the pool itself, so each score is a symmetric function of the pool.
    """
    b, p, d = pool.shape
    z = pool.double() if pool.dtype != torch.float64 and pool.device.type != "mps" else pool
    z = (z - z.mean(dim=1, keepdim=True)) / z.std(dim=1, keepdim=True).clamp_min(1e-12)
    h2 = float(p) ** (-2.0 / (d + 4))
    rows = max(1, chunk_elements // max(1, b * p))
    cols = torch.arange(p, device=z.device)
    out = []
    for r0 in range(0, p, rows):
        r1 = min(p, r0 + rows)
        logk = sq_dists(z[:, r0:r1], z, True).mul_(-0.5 / h2)
        self_mask = cols[None, :] == torch.arange(r0, r1, device=z.device)[:, None]
        logk.masked_fill_(self_mask[None], -math.inf)
        out.append(torch.logsumexp(logk, dim=-1))
    return torch.cat(out, dim=1)


def _mahalanobis_scores(pool: Tensor) -> Tensor:
    """Minus the squared Mahalanobis distance of every pool point to the pool's mean, (b, P)."""
    z = pool.double() if pool.device.type != "mps" else pool
    c = z - z.mean(dim=1, keepdim=True)
    cov = c.transpose(1, 2) @ c / z.shape[1]
    jitter = 1e-9 * cov.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(1e-12)
    cov = cov + jitter[:, None, None] * torch.eye(z.shape[2], dtype=z.dtype, device=z.device)
    chol = torch.linalg.cholesky(cov)
    w = torch.linalg.solve_triangular(chol, c.transpose(1, 2), upper=False)
    return -w.square().sum(dim=1)


@torch.no_grad()
def expected_coverage(
    sample_fn: PosteriorSampleFn,
    x_true: Tensor,
    y: Tensor,
    n_samples: int,
    levels: Sequence[float] = DEFAULT_LEVELS,
    kind: Literal["central", "hpd"] = "central",
    log_prob_fn: LogProbFn | None = None,
    *,
    hpd_score: Literal["kde", "mahalanobis"] = "kde",
    batch: int = 100,
    chunk_elements: int | None = None,
) -> dict[str, Any]:
    """Expected coverage: how often the true x lies in the sampler's level-a credible region.

    ``kind="central"``: per-dimension central intervals from sample quantiles (see
    :func:`coverage_from_ranks`); ``coverage`` is the mean over dimensions.

    ``kind="hpd"``: joint highest-density regions. Each candidate point gets a density score;
    x_true is inside the level-a region when the fraction of samples scoring higher than it is
    <= a (same midpoint convention). The score is ``log_prob_fn(x, y)`` when given (the model's
    own density, so the HPD regions are the model's). Without a density, a proxy scores the
    pool {x_true, samples}: ``"kde"`` (default) a leave-one-out Gaussian KDE, which follows
    multimodal posteriors, or ``"mahalanobis"`` the distance to the pool mean (elliptical
    regions, cheaper). Both are symmetric functions of the pool, so for a calibrated sampler
    the truth's rank is exactly uniform and the coverage is nominal, whatever the bandwidth;
    they differ in power against miscalibration, and the KDE costs (n+1)^2 per target.

    Returns a JSON-friendly dict: ``levels``, ``coverage``, ``max_coverage_deviation``
    (``max |coverage - level|``), ``mean_coverage_deviation`` (signed: negative means
    overconfident), ``standard_error`` (largest binomial s.e. over levels), ``kind``, ``score``
    and, for central, ``coverage_per_dim``.
    """
    if kind == "central":
        ranks = sbc_ranks(sample_fn, x_true, y, n_samples, batch=batch)
        return coverage_from_ranks(ranks, n_samples, levels)
    if kind != "hpd":
        raise ValueError(f"kind must be 'central' or 'hpd', got {kind!r}")
    if log_prob_fn is None and hpd_score not in ("kde", "mahalanobis"):
        raise ValueError(f"hpd_score must be 'kde' or 'mahalanobis', got {hpd_score!r}")
    lv = _check_levels(levels)
    fracs = []
    for xt, yb, s in _batches(sample_fn, x_true, y, n_samples, batch):
        pool = torch.cat([xt[:, None, :], s], dim=1)  # (b, n + 1, d); index 0 is the truth
        b, p, d = pool.shape
        if log_prob_fn is not None:
            y_rep = yb.to(pool.device)[:, None, :].expand(b, p, yb.shape[1])
            score = log_prob_fn(pool.reshape(b * p, d), y_rep.reshape(b * p, -1)).reshape(b, p)
        elif hpd_score == "kde":
            score = _kde_scores(pool, chunk_elements or _default_chunk(pool.device))
        else:
            score = _mahalanobis_scores(pool)
        truth, others = score[:, :1], score[:, 1:]
        higher = (others > truth).sum(dim=1).double() + 0.5 * (others == truth).sum(dim=1)
        fracs.append(((higher + 0.5) / (n_samples + 1)).cpu())
    frac = torch.cat(fracs) if fracs else torch.zeros(0, dtype=torch.float64)
    coverage = (frac[None, :] <= lv[:, None] + 1e-12).double().mean(dim=1)
    score_name = "log_prob" if log_prob_fn is not None else hpd_score
    return _coverage_summary(lv, coverage, frac.numel(), n_samples, "hpd", score_name)
