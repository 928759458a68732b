"""What happens to simulations with NaN or infinite values (``nan_policy``).

Simulators fail in ways that produce NaN (a diverging ODE, a log of zero, a cluster job that
wrote nothing). One such row in the training data turns every loss into NaN, so invkit never
trains on them: ``"drop"`` removes them and warns with the count and the fraction (the run
goes on with fewer pairs), ``"error"`` refuses them, saying the same and how to switch.
Simulations and files of simulations follow the same policy; the counts end up in the
result (``SimulationResult.dropped``) so a run can record them.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from invkit.errors import InvkitError, InvkitWarning

NAN_POLICIES = ("drop", "error")
"""``drop``: remove the rows and warn; ``error``: raise :class:`~invkit.errors.InvkitError`."""


def check_policy(policy: str) -> None:
    """Refuse an unknown policy early, before anything is simulated."""
    if policy not in NAN_POLICIES:
        raise InvkitError(f"nan_policy={policy!r} is not a policy for non-finite simulations; "
                          f"use one of {', '.join(repr(p) for p in NAN_POLICIES)}.")


def finite_rows(x: Tensor, y: Tensor) -> Tensor:
    """A boolean mask: rows whose x and y are all finite."""
    return torch.isfinite(x).all(dim=1) & torch.isfinite(y).all(dim=1)


def describe(bad: int, total: int, source: str) -> str:
    """'3 of 1000 simulations (0.3%) from SOURCE had NaN or infinite values in x or y'."""
    share = 100.0 * bad / max(total, 1)
    return (f"{bad} of {total} simulations ({share:.3g}%) from {source} had NaN or infinite "
            f"values in x or y")


def refuse(bad: int, total: int, source: str) -> InvkitError:
    """The error of ``nan_policy="error"``: what was found, and how to drop them instead."""
    return InvkitError(f"{describe(bad, total, source)}. invkit does not train on them "
                       f"(nan_policy='error'). Fix the simulator, or drop those rows with "
                       f"nan_policy='drop' (config: data.nan_policy = \"drop\", or --set "
                       f"data.nan_policy=drop).")


def apply(x: Tensor, y: Tensor, policy: str, source: str) -> tuple[Tensor, Tensor, int]:
    """The finite rows of (x, y) and how many were dropped; warns or raises by ``policy``."""
    check_policy(policy)
    keep = finite_rows(x, y)
    bad = int((~keep).sum())
    if bad == 0:
        return x, y, 0
    total = int(x.shape[0])
    if policy == "error":
        raise refuse(bad, total, source)
    if bad == total:
        raise InvkitError(f"{describe(bad, total, source)}: all of them, so nothing is left "
                          f"to train on. Check the simulator (or the file) on a few inputs.")
    warnings.warn(InvkitWarning(f"{describe(bad, total, source)} and were dropped "
                                f"(nan_policy='drop'); {total - bad} remain."), stacklevel=3)
    return x[keep], y[keep], bad
