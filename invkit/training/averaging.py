"""An exponential moving average of the weights (Polyak averaging), used instead of the last ones.

At a learning rate that still makes progress, the weights after any one step carry that step's
gradient noise: the validation loss stalls above what the network can represent, while the
training loss keeps falling (the network fits its training pairs instead). Averaging the
trajectory removes most of that noise at no cost in steps. On sbibm's gaussian_linear at 1e5
simulations the held-out NLL went from -0.725 to -0.772 (the exact posterior's: -0.789) with
``train.ema = 0.995``; docs/performance.md has the whole sbibm table.

Where the average is used: every validation check scores it (so ``train.keep_best`` keeps the
best average and ``train.patience`` watches it), and the model saved at the end is the average
(the best one, with ``keep_best``). The raw weights go on training and are what a resumed run
continues from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

WARMUP = 10
"""The decay of update t is ``min(ema, (1 + t) / (WARMUP + t))``: the first updates follow the
weights closely, so an early validation check does not score the random initialisation."""


class WeightAverage:
    """The average of ``params`` over the steps so far; part of the trainer's resumable state."""

    def __init__(self, named_params: dict[str, Tensor], decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the weight average's decay must lie in (0, 1), got {decay}")
        self.names = list(named_params)
        self.params = list(named_params.values())
        self.decay = decay
        self.updates = 0
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the current weights (after each optimizer step)."""
        decay = min(self.decay, (1 + self.updates) / (WARMUP + self.updates))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - decay)
        self.updates += 1

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the average inside the block and its own weights again after it."""
        saved = [p.detach().clone() for p in self.params]
        self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, saved)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Replace the model's weights by the average (the end of training)."""
        torch._foreach_copy_(self.params, self.shadow)

    @torch.no_grad()
    def restart(self) -> None:
        """Start the average afresh at the model's current weights (a checkpoint without one)."""
        torch._foreach_copy_(self.shadow, [p.detach() for p in self.params])
        self.updates = 0

    def state_dict(self) -> dict[str, Any]:
        """The average by parameter name: a model's state dict updated with ``weights`` is the
        averaged model (how an unfinished run's checkpoint is sampled, invkit.loading)."""
        return {"decay": self.decay, "updates": self.updates,
                "weights": {n: s.detach().clone() for n, s in zip(self.names, self.shadow)}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        weights = state["weights"]
        if set(weights) != set(self.names):
            raise ValueError("the checkpoint's weight average does not fit the model's "
                             "parameters")
        with torch.no_grad():
            for name, mine in zip(self.names, self.shadow):
                mine.copy_(weights[name].to(mine.device))
        self.updates = int(state["updates"])
