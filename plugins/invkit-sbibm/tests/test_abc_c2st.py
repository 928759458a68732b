"""End to end: our prior and simulator, through quantile ABC, give sbibm's reference posterior.

For two observations of two_moons, the 1,000 nearest of 10^7 simulations (tolerance ~0.008,
below the moons' width 0.01) are compared with 1,000 of sbibm's reference samples by C2ST.
A simulator with the radius 20% off, or without the absolute value that makes the two moons,
scores 0.74 to 0.80 here; the correct one about 0.50 (0.49 to 0.51 measured).
"""

from __future__ import annotations

import pytest
import torch

from invkit_sbibm import data
from invkit_sbibm.tasks import Task, get_task
from sbibm_helpers import gen, requires_sbibm

pytest.importorskip("sklearn")
c2st_module = pytest.importorskip("invkit.evaluation.c2st")


def nearest_abc(task: Task, x_o: torch.Tensor, budget: int, keep: int,
                generator: torch.Generator, chunk: int = 2**20) -> tuple[torch.Tensor, float]:
    """The ``keep`` prior draws whose simulations are nearest to ``x_o``, and the largest kept
    distance (the effective tolerance). Brute force, chunk by chunk."""
    best_d = torch.full((keep,), float("inf"))
    best_theta = torch.zeros(keep, task.dim_theta)
    for start in range(0, budget, chunk):
        theta = task.sample_prior(min(chunk, budget - start), generator)
        d = ((task.simulate(theta, generator) - x_o) ** 2).sum(1)
        near = d < best_d.max()
        d_all, theta_all = torch.cat([best_d, d[near]]), torch.cat([best_theta, theta[near]])
        idx = torch.topk(d_all, keep, largest=False).indices
        best_d, best_theta = d_all[idx], theta_all[idx]
    return best_theta, float(best_d.max().sqrt())


@requires_sbibm
@pytest.mark.parametrize("num_observation", [1, 2])
def test_quantile_abc_matches_the_reference_posterior(num_observation):
    task = get_task("two_moons")
    x_o = data.observation("two_moons", num_observation)
    samples, tolerance = nearest_abc(task, x_o, 10_000_000, 1000, gen(num_observation))
    assert tolerance < 0.01
    reference = data.reference_samples("two_moons", num_observation)
    reference = reference[torch.randperm(reference.shape[0], generator=gen(0))[:1000]]
    assert c2st_module.c2st(samples, reference) < 0.56
