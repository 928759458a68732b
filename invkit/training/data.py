"""Training data: the budget's simulations (or a file's pairs), split into training, validation
and held-out test pairs, kept as device tensors.

Simulations come from :func:`invkit.simulation.simulate`: reproducible from the run's seed in
seed blocks (whatever the number of worker processes), cached, with non-finite rows dropped or
refused (``data.nan_policy``). The held-out test pairs have a stream of their own (the seed
plus :data:`TEST_STREAM`, out of reach of any other run's seed), so evaluation rebuilds them
without the rest, and they are not part of the budget. A problem made of a file of
simulations has no stream to draw more from: its rows are shuffled with the seed, the first
``data.n_test`` (at most a fifth of them) are held out, and training takes up to the budget
of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from invkit.config import DataConfig
from invkit.problem import Problem
from invkit.simulation import simulate
from invkit.training.balance import balance_weights, cumulative, draw

TEST_STREAM = 2**40
"""Added to the seed for the held-out stream (user seeds stay below 2**32)."""
FILE_TEST_SHARE = 0.2
"""Most of a file's rows held out for evaluation."""


@dataclass
class Dataset:
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    x_val: Tensor | None = None
    y_val: Tensor | None = None
    simulations: dict[str, Any] = field(default_factory=dict)
    """Where the pairs came from, for metrics.json (counts per split)."""
    cdf: Tensor | None = None
    """Cumulative sampling weights of the training pairs (``data.balance``); None: uniform."""

    def split_validation(self, fraction: float) -> None:
        """Hold out the last ``fraction`` of the training pairs (at least one pair each side)."""
        n = self.x_train.shape[0]
        k = min(n - 1, max(1, round(fraction * n))) if fraction > 0 and n > 1 else 0
        if k:
            self.x_val, self.y_val = self.x_train[n - k:], self.y_train[n - k:]
            self.x_train, self.y_train = self.x_train[:n - k], self.y_train[:n - k]
        self.simulations["validation"] = k

    def balance(self, exponent: float, seed: int) -> None:
        """Draw the training pairs in proportion to p(y)^-exponent from now on
        (:mod:`invkit.training.balance`); 0: uniformly, as before."""
        if exponent <= 0:
            self.cdf = None
            return
        w = balance_weights(self.y_train, exponent, seed=seed)
        self.cdf = cumulative(w)
        self.simulations["balance_weight_max"] = float(w.max())
        # the share of the batches' draws the rarest tenth of the pairs gets (0.1 unbalanced)
        top = torch.sort(w, descending=True).values[:max(1, w.shape[0] // 10)]
        self.simulations["balance_rarest_tenth_share"] = float(top.sum() / w.sum())

    def batch(self, batch_size: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """A random batch by index (with replacement): no per-sample Python, no epoch state."""
        if self.cdf is not None:
            idx = draw(self.cdf, batch_size, gen)
        else:
            n = self.x_train.shape[0]
            idx = torch.randint(n, (batch_size,), generator=gen, device=self.x_train.device)
        return self.x_train[idx], self.y_train[idx]


def _shuffled_file(problem: Problem, seed: int, device: torch.device, nan_policy: str
                   ) -> tuple[Tensor, Tensor, dict[str, Any]]:
    res = simulate(problem, None, seed, nan_policy=nan_policy, device=device)
    order = torch.randperm(res.n, generator=torch.Generator().manual_seed(seed)).to(device)
    return res.x[order], res.y[order], res.counts()


def _file_test_rows(n_rows: int, n_test: int) -> int:
    return min(n_test, int(FILE_TEST_SHARE * n_rows))


def held_out_split(problem: Problem, data: DataConfig, seed: int, device: torch.device,
                   cache: Path | None = None) -> tuple[Tensor, Tensor]:
    """The held-out test pairs alone (what ``invkit evaluate`` needs), as training drew them."""
    if not problem.has_simulator:
        x, y, _ = _shuffled_file(problem, seed, device, data.nan_policy)
        k = _file_test_rows(x.shape[0], data.n_test)
        return x[:k], y[:k]
    res = simulate(problem, data.n_test, seed + TEST_STREAM, workers=data.workers, cache=cache,
                   nan_policy=data.nan_policy, device=device)
    return res.x, res.y


def generate(problem: Problem, data: DataConfig, seed: int, device: torch.device,
             cache: Path | None = None, progress: bool = False) -> Dataset:
    """The run's training pairs (the budget) and held-out test pairs; validation is split off
    the training pairs by :meth:`Dataset.split_validation`."""
    if not problem.has_simulator:
        x, y, counts = _shuffled_file(problem, seed, device, data.nan_policy)
        k = _file_test_rows(x.shape[0], data.n_test)
        n = min(data.simulations, x.shape[0] - k)
        return Dataset(x[k:k + n], y[k:k + n], x[:k], y[:k],
                       simulations={"train": n, "test": k, "file_rows": counts["from_file"],
                                    "dropped": counts["dropped"]})
    train = simulate(problem, data.simulations, seed, workers=data.workers, cache=cache,
                     progress=progress, nan_policy=data.nan_policy, device=device)
    test = simulate(problem, data.n_test, seed + TEST_STREAM, workers=data.workers, cache=cache,
                    nan_policy=data.nan_policy, device=device)
    counts = {"train": train.n, "test": test.n, "simulated": train.simulated + test.simulated,
              "from_cache": train.from_cache + test.from_cache,
              "dropped": train.dropped + test.dropped, "workers": data.workers}
    return Dataset(train.x, train.y, test.x, test.y, simulations=counts)
