"""The trained posterior q(x | y): batched sampling and densities for any observations."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from invkit.errors import InvkitError, InvkitWarning
from invkit.problem import Problem
from invkit.summary import QUANTILES, PosteriorSummary, check_quantiles, summarise

MEMORY_FRACTION = 0.8
"""A result may take at most this share of the memory available when it is requested."""


def available_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on ``device`` (None when it cannot be told)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _allocate(shape: tuple[int, ...], device: torch.device, what: str) -> Tensor:
    """An empty float32 result, or a clear error when it cannot fit in memory."""
    need = 4 * math.prod(shape)
    free = available_memory(device)
    if free is not None and need > MEMORY_FRACTION * free:
        raise InvkitError(
            f"The {what} asked for need {need / 2**30:.3g} GiB ({' x '.join(map(str, shape))} "
            f"float32 values), more than the {free / 2**30:.3g} GiB of memory available on "
            f"{device}. Ask for fewer samples per observation (n) or fewer observations at "
            f"once, and write them out in parts.")
    try:
        return torch.empty(shape, device=device)
    except (RuntimeError, MemoryError) as exc:
        raise InvkitError(f"Could not allocate the {what} ({need / 2**30:.3g} GiB) on {device}: "
                          f"{str(exc).splitlines()[0]}. Ask for fewer samples or observations "
                          f"at once.") from None


FLOAT32_MAX = float(np.finfo(np.float32).max)


def as_observations(y: Any, dim_y: int, device: torch.device,
                    what: str = "y") -> tuple[Tensor, bool]:
    """Accept numpy/torch/list y of shape (dim_y,) or (m, dim_y); return (m, dim_y), single?"""
    try:
        t = torch.as_tensor(np.asarray(y, dtype=np.float64) if not torch.is_tensor(y) else y)
    except (TypeError, ValueError) as exc:
        raise InvkitError(
            f"{what} must be numbers of shape ({dim_y},) or (m, {dim_y}): {exc}."
        ) from None
    if t.is_floating_point() and bool(torch.isfinite(t).all()) \
            and bool((t.abs() > FLOAT32_MAX).any()):
        raise InvkitError(f"{what} has values beyond float32's range (about 3.4e38), which the "
                          f"network computes in; observations of that size cannot be used.")
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
    """Posterior samples (and densities) for any observations at once, from a trained model
    (the INN of Ardizzone et al., or the conditional INN with exact densities: ``log_prob``).

    ``sample(y, n)``: y of shape ``(dim_y,)`` gives ``(n, dim_x)``; ``(m, dim_y)`` gives
    ``(m, n, dim_x)``. numpy or torch in, torch out (on the posterior's device).
    """

    def __init__(self, model: nn.Module, problem: Problem, config: Any,
                 device: torch.device, y_range: dict[str, list[float]] | None = None) -> None:
        self.model = model.to(device).eval()
        self.problem = problem
        self.config = config
        self.device = device
        self.dim_x, self.dim_y = problem.dim_x, problem.dim_y
        # the observations seen in training (min, max per dimension), to warn about a y far
        # outside them: the network extrapolates there, and its samples mean little
        self.y_range = None
        if y_range and len(y_range.get("y_min", [])) == self.dim_y:
            self.y_range = (torch.tensor(y_range["y_min"]), torch.tensor(y_range["y_max"]))

    def check_observations(self, y: Tensor) -> None:
        """Warn when observations lie far outside what the model was trained on."""
        if self.y_range is None:
            return
        lo, hi = (t.to(y.device) for t in self.y_range)
        margin = 0.1 * (hi - lo).clamp_min(1e-12)
        outside = (y < lo - margin) | (y > hi + margin)
        if bool(outside.any()):
            rows = int(outside.any(1).sum())
            dims = [self.problem.y_names[k] for k in outside.any(0).nonzero().flatten().tolist()]
            span = "; ".join(f"{self.problem.y_names[k]} in [{lo[k]:.4g}, {hi[k]:.4g}]"
                             for k in range(self.dim_y))
            warnings.warn(InvkitWarning(
                f"{rows} of {y.shape[0]} observation(s) lie outside the range the model was "
                f"trained on ({', '.join(dims)}; training data: {span}): its samples there are "
                f"extrapolation, not a posterior."), stacklevel=3)

    def _generator(self, seed: int | None, generator: torch.Generator | None) -> torch.Generator:
        if generator is not None:
            return generator
        gen = torch.Generator(device=self.device)
        if seed is not None:
            gen.manual_seed(int(seed))
        else:
            gen.seed()  # fresh entropy, without reseeding torch's global RNG (torch.seed() would)
        return gen

    @torch.inference_mode()
    def sample(self, y: Any, n: int, *, seed: int | None = None,
               generator: torch.Generator | None = None, chunk: int | None = None) -> Tensor:
        x, _ = self.sample_and_log_prob(y, n, seed=seed, generator=generator, chunk=chunk,
                                        with_log_prob=False)
        return x

    @torch.inference_mode()
    def sample_and_log_prob(self, y: Any, n: int, *, seed: int | None = None,
                            generator: torch.Generator | None = None, chunk: int | None = None,
                            with_log_prob: bool = True) -> tuple[Tensor, Tensor | None]:
        """Samples and, for each, its log q(x | y).

        The INN (model.kind=inn): log p(z) - log|det dg/d[y,z]|, the change of variables
        through the padded network with the padding held at zero; defined at the sampled
        points only. Conditional INN (model.kind=cinn): log N(z) - log|det dg/dz|, the exact
        normalised density of the flow, equal to ``log_prob(x, y)`` at the same points.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvkitError(f"n must be a positive int (samples per observation), got {n!r}.")
        yt, single = as_observations(y, self.dim_y, self.device)
        self.check_observations(yt)
        gen = self._generator(seed, generator)
        m = yt.shape[0]
        total = m * n
        chunk = self._rows_per_pass(chunk)
        # one preallocated output, filled chunk by chunk: the peak is the result plus one
        # chunk's network activations, however many samples are asked for
        x_out = _allocate((total, self.dim_x), self.device, "samples")
        lp_out = _allocate((total,), self.device, "log densities") if with_log_prob else None
        for start in range(0, total, chunk):
            stop = min(total, start + chunk)
            rows = torch.arange(start, stop, device=self.device) // n
            x, lp = self._sample_rows(yt[rows], gen, with_log_prob)
            x_out[start:stop] = x
            if lp_out is not None and lp is not None:
                lp_out[start:stop] = lp
            del x, lp
        x = x_out.reshape(m, n, self.dim_x)
        lp = lp_out.reshape(m, n) if lp_out is not None else None
        if single:
            x = x[0]
            lp = lp[0] if lp is not None else None
        return x, lp

    def summary(self, y: Any, n: int = 1000, *,
                quantiles: Sequence[float] = QUANTILES, seed: int | None = None,
                generator: torch.Generator | None = None) -> PosteriorSummary:
        """Mean, std and quantiles of ``n`` posterior samples per observation, by the
        problem's parameter and observation names: what one reports, without handling
        ``(m, n, dim_x)`` arrays. y of shape ``(dim_y,)`` or ``(m, dim_y)``; the result has
        one entry per observation either way (``to_rows()``, ``to_json()``, ``write(path)``).
        """
        levels = check_quantiles(quantiles)
        yt, _ = as_observations(y, self.dim_y, self.device)
        x = self.sample(yt, n, seed=seed, generator=generator)
        return summarise(x, yt, self.problem.x_names, self.problem.y_names, levels)

    def _rows_per_pass(self, chunk: int | None) -> int:
        """Samples per network pass. On CPU about 2^20 activations of the widest layer, so each
        layer's output stays in cache (1.6-1.8x the rate of one big pass, measured with
        benchmarks/sampling.py); on accelerators 10^6, for large kernels."""
        if chunk is not None:
            if chunk < 1:
                raise InvkitError(f"chunk must be a positive number of rows, got {chunk!r}.")
            return int(chunk)
        if self.device.type != "cpu":
            return 1_000_000
        widest = max((mod.out_features for mod in self.model.modules()
                      if isinstance(mod, nn.Linear)), default=256)
        return max(256, 2**20 // widest)

    def _sample_rows(self, y_rows: Tensor, gen: torch.Generator,
                     with_log_prob: bool) -> tuple[Tensor, Tensor | None]:
        x, log_q = self.model.sample_posterior(y_rows, gen)
        return x, (log_q if with_log_prob else None)

    @property
    def has_density(self) -> bool:
        """Whether ``log_prob(x, y)`` is available (model kinds with exact densities: cinn)."""
        return hasattr(self.model, "log_prob")

    @property
    def learns_forward(self) -> bool:
        """Whether ``predict(x)`` is available (the INN learns f_y(x); a cINN does not)."""
        return hasattr(self.model, "predict")

    @torch.inference_mode()
    def log_prob(self, x: Any, y: Any, *, chunk: int = 1_000_000) -> Tensor:
        """The model's exact log q(x | y) at arbitrary x (the conditional INN, model.kind=cinn).

        For the cINN this is the change of variables through its flow, log N(f(x; y)) +
        log|det df/dx|: a normalised density over x for each y. Shapes follow ``sample``:
        y of shape ``(dim_y,)`` with x ``(dim_x,)`` or ``(n, dim_x)`` gives ``()`` or ``(n,)``;
        y ``(m, dim_y)`` with x ``(m, dim_x)`` pairs rows and gives ``(m,)``, with x
        ``(m, n, dim_x)`` it gives ``(m, n)``.

        The INN has no such density: its ``q(x | y) = p(z) |det J|^-1`` is defined at
        the points it generates, x = g(y, z) with the padding at zero (see
        ``sample_and_log_prob``), since an arbitrary x does not map back to [y, z, pad = 0].
        """
        if not self.has_density:
            raise InvkitError(
                f"This posterior's model ({type(self.model).__name__}, model.kind="
                f"{getattr(getattr(self.config, 'model', None), 'kind', '?')}) has no density "
                f"at arbitrary x. The INN (model.kind=inn) defines q(x | y) = p(z) |det J|^-1 "
                f"only at the points it samples, x = g(y, z) with the padding at zero: use "
                f"posterior.sample_and_log_prob(y, n) for samples with their log q. For "
                f"log q(x | y) at any x, train a conditional INN (--set model=cinn)."
            )
        yt, single = as_observations(y, self.dim_y, self.device)
        try:
            xt = torch.as_tensor(np.asarray(x, dtype=np.float32) if not torch.is_tensor(x)
                                 else x)
        except (TypeError, ValueError) as exc:
            raise InvkitError(f"x must be numbers with last dimension {self.dim_x}: {exc}.") \
                from None
        xt = xt.to(device=self.device, dtype=torch.float32)
        m = yt.shape[0]
        ok = xt.dim() >= 1 and xt.shape[-1] == self.dim_x and (
            xt.dim() <= 2 if single else (xt.dim() in (2, 3) and xt.shape[0] == m))
        if not ok:
            want = (f"({self.dim_x},) or (n, {self.dim_x})" if single
                    else f"({m}, {self.dim_x}) or ({m}, n, {self.dim_x})")
            raise InvkitError(f"x has shape {tuple(xt.shape)}; with y of shape "
                              f"{tuple(yt.shape[1:] if single else yt.shape)} it must be {want}.")
        if not torch.isfinite(xt).all():
            raise InvkitError("x contains NaN or infinite values.")
        lead = xt.shape[:-1]
        flat = xt.reshape(-1, self.dim_x)
        if single:
            rows = torch.zeros(flat.shape[0], dtype=torch.long, device=self.device)
        else:
            per = flat.shape[0] // m
            rows = torch.arange(m, device=self.device).repeat_interleave(per)
        out = [self.model.log_prob(flat[i:i + chunk], yt[rows[i:i + chunk]])
               for i in range(0, flat.shape[0], chunk)]
        lp = torch.cat(out) if out else flat.new_zeros(0)
        return lp.reshape(lead)

    @torch.inference_mode()
    def predict(self, x: Any) -> Tensor:
        """The learned forward process f_y(x), for models that learn one (the INN)."""
        if not hasattr(self.model, "predict"):
            raise InvkitError(f"model kind {type(self.model).__name__} does not learn the "
                              f"forward process; use problem.simulate(x) instead.")
        xt, _ = as_observations(x, self.dim_x, self.device, what="x")
        return self.model.predict(xt)

    def __repr__(self) -> str:
        return (f"Posterior(problem={self.problem.name!r}, dim_x={self.dim_x}, "
                f"dim_y={self.dim_y}, device={self.device})")
