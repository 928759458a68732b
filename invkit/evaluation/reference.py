"""Reference posterior samples for evaluation: exact where the problem knows it, else a
registered baseline named by the config (``eval.reference_baseline``, ``abc`` by default).

The core never asks for a plugin by name: the baseline is a config key, and when it is not
installed (or cannot serve as a reference) evaluation skips Err_post and says why instead of
failing. Baseline references are costly, so they are cached on disk, keyed by the problem, its
options, the targets and the baseline's settings, and computed once.

Under torchrun the evaluation runs on rank 0 alone (``invkit run``); before it, every rank
computes the baseline reference together (:func:`prepare_reference`: the baseline splits its
budget over the ranks) and rank 0 caches it, so the evaluation reads it from disk. Whatever
rank 0 then computes by itself (a damaged cache entry) runs without waiting for the other
ranks (:func:`invkit.distributed.one_rank`). Where every rank evaluates (``torchrun ...
invkit evaluate``), each computes it and only rank 0 writes the cache file, atomically, so no
rank reads a torn file or races another's write.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from invkit import distributed
from invkit.checkpoint import save_atomic
from invkit.config import RunConfig
from invkit.errors import InvkitError
from invkit.problem import Baseline, Problem
from invkit.registry import get_registry

CACHE_VERSION = "reference-v2"


def cache_dir() -> Path:
    return Path(os.environ.get("INVKIT_CACHE", Path.home() / ".cache" / "invkit"))


@dataclass(frozen=True)
class Choice:
    """What Err_post is measured against: ``source`` is "exact", "baseline" or None (then
    ``reason`` says why it is skipped)."""

    source: str | None
    reason: str = ""
    baseline: Baseline | None = None


def choose_reference(problem: Problem, cfg: RunConfig) -> Choice:
    """The reference ``eval.reference`` asks for, and whether it can be had here."""
    mode = cfg.eval.reference
    if mode == "none":
        return Choice(None, "eval.reference is none")
    if mode in ("auto", "exact") and problem.reference_posterior is not None:
        return Choice("exact")
    if mode == "exact":
        raise InvkitError(f"eval.reference=exact, but problem {problem.name!r} has no exact "
                          f"posterior. Use eval.reference=baseline or auto.")
    if not problem.has_simulator:
        return Choice(None, f"problem {problem.name!r} has no simulator (its pairs come from a "
                            f"file), so no reference posterior can be computed; the "
                            f"calibration diagnostics on held-out pairs still test it")
    name = cfg.eval.reference_baseline
    registry = get_registry()
    if name not in registry.entries["baseline"]:
        known = ", ".join(registry.names("baseline")) or "none"
        return Choice(None, f"problem {problem.name!r} has no exact posterior and the "
                            f"reference baseline {name!r} (eval.reference_baseline) is not "
                            f"installed (installed baselines: {known})")
    baseline = registry.baseline(name)
    if baseline.reference_options is None:
        return Choice(None, f"baseline {name!r} (eval.reference_baseline) declares no "
                            f"reference_options, so it cannot serve as a reference posterior")
    return Choice("baseline", baseline=baseline)


def reference_samples(problem: Problem, targets: Tensor, cfg: RunConfig, gen: torch.Generator,
                      progress: bool = True) -> tuple[Tensor | list[Tensor], str] | str:
    """``(samples, source)`` with ``source`` "exact" or the baseline's name, or the reason
    (a string) why there is no reference."""
    choice = choose_reference(problem, cfg)
    if choice.source is None:
        return choice.reason
    n = cfg.eval.n_samples
    if choice.source == "exact":
        assert problem.reference_posterior is not None
        return problem.reference_posterior(targets, n, gen), "exact"
    assert choice.baseline is not None
    return baseline_reference(problem, choice.baseline, targets, cfg, progress), \
        choice.baseline.name


def prepare_reference(problem: Problem, targets: Tensor, cfg: RunConfig,
                      progress: bool = True) -> None:
    """Called on every rank of a joined process group before rank 0 evaluates by itself: the
    baseline reference's simulations are split over all ranks instead of left to rank 0.

    Rank 0 decides (its cache is the one the evaluation reads), so every rank makes the same
    collective calls even where the ranks do not share a file system.
    """
    shard = distributed.current()
    choice = choose_reference(problem, cfg)
    if shard is None or choice.baseline is None:
        return
    path = _path(problem, choice.baseline, targets, cfg)
    cached = shard.all_gather_object(path.exists())[0]
    if not cached:
        baseline_reference(problem, choice.baseline, targets, cfg, progress, together=True)


def _path(problem: Problem, baseline: Baseline, targets: Tensor, cfg: RunConfig) -> Path:
    h = hashlib.sha256()
    h.update(json.dumps({"problem": problem.name, "options": dict(problem.options),
                         "n": cfg.eval.n_samples, "budget": cfg.eval.reference_budget,
                         "seed": cfg.seed, "baseline": baseline.name,
                         "settings": _options(baseline, cfg), "method": CACHE_VERSION},
                        sort_keys=True, default=str).encode())
    h.update(targets.detach().cpu().float().numpy().tobytes())
    return cache_dir() / "reference" / f"{problem.name}-{h.hexdigest()[:24]}.pt"


def _options(baseline: Baseline, cfg: RunConfig) -> dict[str, Any]:
    options = {**dict(baseline.options), **dict(baseline.reference_options or {})}
    if "budget" in options:  # the documented name of a baseline's simulation budget
        options["budget"] = cfg.eval.reference_budget
    return options


def baseline_reference(problem: Problem, baseline: Baseline, targets: Tensor, cfg: RunConfig,
                       progress: bool = True, together: bool = False) -> Tensor:
    """n samples per target from the baseline under its reference options, cached on disk.

    ``together``: every rank of the process group calls this (:func:`prepare_reference`) and
    the baseline splits its work over them; otherwise this rank computes all of it by itself.
    """
    main = distributed.is_main()
    n = cfg.eval.n_samples
    path = _path(problem, baseline, targets, cfg)
    if path.exists() and not together:
        try:
            return torch.load(path, weights_only=True)["samples"].to(targets.device)
        except Exception:  # a damaged cache entry is recomputed (and replaced by rank 0)
            if main:
                path.unlink(missing_ok=True)
    gen = torch.Generator(device=targets.device).manual_seed(cfg.seed + 7)
    options = _options(baseline, cfg)
    if together:
        result = baseline.run(problem, targets, n, options, gen, progress=progress and main)
    else:
        with distributed.one_rank():  # the caller may be rank 0 alone: wait for no other rank
            result = baseline.run(problem, targets, n, options, gen, progress=progress and main)
    short = [i for i, c in enumerate(result.counts) if c < n]
    if short:
        raise InvkitError(
            f"The reference baseline {baseline.name!r} returned fewer than {n} samples for "
            f"{len(short)} of {len(result.counts)} targets under its reference_options; a "
            f"reference needs eval.n_samples per target.")
    samples = torch.stack([s[:n] for s in result.samples])
    if main:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_atomic({"samples": samples.cpu(), "processes": result.info.get("processes", 1)},
                    path)
    return samples
