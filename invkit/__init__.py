"""invkit: Bayesian inverse problems with invertible neural networks.

>>> import invkit
>>> problem = invkit.get_problem("gmm")          # any registered problem plugin
>>> posterior = invkit.load("runs/gmm/...")       # a trained run directory
>>> x = posterior.sample(y, 1000)                 # (1000, dim_x) for one observation
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invkit.errors import InvkitError
from invkit.hookspecs import hookimpl
from invkit.problem import (
    Baseline,
    BaselineResult,
    EvalContext,
    ForwardProcess,
    Observations,
    Prior,
    Problem,
    ProblemSpec,
    Simulations,
)
from invkit.registry import get_problem, get_registry
from invkit.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from invkit.posterior import Posterior

__all__ = [
    "Baseline", "BaselineResult", "EvalContext", "ForwardProcess", "InvkitError",
    "Observations", "Prior", "Problem", "ProblemSpec", "Simulations", "get_problem",
    "get_registry", "hookimpl", "load", "train", "__version__",
]


def load(run_dir: Any, device: str = "cpu") -> Posterior:
    """The posterior of a trained run directory (or a ``model.pt`` inside one)."""
    from invkit.loading import load_posterior

    return load_posterior(run_dir, device=device)


def train(problem: str, **kwargs: Any) -> Any:
    """Train from Python with the CLI's config: see :func:`invkit.api.train`."""
    from invkit.api import train as _train

    return _train(problem, **kwargs)
