"""Train, evaluate and save from Python, with exactly the configuration the CLI uses."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from invkit import distributed
from invkit.checkpoint import first_line, load_checkpoint, make_checkpoint, save_atomic
from invkit.config import RunConfig, build_config, load_toml
from invkit.device import configure_numerics, make_generator, numerics_restored, resolve_device
from invkit.errors import (
    CheckpointError,
    ConfigError,
    InvkitError,
    PluginHookError,
    TrainingInterrupted,
    join_sentences,
)
from invkit.posterior import Posterior
from invkit.problem import EvalContext, Problem
from invkit.registry import get_registry
from invkit.rundir import CONFIG, METRICS, MODEL, PLOTS, create_run_dir, default_run_dir, write_json
from invkit.training.trainer import Trainer


@dataclass
class RunResult:
    run_dir: Path
    config: RunConfig
    metrics: dict[str, Any]
    posterior: Posterior


def resolve(problem: str, preset: str = "default", overrides: dict[str, Any] | list | None = None,
            config_file: str | Path | None = None, seed: int | None = None,
            device: str | None = None) -> tuple[RunConfig, Problem]:
    """The resolved config, then the problem built with the resolved options."""
    registry = get_registry()
    spec = registry.problem_spec(problem)
    pairs = list(overrides.items()) if isinstance(overrides, dict) else list(overrides or [])
    toml = load_toml(Path(config_file)) if config_file else None
    if toml and "preset" in toml and preset == "default":
        preset = str(toml["preset"])
    cfg = build_config(problem, spec.options, spec.presets, preset, toml, pairs, seed, device)
    return cfg, registry.build_problem(problem, cfg.problem_options)


def _origin(problem: Problem) -> dict[str, str]:
    o = get_registry().origin("problem", problem.name)
    return {"name": problem.name, "plugin": o.plugin, "distribution": o.distribution,
            "version": o.version}


def train(problem: str, preset: str = "default", *, overrides: dict[str, Any] | None = None,
          config_file: str | Path | None = None, seed: int | None = None,
          device: str | None = None, out: str | Path | None = None, force: bool = False,
          progress: bool = True, evaluate: bool = True) -> RunResult:
    """Train a posterior for a registered problem and write its run directory.

    >>> result = invkit.train("gmm", preset="quick", overrides={"labels": "some"})
    >>> result.posterior.sample([1, 0, 0, 0], 1000).shape
    torch.Size([1000, 2])
    """
    cfg, prob = resolve(problem, preset, overrides, config_file, seed, device)
    if evaluate and cfg.train.n_test < 1:
        raise ConfigError("Evaluation needs held-out pairs, but train.n_test is 0. Set "
                          "train.n_test to at least 1, or train only (--no-eval).")
    resolve_device(cfg.device)  # a bad device is bad input: fail before writing anything
    run_dir = Path(out) if out is not None else default_run_dir(prob.name)
    new_parents = [p for p in Path(run_dir).absolute().parents if not p.exists()]
    if not distributed.is_main():  # under torchrun only rank 0 writes the run directory
        return _train_in(run_dir, cfg, prob, progress=False, evaluate=False)
    run_dir = create_run_dir(run_dir, force=force)
    try:
        cfg.save(run_dir / CONFIG)
        return _train_in(run_dir, cfg, prob, progress=progress, evaluate=evaluate)
    except BaseException as exc:
        if not isinstance(exc, TrainingInterrupted) and not (run_dir / MODEL).exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing worth keeping
            for parent in new_parents:  # and the folders made for it (runs/PROBLEM/), if empty
                with contextlib.suppress(OSError):
                    parent.rmdir()
        raise


def resume(run_dir: str | Path, progress: bool = True, evaluate: bool = True,
           device: str | None = None) -> RunResult:
    """Continue an interrupted run from its last checkpoint; ends as an uninterrupted run would."""
    from invkit.rundir import checkpoint_config, checkpoint_problem

    run_dir = Path(run_dir)
    if run_dir.is_file() and run_dir.name == MODEL:
        run_dir = run_dir.parent
    if not (run_dir / MODEL).is_file():
        why = "it does not exist" if not run_dir.exists() else "it holds no model.pt"
        raise CheckpointError(
            f"Cannot resume {str(run_dir)!r}: {why}. --resume takes the run directory of an "
            f"earlier 'invkit run', which saves model.pt every train.checkpoint_every steps, "
            f"on Ctrl-C or SIGTERM, and at the end; a run stopped before its first checkpoint "
            f"has to start again."
        )
    ckpt = load_checkpoint(run_dir)
    cfg = checkpoint_config(ckpt, run_dir)
    if device is not None:
        cfg.device = device
    prob = checkpoint_problem(ckpt, cfg, run_dir)
    for stale in run_dir.glob(f".{MODEL}.*.tmp"):  # left by a process killed while saving
        if distributed.is_main():
            stale.unlink(missing_ok=True)
    return _train_in(run_dir, cfg, prob, state=ckpt["state"], progress=progress,
                     evaluate=evaluate)


def _train_in(run_dir: Path, cfg: RunConfig, prob: Problem, state: dict | None = None,
              progress: bool = True, evaluate: bool = True) -> RunResult:
    with numerics_restored():  # the caller's CPU float mode is left as it was
        return _train_and_evaluate(run_dir, cfg, prob, state, progress, evaluate)


def _train_and_evaluate(run_dir: Path, cfg: RunConfig, prob: Problem, state: dict | None,
                        progress: bool, evaluate: bool) -> RunResult:
    dev = resolve_device(cfg.device)
    shard = distributed.init_from_env(dev)  # None unless launched by torchrun with N > 1
    main = shard is None or shard.is_main
    evaluate_together = evaluate and shard is not None
    if shard is not None:
        dev = shard.device
        progress, evaluate = progress and main, evaluate and main
    configure_numerics(dev)
    origin = _origin(prob)

    def save(trainer: Trainer, complete: bool = False) -> None:
        if not main:  # every rank holds the same state; rank 0 writes it
            return
        save_atomic(make_checkpoint(trainer.state_dict(), cfg.to_dict(), origin, complete),
                    run_dir / MODEL)

    trainer = Trainer(prob, cfg, dev, progress=progress, on_checkpoint=save)
    if state is not None:
        try:
            trainer.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise CheckpointError(
                f"The training state in {str(run_dir / MODEL)!r} does not fit the network and "
                f"optimizer its config describes ({type(e).__name__}: {first_line(e)}). The "
                f"checkpoint is damaged or was edited; retrain, or resume from an intact copy."
            ) from None
    try:
        result = trainer.fit()
        save(trainer, complete=True)
    except TrainingInterrupted as exc:  # name the actual run directory in the way out
        raise TrainingInterrupted(str(exc).replace("RUN_DIR", shlex.quote(str(run_dir)))) \
            from None
    except OSError as exc:  # e.g. the disk filled up while writing a checkpoint
        if not (run_dir / MODEL).exists():
            raise  # nothing kept: the caller removes the run directory
        raise InvkitError(
            f"Could not write the checkpoint: {exc.strerror or exc}. The previous checkpoint in "
            f"{str(run_dir)!r} (step {trainer.last_checkpoint_step}) is intact: fix the cause "
            f"(free some space), then continue with: invkit run --resume "
            f"{shlex.quote(str(run_dir))}"
        ) from exc
    posterior = Posterior(trainer.model, prob, cfg, dev)
    metrics: dict[str, Any] = {
        "problem": prob.name, "problem_options": dict(prob.options), "preset": cfg.preset,
        "seed": cfg.seed, "device": str(dev), "steps": result.steps_done,
        "train_time_s": result.train_time_s, "data_time_s": result.data_time_s,
        "final_losses": result.history[-1] if result.history else {},
    }
    if evaluate_together:  # rank 0 evaluates alone, but the ABC reference is shared work
        from invkit.evaluation.evaluate import evaluation_targets
        from invkit.evaluation.reference import prepare_reference

        assert trainer.data is not None
        prepare_reference(prob, evaluation_targets(cfg, trainer.data.y_test), cfg, progress)
    if evaluate:
        assert trainer.data is not None
        if main:  # the training figures survive an evaluation that fails (a plugin's hook)
            write_json(run_dir / METRICS, metrics)
        metrics.update(evaluate_posterior(posterior, run_dir, trainer.data.x_test,
                                          trainer.data.y_test, result.history, progress))
    if main:
        write_json(run_dir / METRICS, metrics)
    return RunResult(run_dir, cfg, metrics, posterior)


def evaluate_posterior(posterior: Posterior, run_dir: Path, x_test: torch.Tensor,
                       y_test: torch.Tensor, history: list[dict[str, float]] | None = None,
                       progress: bool = True) -> dict[str, Any]:
    from invkit.evaluation.evaluate import evaluate, make_plots

    cfg = posterior.config
    ctx = EvalContext(problem=posterior.problem, posterior=posterior, config=cfg,
                      device=posterior.device,
                      generator=make_generator(posterior.device, cfg.seed + 2),
                      plot_dir=run_dir / PLOTS, x_test=x_test, y_test=y_test)
    try:
        metrics = evaluate(ctx, progress=progress)
        if cfg.eval.plots:
            t0 = time.perf_counter()
            (run_dir / PLOTS).mkdir(exist_ok=True)
            paths = make_plots(ctx, history or [])
            metrics["plots"] = [_relative(p, run_dir) for p in paths]
            metrics["plot_time_s"] = time.perf_counter() - t0
    except PluginHookError as exc:
        # training is done and saved: say so, and how to redo only the evaluation
        skip = " (add --set eval.plots=false to skip the plots)" if exc.hook == "plots" else ""
        raise PluginHookError(join_sentences(
            exc, f"The trained model is saved in {str(run_dir)!r} ({MODEL}); the evaluation "
                 f"did not finish, so {METRICS} holds no new evaluation results",
        ) + f" Fix the plugin, then redo the evaluation without retraining{skip}: invkit "
            f"evaluate {shlex.quote(str(run_dir))}", problem=exc.problem, hook=exc.hook) \
            from exc.__cause__
    return metrics


def _relative(path: Path, run_dir: Path) -> str:
    try:
        return str(Path(path).relative_to(run_dir))
    except ValueError:  # a plot written outside the run directory (or a relative path)
        return str(path)


def reevaluate(run_dir: str | Path, device: str = "cpu", overrides: dict[str, Any] | None = None,
               progress: bool = True) -> dict[str, Any]:
    """Recompute a run's metrics (``invkit evaluate``), optionally with other eval settings."""
    from invkit.config import set_key
    from invkit.rundir import load_run, read_metrics
    from invkit.training.data import held_out_split

    run_dir = Path(run_dir)
    posterior, cfg, ckpt = load_run(run_dir, device)
    for key, value in (overrides or {}).items():
        full = set_key(cfg, key, value)
        if not full.startswith("eval."):
            raise InvkitError(f"invkit evaluate only changes eval.* settings; {full!r} would "
                              f"need retraining.")
    if cfg.train.n_test < 1:
        raise ConfigError(f"{str(run_dir)!r} was trained with train.n_test=0: there are no "
                          f"held-out pairs to evaluate on. Retrain with train.n_test >= 1.")
    # the held-out split is regenerated from the seed: the same points as at training time
    x_test, y_test = held_out_split(posterior.problem, cfg.train.n_test, cfg.seed, posterior.device)
    metrics = read_metrics(run_dir)
    metrics.update(evaluate_posterior(posterior, run_dir, x_test, y_test,
                                      ckpt["state"].get("history"), progress))
    write_json(run_dir / METRICS, metrics)
    return metrics


