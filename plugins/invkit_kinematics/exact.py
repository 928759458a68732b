r"""Exact posterior samples of the noise-free arm: the reference that ABC only approximates.

Quantile ABC keeps the draws whose end point lands *near* y, so it widens every posterior by its
tolerance. Without observation noise the posterior is the prior restricted to the 2-D solution
manifold {x : s(x) = y}; this module samples that restriction itself. It applies only to
``noise_std == 0``: with observation noise the problem keeps its ABC reference (``plugin.build``
hooks this in only then).

Construction and proof sketch
-----------------------------
Write x = (x1, a) with a = (a1, a2, a3) the joint angles (each relative to the previous
segment), theta_i = a1 + ... + ai, h(a) = sum_i l_i cos theta_i and v(a) = sum_i l_i sin theta_i,
so s(x) = (h(a), x1 + v(a)).

1. *x1 drops out.* (x1, a) -> (u = x1 + v(a), a) has unit Jacobian, so for every test function
   phi, with the co-area (delta) notation that the ABC limit
   lim_{eps->0} E[phi(x) 1{|s(x) - y| < eps}] / (pi eps^2) defines,
   E[phi | y] p(y) = int phi(y2 - v(a), a) p_x1(y2 - v(a)) p(a) delta(h(a) - y1) da.
   Here p(y) is the density of y = s(x) under the prior (the evidence).
2. *Partition of unity over three charts.* Where grad h != 0, the weights
   w_k(a) = (dh/da_k)^2 / |grad h|^2 (k = 1, 2, 3) are smooth and sum to one
   (:func:`chart_weights`). Insert sum_k w_k = 1 and, in term k, do the a_k-integral first: for
   fixed b = (the other two angles), int g(a_k) delta(h - y1) da_k = sum over the roots of
   g / |dh/da_k|. Hence
   E[phi | y] p(y) = sum_k int db sum_{roots a_k} phi p_x1(y2 - v) p(a) |dh/da_k| / |grad h|^2.
   The factor |dh/da_k| / |grad h|^2 <= 1 / |grad h| is bounded away from the critical points
   (every segment horizontal, so y1 in {0, +-1, +-2}); the 1/|dh/da_k| fold of a single chart,
   where the arm from joint k to the end lies horizontal, is gone. The level set of a y1 other
   than 0, +-1 holds no critical point, those of 0, +-1 isolated ones (measure zero: they
   change no integral).
3. *Roots in closed form.* In chart k, h = C(b) + R(b) cos(a_k + psi(b)), so the roots are
   a_k = -psi +- acos((y1 - C) / R) + 2 pi j (none when |(y1 - C) / R| > 1). The branches
   j differ only in a_k's prior factor (sines and cosines are 2 pi periodic), so each of the two
   roots is one particle carrying the wrapped-normal sum over j, and a resampled particle picks
   its branch j with probability proportional to N(a_k + 2 pi j). The sum is taken over
   j in {-1, 0, 1} around the representative in [-pi, pi); the terms left out are below
   exp(-8 pi^2 / (2 sigma^2)) of the largest (exp(-158) for the arm's sigma 0.5), i.e. zero
   in float64.
4. *Sampling.* Each chart's integral is estimated by importance sampling of b from a proposal
   q_k = 0.2 prior + 0.8 N(mu, Sigma) whose Gaussian is fitted to an independent pilot run (two
   stages, the second drawing from the first's fit; its draws are then discarded); q_k > 0
   everywhere, so the weights f_k / q_k are unbiased for the chart's measure. Round r draws
   B_r proposals per target, B_rk of them in chart k (shares from the pilot's estimate of each
   chart's mass, at least 5%), weighted f_k / q_k * B_r / B_rk:
   each round's weights then sum to B_r times an unbiased estimate of p(y), and its weighted
   draws estimate the posterior times p(y), whatever the split. Rounds are added until the
   pool's effective sample size (sum w)^2 / sum w^2 reaches ``ess_ratio * n``; n draws with
   replacement in proportion to the weights are kept (SIR, as a streaming reservoir, so memory
   stays bounded). Round sizes and splits depend only on earlier rounds, and the weights have
   finite variance for every y1 off the critical values (q_k >= 0.2 prior and
   f_k / prior <= const / |grad h|), so the pool's weighted averages converge almost surely
   (martingale strong law), also at the stopping time, which grows without bound with
   ``ess_ratio``: the samples are exact in that limit, with a bias of order 1 / pool at a
   finite one. The only other approximation is rounding: float64 arithmetic, and b built from
   float32 normals (a departure from q at the 1e-7 level).

The weights' sum over the draws, divided by their number, estimates p(y) (reported as
``evidence``); tests check it against a closed form (l1 = l2 = 0) and against the density of
simulated end points.

Targets with |y1| > 2 are out of reach (the posterior is empty): an ``InvkitError`` names them.
|y1| = 2 exactly (the arm stretched fully right or left) has a point mass as its limit
(a = 0, or a1 = +-pi with a2 = a3 = 0, and x1 = y2); it is returned as such.

Measured (``benchmarks/kinematics_exact.py --threads 1 --parts protocol``, one CPU thread
pinned to one core): 1000 prior targets x 4000 samples in 44 s (quantile ABC with a pool of
1e8: 64 s); every pool's ESS 20 to 34 times n, 0.76 effective samples per proposal at the
median target, 0.19 at the worst. Rejection ABC's Err_post against these samples falls to
the exact-vs-exact floor as its tolerance shrinks (``docs/tutorials/kinematics.md``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from invkit.errors import InvkitError
from invkit.progress import ProgressBar
from invkit_kinematics.arm import LENGTHS, SIGMA
from invkit_kinematics.exact_charts import (
    Arm,
    Proposal,
    chart,
    fit,
    free_sd,
    pilot_proposal,
)

ESS_RATIO = 20.0
"""Pool grown until its effective sample size is this many times the samples kept."""
PILOT = 2048
"""Pilot draws per chart, target and stage (fit the proposal, estimate the charts' shares)."""
PILOT_STAGES = 2
"""Pilot stages: the second draws from the first's fit, which finds posteriors far from
the prior (arms reaching behind the shoulder) that the first only grazes."""
ROUND = 8192
"""Fewest main draws per target per round; rounds are sized from the ESS still missing."""
MAX_POOL = 2**23
"""Most main draws per target; fewer than the ESS asked for by then gives a warning."""
CHUNK_DRAWS = 2**18
"""Most draws held at once (about 100 bytes each); targets per chunk: CHUNK_DRAWS // 4 ROUND."""
DEFENSIVE = 0.2
"""Prior share of the proposal: keeps it positive everywhere, whatever the pilot found."""
INFLATE = 1.5
"""Variance of the fitted Gaussian relative to the pilot's weighted covariance."""
MIN_SHARE = 0.05
"""Least share of draws per chart, so each chart's estimate converges."""

_TWO_PI = 2 * math.pi
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class ExactResult:
    """Posterior samples and the diagnostics of the pools they were resampled from."""

    samples: Tensor
    """(m, n, 4) float32 on y's device."""
    ess: Tensor
    """(m,) float64 on CPU: effective sample size of each target's pool (inf: a point mass)."""
    pool: Tensor
    """(m,) main proposals drawn per target (each gives up to two weighted configurations)."""
    evidence: Tensor
    """(m,) estimate of p(y), the density of y = s(x) with x from the prior (0 at the edge)."""


def _check_targets(y: Tensor, arm: Arm) -> None:
    if y.dim() != 2 or y.shape[1] != 2:
        raise InvkitError(f"The arm's exact posterior wants targets y of shape (m, 2), got "
                          f"{tuple(y.shape)}.")
    bad = (~torch.isfinite(y).all(1)) | (y[:, 0].abs() > arm.reach * (1 + 1e-6))
    if bad.any():
        idx = bad.nonzero().flatten().tolist()
        shown = "; ".join(f"target {i} y=({y[i, 0]:.4g}, {y[i, 1]:.4g})" for i in idx[:10])
        more = f"; and {len(idx) - 10} more" if len(idx) > 10 else ""
        raise InvkitError(
            f"{len(idx)} target(s) out of the arm's reach: {shown}{more}. No configuration "
            f"reaches a horizontal distance |y1| > {arm.reach:g} (the arm's length), so their "
            f"posterior is empty; pass finite targets with |y1| <= {arm.reach:g}."
        )


def sample_posterior(
    y: Tensor,
    n: int,
    generator: torch.Generator,
    *,
    ess_ratio: float = ESS_RATIO,
    max_pool: int = MAX_POOL,
    chunk_draws: int = CHUNK_DRAWS,
    lengths: Sequence[float] = LENGTHS,
    sigma: Sequence[float] = SIGMA,
    progress: bool = False,
) -> ExactResult:
    """n exact posterior samples for each noise-free target y (m, 2), with pool diagnostics.

    All randomness comes from ``generator`` (on y's device); targets are processed a few at a
    time (``chunk_draws`` bounds the draws held at once). ``lengths`` and ``sigma`` default to
    the benchmark arm; other values serve checks against closed forms (e.g. l1 = l2 = 0).
    ``progress`` shows a bar over the targets on stderr.
    """
    y = torch.as_tensor(y)
    l1, l2, l3 = (float(v) for v in lengths)
    s0, s1, s2, s3 = (float(v) for v in sigma)
    arm = Arm((l1, l2, l3), (s0, s1, s2, s3))
    if min(arm.lengths) < 0 or l3 <= 0 or min(arm.sigma) <= 0:
        raise InvkitError(f"The arm needs lengths >= 0 with the last one > 0 and positive prior "
                          f"standard deviations; got lengths {lengths}, sigma {sigma}.")
    _check_targets(y, arm)
    if n < 1:
        raise InvkitError(f"The exact posterior needs n >= 1 samples per target, got {n}.")
    if generator.device.type != y.device.type:
        raise InvkitError(f"The generator is on {generator.device} but the targets are on "
                          f"{y.device}; pass a generator on the targets' device.")
    dt = torch.float32 if y.device.type == "mps" else torch.float64
    yd = y.to(dt)
    m = y.shape[0]
    out = torch.empty(m, n, 4, dtype=torch.float32, device=y.device)
    ess = torch.full((m,), math.inf, dtype=torch.float64)
    pool = torch.zeros(m, dtype=torch.long)
    evidence = torch.zeros(m, dtype=torch.float64)

    edge = yd[:, 0].abs() >= arm.reach  # the limit of a fully stretched arm: a point mass
    if edge.any():
        out[edge] = _stretched(yd[edge], n, generator, arm).float()
    inner = (~edge).nonzero().flatten()
    per_chunk = max(1, chunk_draws // (4 * ROUND))
    with ProgressBar("exact posterior", inner.numel(), enabled=progress) as bar:
        for j in range(0, inner.numel(), per_chunk):
            idx = inner[j:j + per_chunk]
            res = _sample_chunk(yd[idx], n, generator, arm, ess_ratio, max_pool, chunk_draws)
            out[idx] = res.samples.float()
            cpu = idx.cpu()
            ess[cpu], pool[cpu], evidence[cpu] = res.ess, res.pool, res.evidence
            bar.update(advance=idx.numel())

    short = (ess < ess_ratio * n).nonzero().flatten().tolist()
    if short:
        shown = "; ".join(f"target {i} y=({y[i, 0]:.4g}, {y[i, 1]:.4g}): ESS {ess[i]:.3g}"
                          for i in short[:10])
        warnings.warn(f"exact posterior: {len(short)} target(s) reached fewer than "
                      f"{ess_ratio:g} x {n} effective samples within {max_pool} draws ({shown})."
                      f" Their samples are valid but more correlated (more repeats).",
                      stacklevel=2)
    return ExactResult(out, ess, pool, evidence)


def reference_posterior(y: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """The problem's ``reference_posterior``: (m, n, 4) float32 exact samples for y (m, 2)."""
    return sample_posterior(y, n, generator).samples


def _stretched(y: Tensor, n: int, gen: torch.Generator, arm: Arm) -> Tensor:
    """|y1| = reach: the limit point mass (x1 = y2, all segments horizontal): a = 0, or folded
    back (y1 < 0) a1 = +pi or -pi with equal weight (further multiples of 2 pi: < e^-150)."""
    if min(arm.lengths) <= 0:
        raise InvkitError(f"Targets with |y1| = {arm.reach:g} have no point-mass limit when a "
                          f"segment has length 0 (lengths {arm.lengths}).")
    x = torch.zeros(y.shape[0], n, 4, dtype=y.dtype, device=y.device)
    x[:, :, 0] = y[:, 1:2]
    sign = torch.where(torch.rand(y.shape[0], n, generator=gen, device=y.device) < 0.5, -1.0, 1.0)
    x[:, :, 1] = torch.where(y[:, :1] < 0, sign.to(y.dtype) * math.pi, 0.0)
    return x


def _sample_chunk(y: Tensor, n: int, gen: torch.Generator, arm: Arm, ess_ratio: float,
                  max_pool: int, chunk_draws: int) -> ExactResult:
    """Pilot, then rounds of main draws into a streaming SIR reservoir, for a few targets.

    Round r draws B_r proposals per target, B_rk of them in chart k (the same split for every
    target of the round, so each chart is one rectangular block); a draw's weight is
    f_k / q_k * B_r / B_rk, so each round's weights sum to B_r times an unbiased estimate of
    p(y), whatever the split, and the rounds pool as one sample.
    """
    m, dev, dt = y.shape[0], y.device, y.dtype
    y1, y2 = y[:, 0], y[:, 1]

    # pilot: fit each chart's proposal and estimate its share of the posterior
    proposals, log_z = [], []
    rows = torch.arange(m, device=dev).repeat_interleave(PILOT)
    for k in range(3):
        proposal = pilot_proposal(k, y1, arm)
        for _ in range(PILOT_STAGES):
            b, log_q = proposal.sample(rows, gen)
            log_f, _ = chart(k, b, y1[rows], y2[rows], arm)
            log_w = (torch.logsumexp(log_f, 0) - log_q).view(m, PILOT)
            mu, chol = fit(k, b.view(2, m, PILOT), log_w, arm)
            proposal = Proposal(DEFENSIVE, free_sd(k, arm), mu, chol)
        proposals.append(proposal)
        log_z.append(torch.logsumexp(log_w, 1))
    share = torch.softmax(torch.stack(log_z, 1), 1).nan_to_num(nan=1 / 3)

    # main rounds: a streaming SIR reservoir per target
    want = ess_ratio * n
    keep = torch.zeros(m, n, 4, dtype=dt, device=dev)
    log_s1 = torch.full((m,), -math.inf, dtype=dt, device=dev)
    log_s2 = torch.full((m,), -math.inf, dtype=dt, device=dev)
    drawn = torch.zeros(m, dtype=torch.long, device=dev)
    active = torch.arange(m, device=dev)
    sig_a = torch.tensor(arm.sigma[1:], dtype=dt, device=dev)
    while active.numel():
        ma = active.numel()
        ess_now = torch.exp(2 * log_s1[active] - log_s2[active]).nan_to_num(nan=0.0)
        rate = torch.where(drawn[active] > 0, ess_now / drawn[active].clamp_min(1), 0.5)
        need = ((want - ess_now) / rate.clamp_min(1e-3) * 1.05).clamp_max(max_pool)
        size = int(min(max(float(need.median()), ROUND), max(ROUND, chunk_draws // ma)))
        split = share[active].mean(0).clamp_min(MIN_SHARE)
        counts = (split / split.sum() * size).floor().long().clamp_min(1).tolist()
        counts[2] = size - counts[0] - counts[1]
        log_w = torch.empty(ma, 2, size, dtype=dt, device=dev)
        xs = torch.empty(4, ma, 2, size, dtype=dt, device=dev)
        lo = 0
        for k in range(3):
            hi = lo + counts[k]
            t = active.repeat_interleave(counts[k])
            b, log_q = proposals[k].sample(t, gen)
            log_f, x = chart(k, b, y1[t], y2[t], arm)
            log_q = log_q + math.log(counts[k] / size)
            log_w[:, :, lo:hi] = (log_f - log_q).view(2, ma, -1).transpose(0, 1)
            xs[:, :, :, lo:hi] = x.view(4, 2, ma, -1).transpose(1, 2)
            lo = hi
        log_w = log_w.view(ma, 2 * size)
        xs = xs.view(4, ma, 2 * size)
        log_round = torch.logsumexp(log_w, 1)
        log_s2[active] = torch.logaddexp(log_s2[active], torch.logsumexp(2 * log_w, 1))
        total = torch.logaddexp(log_s1[active], log_round)
        log_s1[active] = total
        drawn[active] += size
        hit = torch.isfinite(log_round)
        if hit.any():
            h = hit.nonzero().flatten()
            probs = torch.exp(log_w[h] - log_round[h, None])
            pick = torch.multinomial(probs, n, replacement=True, generator=gen)
            x = torch.stack([xs[i, h[:, None], pick] for i in range(4)], -1)
            slot = pick % size
            which = (slot >= counts[0]).long() + (slot >= counts[0] + counts[1]).long()
            x = _pick_branch(x, which, sig_a, gen)
            p_new = torch.exp(log_round[h] - total[h])
            swap = torch.rand(h.numel(), n, generator=gen, device=dev) < p_new[:, None]
            tgt = active[h]
            keep[tgt] = torch.where(swap[..., None], x, keep[tgt])
        ess_now = torch.exp(2 * log_s1[active] - log_s2[active]).nan_to_num(nan=0.0)
        done = (ess_now >= want) | (drawn[active] >= max_pool)
        active = active[~done]

    missing = ~torch.isfinite(log_s1)
    if missing.any():
        i = int(missing.nonzero()[0])
        raise InvkitError(
            f"exact posterior: no configuration of the arm reaching y=({y1[i]:.6g}, "
            f"{y2[i]:.6g}) was found in {int(drawn[i])} draws; the target sits at the very "
            f"edge of the reach (|y1| = {arm.reach:g} is the limit), where the solution set "
            f"is too small to hit. Round |y1| to {arm.reach:g} to get the limiting posterior."
        )
    ess = torch.exp(2 * log_s1 - log_s2).double().cpu()
    evidence = torch.exp(log_s1 - drawn.to(dt).log()).double().cpu()
    return ExactResult(keep, ess, drawn.cpu(), evidence)


def _pick_branch(x: Tensor, chart: Tensor, sig_a: Tensor, gen: torch.Generator) -> Tensor:
    """Shift each picked particle's solved angle by 2 pi j, j in {-1, 0, 1}, with probability
    proportional to its prior there (the other factors of its weight do not depend on j)."""
    col = (chart + 1)[..., None]
    r = x.gather(-1, col).squeeze(-1)
    s = sig_a[chart]
    logits = torch.stack([-0.5 * ((r + j * _TWO_PI) / s) ** 2 for j in (-1, 0, 1)], -1)
    p = torch.softmax(logits, -1).cumsum(-1)
    u = torch.rand(r.shape, generator=gen, device=r.device, dtype=r.dtype)
    j = (u[..., None] > p[..., :2]).sum(-1).to(r.dtype) - 1
    return x.scatter(-1, col, (r + j * _TWO_PI)[..., None])
