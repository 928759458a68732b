"""The trained posterior q(x | y): batched sampling and densities for any observations."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from invkit.errors import InvkitError
from invkit.problem import Problem


def as_observations(y: Any, dim_y: int, device: torch.device,
                    what: str = "y") -> tuple[Tensor, bool]:
    """Accept numpy/torch/list y of shape (dim_y,) or (m, dim_y); return (m, dim_y), single?"""
    try:
        t = torch.as_tensor(np.asarray(y, dtype=np.float32) if not torch.is_tensor(y) else y)
    except (TypeError, ValueError) as exc:
        raise InvkitError(
            f"{what} must be numbers of shape ({dim_y},) or (m, {dim_y}): {exc}."
        ) from None
    t = t.to(device=device, dtype=torch.float32)
    single = t.dim() == 1
    if single:
        t = t[None]
    if t.dim() != 2 or t.shape[1] != dim_y:
        raise InvkitError(
            f"{what} has shape {tuple(t.shape[1:] if single else t.shape)}; this problem's "
            f"observations have dim_y={dim_y}: pass shape ({dim_y},) for one observation or "
            f"(m, {dim_y}) for m of them."
        )
    if not torch.isfinite(t).all():
        raise InvkitError(f"{what} contains NaN or infinite values; observations must be finite.")
    return t, single


class Posterior:
    """Posterior samples for any observations at once, from a trained INN.

    ``sample(y, n)``: y of shape ``(dim_y,)`` gives ``(n, dim_x)``; ``(m, dim_y)`` gives
    ``(m, n, dim_x)``. numpy or torch in, torch out (on the posterior's device).
    """

    def __init__(self, model: nn.Module, problem: Problem, config: Any,
                 device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.problem = problem
        self.config = config
        self.device = device
        self.dim_x, self.dim_y = problem.dim_x, problem.dim_y

    def _generator(self, seed: int | None, generator: torch.Generator | None) -> torch.Generator:
        if generator is not None:
            return generator
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed) if seed is not None else int(torch.seed() % 2**63))
        return gen

    @torch.inference_mode()
    def sample(self, y: Any, n: int, *, seed: int | None = None,
               generator: torch.Generator | None = None, chunk: int = 1_000_000) -> Tensor:
        x, _ = self.sample_and_log_prob(y, n, seed=seed, generator=generator, chunk=chunk,
                                        with_log_prob=False)
        return x

    @torch.inference_mode()
    def sample_and_log_prob(self, y: Any, n: int, *, seed: int | None = None,
                            generator: torch.Generator | None = None, chunk: int = 1_000_000,
                            with_log_prob: bool = True) -> tuple[Tensor, Tensor | None]:
        """Samples and, for each, log q(x | y) = log p(z) - log|det dg/d[y,z]| (the write-up's).

        For the write-up's INN this density is defined at the sampled points: it is the
        change of variables through the padded network, with the padding held at zero.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvkitError(f"n must be a positive int (samples per observation), got {n!r}.")
        yt, single = as_observations(y, self.dim_y, self.device)
        gen = self._generator(seed, generator)
        m = yt.shape[0]
        total = m * n
        xs, lps = [], []
        for start in range(0, total, chunk):
            stop = min(total, start + chunk)
            rows = torch.arange(start, stop, device=self.device) // n
            x, lp = self._sample_rows(yt[rows], gen, with_log_prob)
            xs.append(x)
            if lp is not None:
                lps.append(lp)
        x = torch.cat(xs).reshape(m, n, self.dim_x)
        lp = torch.cat(lps).reshape(m, n) if with_log_prob else None
        if single:
            x = x[0]
            lp = lp[0] if lp is not None else None
        return x, lp

    def _sample_rows(self, y_rows: Tensor, gen: torch.Generator,
                     with_log_prob: bool) -> tuple[Tensor, Tensor | None]:
        x, log_q = self.model.sample_posterior(y_rows, gen)
        return x, (log_q if with_log_prob else None)

    @torch.inference_mode()
    def predict(self, x: Any) -> Tensor:
        """The learned forward process f_y(x), for models that learn one (the write-up's INN)."""
        if not hasattr(self.model, "predict"):
            raise InvkitError(f"model kind {type(self.model).__name__} does not learn the "
                              f"forward process; use problem.simulate(x) instead.")
        xt, _ = as_observations(x, self.dim_x, self.device, what="x")
        return self.model.predict(xt)

    def __repr__(self) -> str:
        return (f"Posterior(problem={self.problem.name!r}, dim_x={self.dim_x}, "
                f"dim_y={self.dim_y}, device={self.device})")
