"""Registers the ``abc`` baseline with invkit (entry point ``abc``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from invkit import Baseline, BaselineResult, InvkitError, Problem, distributed, hookimpl
from invkit.errors import suggest
from invkit_abc.quantile import quantile_abc
from invkit_abc.rejection import rejection_abc

OPTIONS: dict[str, Any] = {
    "method": "rejection",  # rejection | quantile
    "tolerance": 0.005,  # rejection: L2 distance in y
    "budget": 10_000_000,  # simulations (one pool shared by all targets)
    "n_keep": 0,  # quantile: nearest draws kept per target; 0 keeps n
    "chunk_size": 1_000_000,  # simulations per step; memory, not results, depends on it
    "min_accept": 100,  # rejection: warn about targets with fewer acceptances (or fewer than n)
}
METHODS = ("rejection", "quantile")


def run(
    problem: Problem,
    y: torch.Tensor,
    n: int,
    options: Mapping[str, Any],
    generator: torch.Generator,
    progress: bool = False,
) -> BaselineResult:
    """Up to n posterior samples per row of y by rejection ABC, or exactly n by quantile ABC.

    In a joined process group (``torchrun``, :func:`invkit.distributed.init_from_env`) every
    rank must call this alike: each simulates its share of the budget and all return the
    one-process result. Code that only rank 0 runs wraps the call in
    :func:`invkit.distributed.one_rank`.
    """
    unknown = set(options) - set(OPTIONS)
    if unknown:
        key = sorted(unknown)[0]
        raise InvkitError(
            f"Baseline 'abc' has no option {key!r}.{suggest(key, OPTIONS)} "
            f"Its options: {', '.join(OPTIONS)}."
        )
    opts = {**OPTIONS, **options}
    method = opts["method"]
    common = {
        "chunk_size": opts["chunk_size"],
        "generator": generator,
        "progress": progress,
        "shard": distributed.current(),
    }
    if method == "rejection":
        return rejection_abc(
            problem, y, float(opts["tolerance"]), opts["budget"],
            max_accept=n, min_accept=min(int(opts["min_accept"]), n), **common,
        )
    if method == "quantile":
        n_keep = int(opts["n_keep"]) or n
        return quantile_abc(problem, y, n_keep, opts["budget"], **common)
    raise InvkitError(
        f"Baseline 'abc' has no method {method!r}.{suggest(str(method), METHODS)} "
        f"Methods: {', '.join(METHODS)}."
    )


@hookimpl
def invkit_register_baselines(register: Callable[[Baseline], None]) -> None:
    register(
        Baseline(
            name="abc",
            run=run,
            description=(
                "approximate Bayesian computation: rejection (L2 tolerance) or quantile "
                "(n nearest of one shared simulation pool); needs only a prior and a simulator"
            ),
            options=dict(OPTIONS),
            # as an evaluation reference: the n nearest draws of one shared pool per target
            reference_options={"method": "quantile", "n_keep": 0},
        )
    )
