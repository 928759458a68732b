"""Train, evaluate and save from Python, with exactly the configuration the CLI uses."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from invkit import distributed, threads
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
    os_error_fix,
)
from invkit.loading import check_config_file, checkpoint_config, checkpoint_problem, load_run
from invkit.lock import RunLock
from invkit.paths import user_path
from invkit.posterior import Posterior
from invkit.problem import EvalContext, Problem
from invkit.registry import get_registry
from invkit.rundir import (
    CONFIG,
    METRICS,
    MODEL,
    PLOTS,
    SIMULATIONS,
    TRAIN_LOG,
    check_writable,
    create_run_dir,
    default_run_dir,
    read_metrics,
    remove_stale_temporaries,
    write_json,
)
from invkit.signals import deferred
from invkit.simulation.file_problem import FILE_PROBLEM_SPEC
from invkit.training.log import TrainLog, require_tensorboard
from invkit.training.trainer import Trainer

TRAINING_KEYS = ("problem", "problem_options", "preset", "seed", "device", "steps",
                 "train_time_s", "data_time_s", "final_losses", "threads",
                 "threads_step_time_s", "val_loss_best", "val_best_step", "stopped_early_step",
                 "simulations")
"""What metrics.json records of training (an evaluation replaces everything else)."""


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
    if spec is FILE_PROBLEM_SPEC and cfg.problem_options.get("path"):
        # the run must find its file again from anywhere (invkit evaluate RUN_DIR elsewhere)
        cfg.problem_options["path"] = str(user_path(cfg.problem_options["path"])
                                          .resolve())
    return cfg, registry.build_problem(problem, cfg.problem_options)


def _origin(problem: Problem) -> dict[str, str]:
    o = get_registry().origin("problem", problem.name)
    return {"name": problem.name, "plugin": o.plugin, "distribution": o.distribution,
            "version": o.version}


def train(problem: str, preset: str = "default", *, overrides: dict[str, Any] | None = None,
          config_file: str | Path | None = None, seed: int | None = None,
          device: str | None = None, out: str | Path | None = None, force: bool = False,
          progress: bool = True, evaluate: bool = True, threads: int | None = None
          ) -> RunResult:
    """Train a posterior for a registered problem and write its run directory.

    ``threads``: torch's CPU threads; None chooses by timing a few steps (:mod:`invkit.threads`).

    >>> result = invkit.train("gmm", preset="quick", overrides={"labels": "some"})
    >>> result.posterior.sample([1, 0, 0, 0], 1000).shape
    torch.Size([1000, 2])
    """
    cfg, prob = resolve(problem, preset, overrides, config_file, seed, device)
    if evaluate and cfg.data.n_test < 1:
        raise ConfigError("Evaluation needs held-out pairs, but data.n_test is 0. Set "
                          "data.n_test to at least 1, or train only (--no-eval).")
    resolve_device(cfg.device)  # a bad device is bad input: fail before writing anything
    _check_threads(threads)
    if cfg.train.tensorboard:
        require_tensorboard()
    path = Path(out) if out is not None else default_run_dir(prob.name)
    if not distributed.is_main():  # under torchrun only rank 0 writes the run directory
        return _Run(path, cfg, prob, progress=False, evaluate=evaluate, threads=threads)()
    new = create_run_dir(path, force=force)
    run = _Run(new.path, cfg, prob, progress=progress, evaluate=evaluate, threads=threads)
    try:
        cfg.save(new.path / CONFIG)
        result = run()
    except BaseException:
        # a directory in which training ran is never deleted (it may hold the only copy of
        # what was trained); one that failed before its first step is, and the run it
        # replaced (--force) comes back
        if run.started or (new.path / MODEL).exists():
            new.settle()
        else:
            new.abandon()
        raise
    else:
        new.settle()
    finally:
        new.release()
    return result


def resume(run_dir: str | Path, progress: bool = True, evaluate: bool = True,
           device: str | None = None, force: bool = False, threads: int | None = None
           ) -> RunResult:
    """Continue an interrupted run from its last checkpoint; ends as an uninterrupted run would.

    A config.toml edited since the checkpoint is refused (training would silently ignore the
    edit); ``force`` resumes with the checkpoint's config and rewrites config.toml to match.
    """
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
    _check_threads(threads)
    lock = RunLock(run_dir, "resume").acquire() if distributed.is_main() else None
    try:
        ckpt = load_checkpoint(run_dir)
        cfg = checkpoint_config(ckpt, run_dir)
        if distributed.is_main():
            if check_config_file(run_dir, cfg, "resume", force=force):
                cfg.save(run_dir / CONFIG)  # --force: the checkpoint's config is the run's
            remove_stale_temporaries(run_dir)  # left by a process killed while saving
        if device is not None:
            cfg.device = device
        prob = checkpoint_problem(ckpt, cfg, run_dir)
        if threads is None:  # the count the run started with: resuming stays bit-identical
            threads = ckpt.get("threads")
        return _Run(run_dir, cfg, prob, state=ckpt["state"], progress=progress,
                    evaluate=evaluate, threads=threads)()
    finally:
        if lock is not None:
            lock.release()


def _check_threads(threads: int | None) -> None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or not 1 <= threads <= 1024):
        raise ConfigError(f"threads must be a number of CPU threads from 1 to 1024 (or None "
                          f"to choose by timing), got {threads!r}.")


class _Run:
    """Train (or continue), save and evaluate one run in one process (one rank)."""

    def __init__(self, run_dir: Path, cfg: RunConfig, prob: Problem, state: dict | None = None,
                 progress: bool = True, evaluate: bool = True, threads: int | None = None
                 ) -> None:
        self.run_dir, self.cfg, self.prob, self.state = run_dir, cfg, prob, state
        self.progress, self.evaluate, self.threads = progress, evaluate, threads
        self.started = False  # whether a training step ran (then the directory is kept)

    def __call__(self) -> RunResult:
        with numerics_restored(), threads.kept():  # the caller's float mode and threads
            return self._run()

    def _run(self) -> RunResult:
        cfg, prob, run_dir = self.cfg, self.prob, self.run_dir
        dev = resolve_device(cfg.device)
        shard = distributed.init_from_env(dev)  # None unless launched by torchrun with N > 1
        main = shard is None or shard.is_main
        progress, evaluate = self.progress, self.evaluate
        if shard is not None:
            dev = shard.device
            progress = progress and main
        configure_numerics(dev)
        origin = _origin(prob) if main else {}
        extra: dict[str, Any] = {}

        def save(trainer: Trainer, complete: bool = False) -> None:
            if not main:  # every rank holds the same state; rank 0 writes it
                return
            ckpt = make_checkpoint(trainer.state_dict(), cfg.to_dict(), origin, complete)
            save_atomic({**ckpt, **extra}, run_dir / MODEL)

        # from here until the final checkpoint is written, Ctrl-C and SIGTERM only ask the
        # loop to stop at the next step (after saving): nothing trained is ever lost
        with deferred() as stop, contextlib.ExitStack() as stack:
            trainer = Trainer(prob, cfg, dev, progress=progress, on_checkpoint=save, stop=stop)
            if self.state is not None:
                _load_state(trainer, self.state, run_dir)
            if main:
                log = TrainLog(run_dir / TRAIN_LOG, trainer.loss_names, trainer.history,
                               run_dir / "tensorboard" if cfg.train.tensorboard else None)
                stack.callback(log.close)
                trainer.on_log = log.write
            data_time = trainer.prepare_data(_cache(cfg, run_dir) if main else None)
            assert trainer.data is not None
            report = self._choose_threads(trainer, shard is not None)
            extra["threads"] = torch.get_num_threads()  # resumed with the same count
            extra["data"] = _data_summary(trainer.data.y_train)
            try:
                result = trainer.fit()
                save(trainer, complete=True)
            except TrainingInterrupted as exc:  # name the actual run directory in the way out
                raise TrainingInterrupted(str(exc).replace("RUN_DIR", _q(run_dir))) from None
            except OSError as exc:  # e.g. the disk filled up while writing a checkpoint
                if not (run_dir / MODEL).exists():
                    raise
                raise InvkitError(
                    f"Could not write the checkpoint: {exc.strerror or exc}. The previous "
                    f"checkpoint in {str(run_dir)!r} (step {trainer.last_checkpoint_step}) is "
                    f"intact: {os_error_fix(exc)} Then continue with: invkit run --resume "
                    f"{_q(run_dir)}"
                ) from exc
            finally:  # the caller keeps a directory in which training ran
                self.started = self.started or trainer.started
            if stop:  # the signal came after the last step: the final checkpoint is saved
                raise TrainingInterrupted(
                    f"Stopped by {stop.requested} after the last training step; the final "
                    f"checkpoint is saved, so nothing was lost. The evaluation did not run: "
                    f"invkit evaluate {_q(run_dir)}")
        posterior = Posterior(trainer.model, prob, cfg, dev, y_range=extra["data"])
        metrics: dict[str, Any] = {
            "problem": prob.name, "problem_options": dict(prob.options), "preset": cfg.preset,
            "seed": cfg.seed, "device": str(dev), "steps": result.steps_done,
            "train_time_s": result.train_time_s, "data_time_s": result.data_time_s + data_time,
            "final_losses": result.history[-1] if result.history else {},
            "threads": torch.get_num_threads(), **report,
            **(trainer.validation.summary() if trainer.validation is not None else {}),
            "simulations": {"budget": cfg.data.simulations, **trainer.data.simulations,
                            "train": int(trainer.data.x_train.shape[0]),
                            "validation": 0 if trainer.data.x_val is None
                            else int(trainer.data.x_val.shape[0])},
        }
        if shard is not None:
            if evaluate:  # rank 0 evaluates alone, but a baseline reference is shared work
                from invkit.evaluation.evaluate import evaluation_targets
                from invkit.evaluation.reference import prepare_reference

                prepare_reference(prob, evaluation_targets(cfg, trainer.data.y_test), cfg,
                                  progress)
            distributed.shutdown()  # the ranks leave together, before rank 0 evaluates
        if evaluate and main:
            write_json(run_dir / METRICS, metrics)  # the training figures survive a failure
            metrics.update(evaluate_posterior(posterior, run_dir, trainer.data.x_test,
                                              trainer.data.y_test, result.history, progress))
        if main:
            write_json(run_dir / METRICS, metrics)
        return RunResult(run_dir, cfg, metrics, posterior)

    def _choose_threads(self, trainer: Trainer, sharded: bool) -> dict[str, Any]:
        """Set torch's thread count for this run: given, or timed (one process, CPU)."""
        if self.threads is not None:
            torch.set_num_threads(int(self.threads))
            return {}
        if sharded or trainer.device.type != "cpu" or self.cfg.train.compile:
            return {}  # torchrun sets its own (OMP_NUM_THREADS); accelerators need no choice
        n, report = threads.choose(trainer.probe_step())
        torch.set_num_threads(n)
        return report


