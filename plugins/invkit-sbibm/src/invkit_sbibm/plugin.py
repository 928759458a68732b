"""Registers every sbibm task as the invkit problem ``sbibm_<task>`` (entry point ``sbibm``).

Per task: a prior ``sbibm_<task>_prior``, a stochastic forward process
``sbibm_<task>_simulator`` and the problem, whose observations are sbibm's 10 official ones
with their true parameters and reference posterior samples. sbibm's ``theta`` (parameters)
becomes invkit's ``x``, sbibm's data ``x`` becomes invkit's ``y``.

Written against the core's contract for stochastic simulators (``ForwardProcess(...,
backend="torch", rng="generator")``, ``Problem(..., observations=...)``,
``invkit.Observations``). A core without it gets a clear error from the hooks instead of a
half-registered plugin. Status: this module imports, but is not yet tested against that
contract (it lands on main separately); ``tests/test_plugin.py`` runs once it exists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import invkit
from invkit.errors import InvkitError

from invkit_sbibm import data
from invkit_sbibm.tasks import TASKS, Task

PREFIX = "sbibm_"


def _require_stochastic_contract() -> None:
    """Refuse, with the fix, on a core that predates stochastic simulators."""
    fields = {f.name for f in dataclasses.fields(invkit.ForwardProcess)}
    if not hasattr(invkit, "Observations") or "rng" not in fields:
        raise InvkitError(
            "invkit-sbibm needs an invkit whose ForwardProcess accepts rng='generator' "
            "(stochastic simulators) and which has invkit.Observations; this invkit has not. "
            "Upgrade invkit (pip install -U invkit)."
        )


def prior_name(task: Task) -> str:
    return f"{PREFIX}{task.name}_prior"


def forward_name(task: Task) -> str:
    return f"{PREFIX}{task.name}_simulator"


def problem_name(task: Task) -> str:
    return f"{PREFIX}{task.name}"


@invkit.hookimpl
def invkit_register_priors(register: Callable[[Any], None]) -> None:
    _require_stochastic_contract()
    for task in TASKS.values():
        register(invkit.Prior(
            name=prior_name(task), dim=task.dim_theta, sample_fn=task.sample_prior,
            log_prob_fn=task.prior.log_prob, description=f"sbibm {task.name} prior",
        ))


@invkit.hookimpl
def invkit_register_forward_processes(register: Callable[[Any], None]) -> None:
    _require_stochastic_contract()
    for task in TASKS.values():
        register(invkit.ForwardProcess(
            name=forward_name(task), dim_x=task.dim_theta, dim_y=task.dim_x, fn=task.simulate,
            description=f"sbibm {task.name} simulator (stochastic)",
            backend="torch", rng="generator",
        ))


def observations(task_name: str) -> Any:
    """sbibm's 10 official observations of a task, with true parameters and reference samples
    (read on first use; needs ``pip install --no-deps sbibm==1.1.0``)."""
    return invkit.Observations(
        y=data.observations(task_name),
        x_true=data.true_parameters(task_name),
        reference_samples=data.all_reference_samples(task_name),
        names=[f"num_observation_{k}" for k in range(1, data.NUM_OBSERVATIONS + 1)],
    )


def build(task: Task) -> Any:
    """The invkit problem of one task (no options: the tasks are fixed by sbibm)."""
    return invkit.Problem(
        name=problem_name(task), prior=prior_name(task), forward=forward_name(task),
        description=task.description, param_names=task.theta_names, obs_names=task.x_names,
        observations=partial(observations, task.name),
    )


@invkit.hookimpl
def invkit_register_problems(register: Callable[[Any], None]) -> None:
    _require_stochastic_contract()
    for task in TASKS.values():
        register(invkit.ProblemSpec(
            name=problem_name(task), build=partial(build, task),
            description=f"sbibm {task.name}: {task.description}",
        ))
