"""How long training runs and how its learning rate moves, from the budget and the config.

Three rules, each a pure function of the config and the number of training pairs (so a resumed
run plans exactly what an uninterrupted one did):

* **steps** (:func:`planned_steps`): ``train.steps``, or with ``train.steps = 0`` (auto) enough
  steps for ``AUTO_EPOCHS`` passes over the training pairs, between ``AUTO_MIN_STEPS`` and
  ``AUTO_MAX_STEPS``. With a validation split, training usually stops earlier
  (``train.patience``); the cap bounds the time a large budget may take.
* **validation cadence** (:func:`validation_interval`): ``train.validate_every``, or with 0 once
  per pass over the training pairs (an epoch) but at least every ``MIN_VALIDATION_STEPS``,
  rounded up to a multiple of ``train.log_every`` so that each check lands on a logged step.
* **learning rate**: ``train.lr_schedule = "cosine"`` decays from ``train.lr`` to
  ``train.lr_final`` over the planned steps (:func:`cosine_lr`); ``"plateau"``
  (:class:`PlateauSchedule`) multiplies it by ``train.lr_decay`` after ``train.lr_patience``
  validation checks without a better validation loss, never below ``train.lr_final``.
"""

from __future__ import annotations

import math
from typing import Any

from invkit.config import TrainConfig
from invkit.errors import ConfigError

AUTO_EPOCHS = 500
"""Passes over the training pairs that ``train.steps = 0`` plans; early stopping ends most runs
before. (200 were too few on small budgets: two moons at 1e4 simulations ran all its 7200
steps with the validation loss still improving at the end, C2ST 0.578.)"""
AUTO_MIN_STEPS = 2_000
"""At least this many steps with ``train.steps = 0`` (tiny budgets: many short epochs)."""
AUTO_MAX_STEPS = 30_000
"""At most this many steps with ``train.steps = 0`` (large budgets: the time it may take)."""


MIN_VALIDATION_STEPS = 200
"""Fewest steps between two validation checks with ``train.validate_every = 0``. On a small
budget an epoch is a few dozen steps, and ``train.patience`` checks that close together end
training within the noise of the validation loss (two moons at 1e4 simulations: 36 steps per
epoch, and checks once per epoch stopped training at step 5000 with a C2ST of 0.602)."""


def epoch_steps(train: TrainConfig, n_train: int) -> int:
    """Steps per pass over ``n_train`` training pairs (batches are drawn with replacement, so
    an epoch is a number of pairs seen, not a partition)."""
    return max(1, math.ceil(n_train / train.batch_size))


def planned_steps(train: TrainConfig, n_train: int) -> int:
    """The number of steps training runs at most: ``train.steps``, or the auto rule."""
    if train.steps > 0:
        return train.steps
    return int(min(AUTO_MAX_STEPS, max(AUTO_MIN_STEPS, AUTO_EPOCHS * epoch_steps(train,
                                                                               n_train))))


def validation_interval(train: TrainConfig, n_train: int) -> int:
    """Steps between validation checks: ``train.validate_every``, or one epoch (at least
    ``MIN_VALIDATION_STEPS``) rounded up to a multiple of ``train.log_every``."""
    if train.validate_every > 0:
        return train.validate_every
    every = train.log_every
    return every * math.ceil(max(epoch_steps(train, n_train), MIN_VALIDATION_STEPS) / every)


def cosine_lr(train: TrainConfig, step: int, total: int) -> float:
    """Cosine decay from ``train.lr`` at step 0 to ``train.lr_final`` at ``total``."""
    frac = min(1.0, step / max(1, total))
    return train.lr_final + 0.5 * (train.lr - train.lr_final) * (1.0 + math.cos(math.pi * frac))


def check_schedule(train: TrainConfig, validation: float) -> None:
    """Refuse the plateau schedule when there is no validation loss to watch.

    ``train.patience`` and ``train.keep_best`` are on by default and simply have nothing to do
    without a validation split (training runs all its steps, the last weights are kept), so a
    user who sets ``data.validation=0`` need not switch them off as well.
    """
    if validation > 0 or train.lr_schedule != "plateau":
        return
    raise ConfigError(
        "train.lr_schedule=plateau lowers the rate when the validation loss stops improving, "
        "but data.validation is 0. Hold out part of the budget (--set data.validation=0.1), "
        "or use --set train.lr_schedule=cosine.")


class PlateauSchedule:
    """The learning rate of ``train.lr_schedule = "plateau"``: ``train.lr`` until
    ``train.lr_patience`` validation checks in a row bring no better loss, then times
    ``train.lr_decay``, and so on, never below ``train.lr_final``. A better loss restarts the
    count; so does a decay (the new rate gets its own ``lr_patience`` checks)."""

    def __init__(self, train: TrainConfig) -> None:
        self.lr0, self.floor = train.lr, min(train.lr_final, train.lr)
        self.decay, self.patience = train.lr_decay, train.lr_patience
        self.lr = self.lr0
        self.waiting = 0  # checks since the last improvement or decay
        self.decays = 0

    def update(self, improved: bool) -> bool:
        """Record one validation check; whether the rate was lowered."""
        if improved:
            self.waiting = 0
            return False
        self.waiting += 1
        if self.waiting < self.patience or self.lr <= self.floor:
            return False
        self.lr = max(self.floor, self.lr * self.decay)
        self.waiting = 0
        self.decays += 1
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "waiting": self.waiting, "decays": self.decays}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr = float(state["lr"])
        self.waiting = int(state["waiting"])
        self.decays = int(state["decays"])
