"""The plugin contract: one hook per kind, each receiving a ``register`` callback.

A plugin module (named by an entry point in the ``invkit`` group) implements any of these
with ``@invkit.hookimpl``. Each hook may call ``register`` any number of times. invkit checks
every registration at once (unique names, declared dims, right types) and, on first use,
that the callables produce what they declared; errors name the plugin and its distribution.

Rules for the callables you register:

* they take and return batched ``torch`` tensors (float32 unless stated) and use only torch
  operations, so they run on CPU and GPU alike and on whole batches at once;
* randomness comes only from the ``torch.Generator`` passed in, never from global RNGs;
* shapes: a prior draws ``(n, dim)``; a forward process maps ``(n, dim_x)`` to
  ``(n, dim_y)``; a reference posterior maps ``y`` of ``(m, dim_y)`` to ``(m, n, dim_x)``.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from invkit.problem import Baseline, ForwardProcess, Prior, ProblemSpec

PROJECT = "invkit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def invkit_register_priors(register: Callable[[Prior], None]) -> None:
    """Register priors p(x): ``register(Prior(name, dim, sample_fn, log_prob_fn=None))``.

    ``sample_fn(n, generator)`` returns ``(n, dim)`` on ``generator.device``.
    A problem of any plugin can then refer to the prior by its name.
    """


@hookspec
def invkit_register_forward_processes(register: Callable[[ForwardProcess], None]) -> None:
    """Register forward processes: ``register(ForwardProcess(name, dim_x, dim_y, fn))``.

    ``fn(x)`` maps ``(n, dim_x)`` to ``(n, dim_y)``, deterministically, in pure torch.
    """


@hookspec
def invkit_register_problems(register: Callable[[ProblemSpec], None]) -> None:
    """Register problems: ``register(ProblemSpec(name, build, options={...}))``.

    ``build(**options)`` returns a :class:`invkit.Problem`; its ``prior`` and ``forward`` may be
    objects or names of registered priors / forward processes. ``options`` declares each
    problem option with its default (users set them with ``--set NAME=VALUE``).
    """


@hookspec
def invkit_register_baselines(register: Callable[[Baseline], None]) -> None:
    """Register baselines (reference solvers): ``register(Baseline(name, run, options={...}))``.

    ``run(problem, y, n, options, generator)`` returns a :class:`invkit.BaselineResult` with
    posterior samples for each row of ``y`` (shape ``(m, dim_y)``).
    """
