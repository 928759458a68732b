"""C2ST of a trained posterior against reference posterior samples, as run metrics.

The classifier two-sample test (:mod:`invkit.evaluation.c2st`, sbibm's recipe) tells how well a
classifier separates the posterior's samples from reference ones: 0.5 is perfect. It runs
wherever a problem provides reference samples: on its own observations when they come with
them (a benchmark's, e.g. sbibm's ten), else on a few held-out observations when the problem
has an exact posterior.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from invkit.evaluation.c2st import c2st
from invkit.problem import EvalContext


def c2st_metrics(ctx: EvalContext) -> dict[str, Any]:
    cfg, problem, post = ctx.config, ctx.problem, ctx.posterior
    # its own stream: adding C2ST changes none of the other figures of a seeded run
    gen = torch.Generator(device=ctx.device).manual_seed(cfg.seed + 11)
    t0 = time.perf_counter()
    scores: list[float] = []
    source = ""
    if problem.observations is not None and cfg.eval.c2st_observations > 0:
        obs = problem.observations()
        if obs.reference_samples is not None:
            k = min(cfg.eval.c2st_observations, obs.y.shape[0])
            for i in range(k):
                ref = torch.as_tensor(obs.reference_samples[i], dtype=torch.float32)
                n = min(cfg.eval.c2st_samples, ref.shape[0])
                samples = post.sample(obs.y[i], n, generator=gen)
                scores.append(c2st(ref[:n], samples.cpu(), seed=cfg.seed + i + 1))
            source = "observations"
    elif problem.reference_posterior is not None and cfg.eval.c2st_targets > 0:
        k = min(cfg.eval.c2st_targets, ctx.y_test.shape[0])
        n = min(cfg.eval.c2st_samples, cfg.eval.n_samples)
        targets = ctx.y_test[:k]
        refs = problem.reference_posterior(targets, n, gen)
        samples = post.sample(targets, n, generator=gen)
        scores = [c2st(refs[i].cpu(), samples[i].cpu(), seed=cfg.seed + i + 1)
                  for i in range(k)]
        source = "held-out"
    if not scores:
        return {}
    return {"c2st_mean": sum(scores) / len(scores), "c2st_per_observation": scores,
            "c2st_min": min(scores), "c2st_max": max(scores), "c2st_on": source,
            "c2st_time_s": time.perf_counter() - t0}
