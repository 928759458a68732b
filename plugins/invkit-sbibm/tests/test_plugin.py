"""The registration module. It is written against the core's contract for stochastic simulators
(``ForwardProcess(..., rng="generator")``, ``Problem(observations=...)``,
``invkit.Observations``); where the installed core predates it, only importing and the clear
refusal are tested, and the registration test is skipped."""

from __future__ import annotations

import dataclasses
import importlib

import invkit
import pytest
import torch

from invkit_sbibm import data
from invkit_sbibm.tasks import TASKS
from sbibm_helpers import gen, requires_sbibm

plugin = importlib.import_module("invkit_sbibm.plugin")

NEW_CONTRACT = hasattr(invkit, "Observations") and "rng" in {
    f.name for f in dataclasses.fields(invkit.ForwardProcess)}


def collect(hook) -> list:
    out: list = []
    hook(out.append)
    return out


def test_plugin_module_imports_and_names_problems_after_sbibm():
    assert plugin.problem_name(TASKS["two_moons"]) == "sbibm_two_moons"
    assert hasattr(plugin, "invkit_register_problems")


@pytest.mark.skipif(NEW_CONTRACT, reason="the core has the stochastic-simulator contract")
def test_old_core_gets_a_clear_refusal():
    for hook in (plugin.invkit_register_priors, plugin.invkit_register_forward_processes,
                 plugin.invkit_register_problems):
        with pytest.raises(invkit.InvkitError, match="rng='generator'.*Upgrade invkit"):
            collect(hook)


@pytest.mark.skipif(not NEW_CONTRACT, reason="the core lacks the stochastic-simulator contract")
@requires_sbibm
def test_registers_one_problem_per_task_with_observations():  # pragma: no cover - future core
    priors = {p.name: p for p in collect(plugin.invkit_register_priors)}
    forwards = {f.name: f for f in collect(plugin.invkit_register_forward_processes)}
    specs = {s.name: s for s in collect(plugin.invkit_register_problems)}
    assert set(specs) == {f"sbibm_{t}" for t in TASKS}
    for name, task in TASKS.items():
        problem = specs[f"sbibm_{name}"].build()
        prior, forward = priors[problem.prior], forwards[problem.forward]
        assert (prior.dim, forward.dim_x, forward.dim_y) == (task.dim_theta, task.dim_theta,
                                                             task.dim_x)
        g = gen(0)
        x = prior.sample(4, g)
        assert forward.fn(x, g).shape == (4, task.dim_x)
        obs = problem.observations()
        assert obs.y.shape == (10, task.dim_x) and obs.x_true.shape == (10, task.dim_theta)
        assert len(obs.reference_samples) == 10
        torch.testing.assert_close(obs.reference_samples[0], data.reference_samples(name, 1))
