"""Device selection and CPU numerics settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from invkit.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; an explicit device must be available."""
    base = name.split(":")[0]
    if base not in DEVICES:
        raise ConfigError(f"Unknown device {name!r}: use one of {', '.join(DEVICES)} "
                          f"(optionally 'cuda:N').")
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} was asked for, but torch sees no CUDA GPU here. "
                          f"Use --device cpu or --device auto.")
    if base == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise ConfigError("--device mps was asked for, but MPS is not available. "
                          "Use --device cpu or --device auto.")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"Unknown device {name!r}: use one of {', '.join(DEVICES)} "
                          f"(optionally 'cuda:N').") from None


def flush_denormal_enabled() -> bool:
    """Whether this thread's CPU flushes subnormal floats to zero (torch has no getter)."""
    return bool((torch.tensor([1e-39]) * 1.0).item() == 0.0)


@contextmanager
def numerics_restored() -> Iterator[None]:
    """Undo :func:`configure_numerics` on exit: flush-to-zero is a process-wide CPU flag that
    would otherwise change numpy's and torch's results for the caller after ``invkit.train``."""
    was = flush_denormal_enabled()
    try:
        yield
    finally:
        torch.set_flush_denormal(was)


def configure_numerics(device: torch.device) -> None:
    """Flush denormals on CPU: tiny activations otherwise slow float32 math badly."""
    if device.type == "cpu":
        torch.set_flush_denormal(True)


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
