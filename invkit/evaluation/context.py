"""What evaluation code (core and problem plugins) gets to work with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from invkit.problem import Problem


@dataclass
class EvalContext:
    """Handed to ``Problem.metrics(ctx)`` and ``Problem.plots(ctx)``.

    ``posterior.sample(y, n)`` draws samples; ``x_test`` / ``y_test`` are the held-out split
    (prior draws never used for training); ``generator`` is the evaluation's seeded RNG;
    ``plot_dir`` is where plots go; ``config`` the run's resolved config.
    """

    problem: Problem
    posterior: Any
    config: Any
    device: torch.device
    generator: torch.Generator
    plot_dir: Path
    x_test: Tensor
    y_test: Tensor
