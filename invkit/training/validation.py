"""A validation loss during training, the best weights it saw, and stopping when it stalls.

With a finite simulation budget a network can overfit its training pairs without a sign in
the training loss. A fraction of the budget (``data.validation``) is held out; every
``train.validate_every`` steps the objective is evaluated on it, without gradients, with the
same noise each time (its own generator, reseeded), so the values are comparable from check to
check. ``train.keep_best`` ends training with the weights of the lowest validation loss, and
``train.patience`` stops after that many checks without a lower one.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

from invkit.training.objectives import total_loss

MAX_BATCHES = 16
MAX_PAIRS = 20_000
"""Validation pairs per check, at most: ``max(MAX_BATCHES * train.batch_size, MAX_PAIRS)``
(evaluated in batches of train.batch_size rows)."""


class Validation:
    """Tracks the validation loss of one training run (part of its resumable state)."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, seed: int,
                 patience: int = 0, keep_best: bool = False) -> None:
        n = min(x.shape[0], max(MAX_BATCHES * batch_size, MAX_PAIRS))
        self.x, self.y = x[:n], y[:n]
        self.batch_size, self.seed = batch_size, seed
        self.patience, self.keep_best = patience, keep_best
        self.best_loss = math.inf
        self.best_step = -1
        self.best_state: dict[str, Tensor] | None = None
        self.bad_checks = 0
        self.stopped_at: int | None = None

    @torch.no_grad()
    def loss(self, objective: nn.Module) -> float:
        """The objective's total on the validation pairs, with the same noise every time."""
        gen = torch.Generator(device=self.x.device).manual_seed(self.seed)
        totals = []
        was_training = objective.training
        objective.eval()
        try:
            for start in range(0, self.x.shape[0], self.batch_size):
                rows = slice(start, start + self.batch_size)
                totals.append(float(total_loss(objective(self.x[rows], self.y[rows], gen, 1.0))))
        finally:
            objective.train(was_training)
        return sum(totals) / max(1, len(totals))

    def check(self, objective: nn.Module, model: nn.Module, step: int) -> tuple[float, bool]:
        """(validation loss, whether training should stop now)."""
        value = self.loss(objective)
        if value < self.best_loss:
            self.best_loss, self.best_step, self.bad_checks = value, step, 0
            if self.keep_best:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_checks += 1
        stop = bool(self.patience) and self.bad_checks >= self.patience
        if stop:
            self.stopped_at = step
        return value, stop

    def restore_best(self, model: nn.Module) -> bool:
        """Load the best weights into ``model`` (when kept); whether anything changed."""
        if not self.keep_best or self.best_state is None:
            return False
        model.load_state_dict(self.best_state)
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss, "best_step": self.best_step,
                "bad_checks": self.bad_checks, "stopped_at": self.stopped_at,
                "best_state": copy.copy(self.best_state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_loss = float(state["best_loss"])
        self.best_step = int(state["best_step"])
        self.bad_checks = int(state["bad_checks"])
        self.stopped_at = state.get("stopped_at")
        self.best_state = state.get("best_state")

    def summary(self) -> dict[str, Any]:
        """What metrics.json reports of it."""
        out: dict[str, Any] = {"val_loss_best": self.best_loss, "val_best_step": self.best_step,
                               "kept_best_weights": bool(self.keep_best)}
        if self.stopped_at is not None:
            out["stopped_early_step"] = self.stopped_at
        return out
