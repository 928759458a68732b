"""Training data: prior draws pushed through the forward process, kept as device tensors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from invkit.device import make_generator
from invkit.problem import Problem


@dataclass
class Dataset:
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    x_val: Tensor | None = None
    y_val: Tensor | None = None

    def split_validation(self, fraction: float) -> None:
        """Hold out the last ``fraction`` of the training pairs (at least one pair each side)."""
        n = self.x_train.shape[0]
        k = min(n - 1, max(1, round(fraction * n))) if fraction > 0 and n > 1 else 0
        if k:
            self.x_val, self.y_val = self.x_train[n - k:], self.y_train[n - k:]
            self.x_train, self.y_train = self.x_train[:n - k], self.y_train[:n - k]

    def batch(self, batch_size: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """A random batch by index (with replacement): no per-sample Python, no epoch state."""
        n = self.x_train.shape[0]
        idx = torch.randint(n, (batch_size,), generator=gen, device=self.x_train.device)
        return self.x_train[idx], self.y_train[idx]


def simulate(problem: Problem, n: int, gen: torch.Generator,
             chunk: int = 1_000_000) -> tuple[Tensor, Tensor]:
    """n pairs (x, y = s(x)) in float32, simulated in chunks written into preallocated tensors:
    the peak is the data plus one chunk's temporaries (a list of chunks joined by torch.cat
    would hold the data twice; benchmarks/memory.py)."""
    x_all = torch.empty(n, problem.dim_x, device=gen.device)
    y_all = torch.empty(n, problem.dim_y, device=gen.device)
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        x, y = problem.sample_joint(k, gen)
        x_all[start:start + k] = x
        y_all[start:start + k] = y
        del x, y
    return x_all, y_all


def held_out_split(problem: Problem, n_test: int, seed: int, device: torch.device
               ) -> tuple[Tensor, Tensor]:
    """The held-out split has its own stream, so evaluation can rebuild it without the rest."""
    return simulate(problem, n_test, make_generator(device, seed + 3))


def generate(problem: Problem, n_train: int, n_test: int, seed: int,
             device: torch.device) -> Dataset:
    x, y = simulate(problem, n_train, make_generator(device, seed))
    x_test, y_test = held_out_split(problem, n_test, seed, device)
    return Dataset(x, y, x_test, y_test)