def _cache(cfg: RunConfig, run_dir: Path) -> Path | None:
    """Where this run's simulations are cached (``data.cache``): its own directory, none, or
    a folder the user names (shared between runs)."""
    where = cfg.data.cache.strip()
    if where == "none":
        return None
    return run_dir / SIMULATIONS if where in ("", "run") else user_path(where)


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def _data_summary(y: torch.Tensor) -> dict[str, list[float]]:
    """The range of the training observations, so sampling can warn about a y far outside it."""
    return {"y_min": y.min(0).values.tolist(), "y_max": y.max(0).values.tolist()}


def _load_state(trainer: Trainer, state: dict, run_dir: Path) -> None:
    try:
        trainer.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise CheckpointError(
            f"The training state in {str(run_dir / MODEL)!r} does not fit the network and "
            f"optimizer its config describes ({type(e).__name__}: {first_line(e)}). The "
            f"checkpoint is damaged or was edited; retrain, or resume from an intact copy."
        ) from None


def evaluate_posterior(posterior: Posterior, run_dir: Path, x_test: torch.Tensor,
                       y_test: torch.Tensor, history: list[dict[str, float]] | None = None,
                       progress: bool = True) -> dict[str, Any]:
    """The evaluation's metrics; its plots are drawn into a staging folder and moved into
    ``plots/`` only once everything succeeded, so a failure (a full disk, a plugin's hook)
    never leaves plots that disagree with metrics.json, nor half-written images."""
    from invkit.evaluation.evaluate import evaluate, make_plots

    cfg = posterior.config
    staging = Path(tempfile.mkdtemp(prefix=".plots-", suffix=".tmp", dir=run_dir))
    ctx = EvalContext(problem=posterior.problem, posterior=posterior, config=cfg,
                      device=posterior.device,
                      generator=make_generator(posterior.device, cfg.seed + 2),
                      plot_dir=staging, x_test=x_test, y_test=y_test)
    try:
        metrics = evaluate(ctx, progress=progress)
        if cfg.eval.plots:
            t0 = time.perf_counter()
            paths = make_plots(ctx, history or [])
            metrics["plots"] = [_relative(p, staging, run_dir) for p in paths]
            metrics["plot_time_s"] = time.perf_counter() - t0
        if "calibration_plots" in metrics:
            metrics["calibration_plots"] = [_relative(p, staging, run_dir)
                                            for p in metrics["calibration_plots"]]
        _publish_plots(staging, run_dir / PLOTS)
    except PluginHookError as exc:
        # training is done and saved: say so, and how to redo only the evaluation
        skip = " (add --set eval.plots=false to skip the plots)" if exc.hook == "plots" else ""
        raise PluginHookError(join_sentences(
            exc, f"The trained model is saved in {str(run_dir)!r} ({MODEL}); the evaluation "
                 f"did not finish, so {METRICS} holds no new evaluation results",
        ) + f" Fix the plugin, then redo the evaluation without retraining{skip}: invkit "
            f"evaluate {_q(run_dir)}", problem=exc.problem, hook=exc.hook) \
            from exc.__cause__
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metrics


