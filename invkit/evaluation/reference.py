"""Reference posterior samples for evaluation: exact where the problem knows it, else ABC.

ABC references are costly, so they are cached on disk, keyed by the problem, its options,
the targets and the ABC settings, and computed once.

Under torchrun the evaluation runs on rank 0 alone (``invkit run``); before it, every rank
computes the ABC reference together (:func:`prepare_reference`: the pool split over the ranks,
as ``invkit baseline abc`` does) and rank 0 caches it, so the evaluation reads it from disk.
Whatever rank 0 then computes by itself (a damaged cache entry) runs without waiting for the
other ranks (:func:`invkit.distributed.one_rank`). Where every rank evaluates
(``torchrun ... invkit evaluate``), each computes it and only rank 0 writes the cache file,
atomically, so no rank reads a torn file or races another's write.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from invkit.problem import Problem


def cache_dir() -> Path:
    return Path(os.environ.get("INVKIT_CACHE", Path.home() / ".cache" / "invkit"))


def reference_samples(problem: Problem, targets: Tensor, cfg: Any, gen: torch.Generator,
                      progress: bool = True) -> tuple[Tensor | list[Tensor], str] | None:
    n = cfg.eval.n_samples
    if cfg.eval.reference == "none":
        return None
    if needs_abc(problem, cfg):
        return abc_reference(problem, targets, n, cfg.eval.abc_pool, cfg.seed, progress), "abc"
    if problem.reference_posterior is None:  # eval.reference=exact
        from invkit.errors import InvkitError

        raise InvkitError(f"eval.reference=exact, but problem {problem.name!r} has no exact "
                          f"posterior. Use eval.reference=abc or auto.")
    return problem.reference_posterior(targets, n, gen), "exact"


def needs_abc(problem: Problem, cfg: Any) -> bool:
    """Whether ``eval.reference`` makes the evaluation compute an ABC reference (the one rule
    that both the evaluation and the ranks' shared pre-computation follow)."""
    mode = cfg.eval.reference
    return mode == "abc" or (mode == "auto" and problem.reference_posterior is None)


def prepare_reference(problem: Problem, targets: Tensor, cfg: Any,
                      progress: bool = True) -> None:
    """Called on every rank of a joined process group before rank 0 evaluates by itself: the
    ABC reference's simulation pool is split over all ranks instead of left to rank 0.

    Rank 0 decides (its cache is the one the evaluation reads), so every rank makes the same
    collective calls even where the ranks do not share a file system.
    """
    from invkit import distributed

    shard = distributed.current()
    if shard is None or not needs_abc(problem, cfg):
        return
    n, pool = cfg.eval.n_samples, cfg.eval.abc_pool
    path = _path(problem, targets, n, pool, cfg.seed)
    cached = shard.all_gather_object(path.exists())[0]
    if not cached:
        abc_reference(problem, targets, n, pool, cfg.seed, progress, together=True)


def _path(problem: Problem, targets: Tensor, n: int, pool: int, seed: int) -> Path:
    return cache_dir() / "reference" / f"{problem.name}-{_key(problem, targets, n, pool, seed)}.pt"


def _key(problem: Problem, targets: Tensor, n: int, pool: int, seed: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"problem": problem.name, "options": dict(problem.options), "n": n,
                         "pool": pool, "seed": seed, "method": "quantile-abc-v1"},
                        sort_keys=True, default=str).encode())
    h.update(targets.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:24]


def abc_reference(problem: Problem, targets: Tensor, n: int, pool: int, seed: int,
                  progress: bool = True, together: bool = False) -> Tensor:
    """Quantile ABC: the n nearest of one shared pool of simulations, cached on disk.

    ``together``: every rank of the process group calls this (:func:`prepare_reference`) and
    the pool is split over them; otherwise this rank computes all of it by itself.
    """
    from invkit import distributed
    from invkit.checkpoint import save_atomic
    from invkit.registry import get_registry

    main = distributed.is_main()
    path = _path(problem, targets, n, pool, seed)
    if path.exists() and not together:
        try:
            return torch.load(path, weights_only=True)["samples"].to(targets.device)
        except Exception:  # a damaged cache entry is recomputed (and replaced by rank 0)
            if main:
                path.unlink(missing_ok=True)
    baseline = get_registry().baseline("abc")
    gen = torch.Generator(device=targets.device).manual_seed(seed + 7)
    options = dict(baseline.options)
    options.update({"method": "quantile", "budget": pool, "n_keep": n,
                    "progress": progress and main})
    if together:
        result = baseline.run(problem, targets, n, options, gen)
    else:
        with distributed.one_rank():  # the caller may be rank 0 alone: wait for no other rank
            result = baseline.run(problem, targets, n, options, gen)
    samples = torch.stack([s[:n] for s in result.samples])
    if main:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_atomic({"samples": samples.cpu(), "processes": result.info.get("processes", 1)},
                    path)
    return samples
