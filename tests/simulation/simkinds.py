"""One small problem per kind of simulator, as a plugin author would write each (imported by
the tests of this folder)."""

from __future__ import annotations

import random
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from invkit.problem import ForwardProcess, Prior, Problem
from invkit.simulation import external_program

KINDS = ["torch", "torch_generator", "numpy_generator", "numpy_per_sample", "global_rngs",
         "torch_global", "external"]


def prior(dim: int = 2) -> Prior:
    return Prior("normal", dim, lambda n, g: torch.randn(n, dim, generator=g, device=g.device))


def torch_process() -> ForwardProcess:
    a = torch.tensor([[1.0, 0.5], [-0.3, 2.0]])
    return ForwardProcess("linear_sin", 2, 2, lambda x: torch.sin(x @ a.to(x.device)))


def torch_generator_process() -> ForwardProcess:
    def fn(x, generator):
        noise = torch.randn(x.shape[0], 1, generator=generator, device=x.device)
        return x.sum(1, keepdim=True) + 0.1 * noise

    return ForwardProcess("noisy_sum", 2, 1, fn, rng="generator")


def numpy_generator_process() -> ForwardProcess:
    def fn(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.stack([x[:, 0] ** 2, x[:, 1]], 1) + rng.normal(0, 0.1, size=(len(x), 2))

    return ForwardProcess("np_noisy", 2, 2, fn, backend="numpy", rng="generator")


def numpy_per_sample_process() -> ForwardProcess:
    def fn(row: np.ndarray) -> np.ndarray:
        return np.array([row.sum(), np.prod(row), np.abs(row).max()])

    return ForwardProcess("np_rowwise", 2, 3, fn, backend="numpy", vectorized=False)


def global_rngs_process() -> ForwardProcess:
    """numpy's legacy global RNG and Python's random, as older code uses them; dim_y = 1
    returned as (n,)."""
    def fn(x: np.ndarray) -> np.ndarray:
        return x.sum(1) + np.random.normal(0, 0.1, size=len(x)) + 0.01 * random.random()

    return ForwardProcess("np_global", 2, 1, fn, backend="numpy", rng="global")


def torch_global_process() -> ForwardProcess:
    """torch.randn without a generator, as pyro's samplers draw."""
    return ForwardProcess("torch_global", 2, 1,
                          lambda x: x[:, :1] + 0.1 * torch.randn(x.shape[0], 1), rng="global")


SCRIPT = textwrap.dedent("""\
    import random, sys
    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    for line in sys.stdin:
        if line.strip():
            a, b = map(float, line.split(","))
            print(f"{a - b + rng.gauss(0, 0.1)!r},{a * b + rng.gauss(0, 0.1)!r}")
    """)


def write_script(folder: Path, text: str = SCRIPT, name: str = "sim.py") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def external_process(folder: Path, batched: bool = True) -> ForwardProcess:
    script = write_script(folder)
    return external_program([sys.executable, str(script), "{seed}"], 2, 2, name="prog",
                            batched=batched)


def make_problem(kind: str, folder: Path | None = None, noise_std: float = 0.0) -> Problem:
    if kind == "external":
        assert folder is not None
        process = external_process(folder)
    else:
        process = {"torch": torch_process, "torch_generator": torch_generator_process,
                   "numpy_generator": numpy_generator_process,
                   "numpy_per_sample": numpy_per_sample_process,
                   "global_rngs": global_rngs_process,
                   "torch_global": torch_global_process}[kind]()
    return Problem(f"toy_{kind}", prior(), process, noise_std=noise_std)