def _publish_plots(staging: Path, plots: Path) -> None:
    """Move every file drawn into the staging folder into plots/ (a rename each: atomic)."""
    plots.mkdir(exist_ok=True)
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            target = plots / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)


def _relative(path: Any, staging: Path, run_dir: Path) -> str:
    """A plot's path as recorded in metrics.json: relative to the run directory, in plots/."""
    p = Path(path)
    with contextlib.suppress(ValueError):
        return str(Path(PLOTS) / p.relative_to(staging))
    with contextlib.suppress(ValueError):
        return str(p.relative_to(run_dir))
    return str(p)  # a plot written elsewhere (or a relative path)


def reevaluate(run_dir: str | Path, device: str = "cpu", overrides: dict[str, Any] | None = None,
               progress: bool = True) -> dict[str, Any]:
    """Recompute a run's metrics (``invkit evaluate``), optionally with other eval settings."""
    from invkit.config import set_key
    from invkit.training.data import held_out_split

    run_dir = Path(run_dir)
    if run_dir.is_file() and run_dir.name == MODEL:
        run_dir = run_dir.parent
    with RunLock(run_dir, "evaluate") if (run_dir / MODEL).is_file() \
            else contextlib.nullcontext():
        posterior, cfg, ckpt = load_run(run_dir, device)
        for key, value in (overrides or {}).items():
            full = set_key(cfg, key, value)
            if not full.startswith("eval."):
                raise InvkitError(f"invkit evaluate only changes eval.* settings; {full!r} "
                                  f"would need retraining.")
        if cfg.data.n_test < 1:
            raise ConfigError(f"{str(run_dir)!r} was trained with data.n_test=0: there are no "
                              f"held-out pairs to evaluate on. Retrain with data.n_test >= 1.")
        check_writable(run_dir)  # before any work: never half an evaluation
        remove_stale_temporaries(run_dir)
        # the held-out split is regenerated from the seed: the same points as at training time
        x_test, y_test = held_out_split(posterior.problem, cfg.data, cfg.seed,
                                        posterior.device, _cache(cfg, run_dir))
        # the training figures stay; every evaluation figure is replaced (none left stale)
        metrics = {k: v for k, v in read_metrics(run_dir).items() if k in TRAINING_KEYS}
        metrics.update(evaluate_posterior(posterior, run_dir, x_test, y_test,
                                          ckpt["state"].get("history"), progress))
        write_json(run_dir / METRICS, metrics)
        return metrics
