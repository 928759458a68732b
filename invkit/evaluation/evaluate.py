"""Evaluation of a trained posterior: generic benchmark figures, the problem's own, and plots."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from invkit.errors import InvkitError, PluginHookError
from invkit.evaluation.c2st_report import c2st_metrics
from invkit.evaluation.diagnostics import calibration_metrics
from invkit.evaluation.metrics import err_post, err_resim
from invkit.evaluation.reference import reference_samples
from invkit.problem import EvalContext
from invkit.registry import get_registry

THROUGHPUT_SAMPLES = 100_000


def sampling_rate(posterior: Any, y: torch.Tensor, n: int = THROUGHPUT_SAMPLES) -> float:
    """Posterior samples per second for one observation (after one warm-up call)."""
    posterior.sample(y, 1000, seed=0)
    t0 = time.perf_counter()
    x = posterior.sample(y, n, seed=1)
    if x.is_cuda:  # kernels run asynchronously: wait for them before reading the clock
        torch.cuda.synchronize(x.device)
    elif x.device.type == "mps":
        torch.mps.synchronize()
    return n / (time.perf_counter() - t0)


def evaluation_targets(cfg: Any, y_test: torch.Tensor) -> torch.Tensor:
    """The observations Err_post and Err_resim are measured on: the first held-out ones."""
    return y_test[:min(cfg.eval.n_targets, y_test.shape[0])]


def evaluate(ctx: EvalContext, progress: bool = True) -> dict[str, Any]:
    """Err_resim and Err_post on held-out targets, sampling rate, problem metrics and the
    calibration diagnostics (``eval.calibration_targets`` held-out pairs; 0 skips them)."""
    cfg, problem, post = ctx.config, ctx.problem, ctx.posterior
    out: dict[str, Any] = {}
    targets = evaluation_targets(cfg, ctx.y_test)
    n_t = targets.shape[0]
    t0 = time.perf_counter()
    samples = post.sample(targets, cfg.eval.n_samples, generator=ctx.generator)
    out["eval_targets"] = n_t
    out["eval_samples_per_target"] = cfg.eval.n_samples
    if problem.has_simulator:  # a stochastic simulator's own noise is part of it
        gen = torch.Generator(device=targets.device).manual_seed(cfg.seed + 6)
        resim, _ = err_resim(samples, targets, lambda x: problem.forward_process(x, gen))
        out["err_resim"] = float(resim)
    ref = reference_samples(problem, targets, cfg, ctx.generator, progress=progress)
    if isinstance(ref, str):
        out["err_post_skipped"] = ref
    else:
        ref_samples, source = ref
        post_err, _ = err_post(samples, ref_samples)
        out["err_post"] = float(post_err)
        out["err_post_reference"] = source
    out["sampling_rate_per_s"] = sampling_rate(post, targets[0])
    out.update(c2st_metrics(ctx))
    if problem.metrics is not None:
        own = _problem_metrics(ctx)
        out.update(own)
        out["problem_metrics"] = sorted(own)  # the problem's headline figures
    if cfg.eval.calibration_targets > 0:
        out.update(calibration_metrics(ctx))  # SBC ranks and coverage (plots if eval.plots)
    out["eval_time_s"] = time.perf_counter() - t0
    return out


def make_plots(ctx: EvalContext, history: list[dict[str, float]]) -> list[Path]:
    """The loss curves (any problem) plus the problem's own plots."""
    from invkit.evaluation.plots import plot_losses, plot_posterior_pairs

    paths = [plot_losses(history, ctx.plot_dir / "losses.png")] if history else []
    if ctx.problem.plots is not None:
        paths += _problem_plots(ctx)
    else:
        paths.append(plot_posterior_pairs(ctx, ctx.plot_dir / "posterior.png"))
    return paths


def _hook_owner(problem: Any) -> str:
    """'problem NAME from plugin ... (distribution ...)', or less when it is not registered."""
    try:
        return f"problem {problem.name!r} from {get_registry().origin('problem', problem.name)}"
    except InvkitError:  # a Problem built in code and never registered
        return f"problem {problem.name!r}"


def _hook_failed(ctx: EvalContext, hook: str, what: str) -> PluginHookError:
    return PluginHookError(f"The {hook}(ctx) hook of {_hook_owner(ctx.problem)} {what}",
                           problem=ctx.problem.name, hook=hook)


def _call_hook(ctx: EvalContext, hook: str) -> Any:
    """A problem's evaluation hook, with any exception it raises turned into a PluginHookError
    naming the problem, its plugin and the hook (the caller says what was kept)."""
    fn = getattr(ctx.problem, hook)
    try:
        return fn(ctx)
    except Exception as exc:
        text = " ".join(str(exc).split())
        raise _hook_failed(ctx, hook, f"raised {type(exc).__name__}"
                                      f"{': ' + text if text else ''}") from exc


def _problem_metrics(ctx: EvalContext) -> dict[str, Any]:
    import json
    from collections.abc import Mapping

    got = _call_hook(ctx, "metrics")
    if not isinstance(got, Mapping):
        raise _hook_failed(ctx, "metrics", f"returned {type(got).__name__}; expected a dict of "
                                           f"names to numbers (or lists, strings) for "
                                           f"metrics.json")
    out = {}
    for key, value in got.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()  # a 0-d tensor is a number
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise _hook_failed(ctx, "metrics", f"returned {type(value).__name__} for "
                                               f"{key!r}; metrics.json takes numbers, strings "
                                               f"and lists of them (use float(...) or "
                                               f".tolist())") from None
        out[str(key)] = value
    return out


def _problem_plots(ctx: EvalContext) -> list[Path]:
    got = _call_hook(ctx, "plots")
    try:
        return [Path(p) for p in got]
    except TypeError:
        raise _hook_failed(ctx, "plots", f"returned {type(got).__name__}; expected a list of "
                                         f"the paths of the files it wrote under "
                                         f"ctx.plot_dir") from None
