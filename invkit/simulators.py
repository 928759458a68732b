"""Calling a forward process of any kind: torch or numpy, deterministic or with its own noise,
batched or one sample at a time, with its randomness always derived from invkit's generator.

A :class:`invkit.ForwardProcess` declares how it wants to be called (``backend``, ``rng``,
``vectorized``); :func:`call` turns that into one uniform operation, torch ``(n, dim_x)`` in
and float32 torch ``(n, dim_y)`` out on x's device, so training data, baselines and evaluation
never need to know what kind of simulator a problem has.

Reproducibility, by ``rng``:

* ``"none"``: the process is deterministic (observation noise, if any, is the problem's
  ``noise_std``, added by invkit).
* ``"generator"``: the process draws its noise from the generator it is passed: a
  ``torch.Generator`` (backend torch, the one invkit passes) or a ``numpy.random.Generator``
  (backend numpy) seeded with 63 bits drawn from invkit's generator, so the same seed gives
  the same simulations.
* ``"global"``: the process uses global RNGs (``torch.randn`` without a generator, numpy's
  legacy ``np.random``, Python's ``random``, pyro's samplers, which use torch's). invkit seeds
  all three from its generator before the call and restores their previous states after it,
  so runs are reproducible and the caller's RNGs are left as they were.

Only torch processes that are vectorized and deterministic are differentiable (what
``train.lambda_resim`` needs).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor


class ForwardProcess(Protocol):
    """What this module needs of an :class:`invkit.ForwardProcess` (declared here, so that the
    adapter does not import the contract that calls it)."""

    name: str
    dim_y: int
    fn: Callable[..., Any]
    backend: str
    rng: str
    vectorized: bool

BACKENDS = ("torch", "numpy")
RNG_KINDS = ("none", "generator", "global")


def draw_seed(generator: torch.Generator) -> int:
    """63 random bits from ``generator``: the seed of a simulator's own RNG."""
    return int(torch.randint(0, 2**63 - 1, (1,), generator=generator,
                             device=generator.device).item())


@contextlib.contextmanager
def global_rngs_seeded(seed: int) -> Iterator[None]:
    """torch's, numpy's legacy and Python's global RNGs seeded from ``seed`` inside the block,
    and restored to their previous states after it."""
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def _fresh_generator(device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.seed()  # fresh entropy, without reseeding torch's global RNG
    return gen


def call(process: ForwardProcess, x: Tensor, generator: torch.Generator | None = None
         ) -> Tensor:
    """y = s(x) for a batch ``x`` (n, dim_x), whatever kind of process ``s`` is."""
    if process.rng != "none" and generator is None:
        generator = _fresh_generator(x.device)
    if process.backend == "torch" and process.rng == "none" and process.vectorized:
        return process.fn(x)  # the hot path: no conversion, gradients flow
    if process.rng == "global":
        assert generator is not None
        with global_rngs_seeded(draw_seed(generator)):
            return _convert(process, x, _args(process, None))
    return _convert(process, x, _args(process, generator))


def _args(process: ForwardProcess, generator: torch.Generator | None) -> tuple[Any, ...]:
    """The extra argument the process takes: its generator, of its backend's kind."""
    if process.rng != "generator":
        return ()
    assert generator is not None
    if process.backend == "numpy":
        return (np.random.default_rng(draw_seed(generator)),)
    return (generator,)


def _convert(process: ForwardProcess, x: Tensor, extra: tuple[Any, ...]) -> Tensor:
    """Run ``process.fn`` in its backend's types and bring the result back as float32 torch."""
    fn: Callable[..., Any] = process.fn
    if process.backend == "numpy":
        xs = x.detach().cpu().numpy().astype(np.float64)
        out = fn(xs, *extra) if process.vectorized else [fn(row, *extra) for row in xs]
        y = torch.as_tensor(np.asarray(out, dtype=np.float64), dtype=torch.float32)
        return _rows(process, y, x.shape[0]).to(x.device)
    if process.vectorized:
        return fn(x, *extra)
    rows = [torch.as_tensor(fn(row, *extra)) for row in x]
    y = torch.stack(rows).to(dtype=x.dtype) if rows else x.new_zeros(0, process.dim_y)
    return _rows(process, y, x.shape[0])


def _rows(process: ForwardProcess, y: Tensor, n: int) -> Tensor:
    """``y`` as (n, dim_y); a process with dim_y = 1 may return one number per sample."""
    if process.dim_y == 1 and tuple(y.shape) == (n,):
        return y[:, None]
    if tuple(y.shape) != (n, process.dim_y):
        per = "" if process.vectorized else " (stacked from one result per sample)"
        raise ValueError(f"forward process {process.name!r} returned shape {tuple(y.shape)}"
                         f"{per} for {n} samples; expected ({n}, {process.dim_y})")
    return y
