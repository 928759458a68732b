"""Loading a run back: its config, its problem (naming a missing plugin) and its posterior,
with the checks that keep a run's files consistent (the checkpoint against config.toml, an
unfinished run, another version of the problem's plugin)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from invkit.checkpoint import first_line, load_checkpoint
from invkit.config import RunConfig, config_from_dict, load_toml
from invkit.errors import CheckpointError, InvkitError, InvkitWarning, join_sentences
from invkit.models.kinds import build_model
from invkit.posterior import Posterior
from invkit.problem import Problem
from invkit.registry import Registry, dist_key, get_registry
from invkit.rundir import CONFIG, MODEL


def checkpoint_config(ckpt: dict[str, Any], where: Any) -> RunConfig:
    """The RunConfig saved in a checkpoint; a damaged or foreign one is a CheckpointError."""
    try:
        return config_from_dict(ckpt["config"])
    except InvkitError as exc:
        raise CheckpointError(
            f"The config saved in {str(where)!r} is not valid for this invkit "
            f"({ckpt.get('versions', {}).get('invkit', '?')} wrote it): {exc}"
        ) from None
    except Exception as exc:  # not a dict of sections: edited or damaged
        raise CheckpointError(
            f"The config saved in {str(where)!r} is damaged ({type(exc).__name__}: {exc}); "
            f"retrain, or resume from an intact copy."
        ) from None


def checkpoint_problem(ckpt: dict[str, Any], cfg: RunConfig, where: Any) -> Problem:
    """Rebuild a checkpoint's problem; name the plugin that is missing, warn on a new version."""
    reg = get_registry()
    saved = ckpt.get("problem") if isinstance(ckpt.get("problem"), dict) else {}
    dist, version = saved.get("distribution", "?"), saved.get("version", "")
    if not reg.has("problem", cfg.problem):
        raise CheckpointError(_missing_problem(reg, cfg.problem, saved, where))
    here = reg.origin("problem", cfg.problem)
    if (dist, version) != (here.distribution, here.version) and saved:
        warnings.warn(InvkitWarning(
            f"{str(where)!r} was trained with problem {cfg.problem!r} from {dist} {version}; "
            f"this environment has {here.distribution} {here.version}. If the problem changed "
            f"in between, samples and metrics may not match the original run."
        ), stacklevel=2)
    return reg.build_problem(cfg.problem, cfg.problem_options)


def _installed_version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except (metadata.PackageNotFoundError, ValueError):
        return None


def _missing_problem(reg: Registry, problem: str, saved: dict[str, Any], where: Any) -> str:
    """Why a checkpoint's problem is not registered here: its distribution is missing, or
    installed but failed to load (or loaded without registering the problem)."""
    plugin, dist = saved.get("plugin", "?"), saved.get("distribution", "?")
    version = saved.get("version", "")
    trained = (f"{str(where)!r} was trained on problem {problem!r} from plugin {plugin!r} "
               f"(distribution {' '.join(filter(None, (dist, version)))})")
    failed = [f for f in reg.failed
              if dist_key(f.distribution) == dist_key(dist) or f.name == plugin]
    if failed:
        return join_sentences(
            f"{trained}. That distribution is installed here but failed to load",
            *(f.describe() for f in failed),
            "Fix the plugin (or reinstall it), then check with 'invkit list' that it loads "
            "without a warning",
            *(f.describe() for f in reg.failed if f not in failed),
            *(w.message for w in reg.warnings))
    here = _installed_version(dist) if dist != "?" else None
    if here is not None:
        also = f"pip install '{dist}=={version}'" if version and version != here else ""
        return join_sentences(
            f"{trained}. That distribution is installed here ({dist} {here}) but registers no "
            f"problem {problem!r}",
            "Run 'invkit list' to see what it registers (INVKIT_PLUGINS or "
            "INVKIT_DISABLE_PLUGIN_AUTOLOAD may keep it from loading)"
            + (f", or install the version the run was trained with ({also})" if also else ""),
            reg.trouble())
    pin = f"=={version}" if version else ""
    return join_sentences(
        f"{trained}, which is not installed here. Install that distribution (pip install "
        f"'{dist}{pin}') and check 'invkit list'", reg.trouble())


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        u, v = a.get(key), b.get(key)
        if isinstance(u, dict) and isinstance(v, dict):
            out += _differences(u, v, f"{prefix}{key}.")
        elif u != v:
            out.append(f"{prefix}{key}: {v!r} in config.toml, {u!r} in model.pt")
    return out


def check_config_file(run_dir: Path, cfg: RunConfig, what: str, force: bool = False) -> bool:
    """Compare a run's config.toml with the config saved in its checkpoint.

    They differ when config.toml was edited (training would silently ignore the edit) or when
    model.pt came from another run (its figures would be written into this one): refused, with
    the differences. ``force`` (resume only) accepts the checkpoint's config instead; returns
    whether config.toml must then be rewritten. A missing config.toml is not an error.
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        return force
    try:
        on_disk = config_from_dict(load_toml(path)).to_dict()
    except InvkitError as exc:
        on_disk = {"(unreadable)": str(exc)}
    saved = cfg.to_dict()
    on_disk.pop("device", None), saved.pop("device", None)  # --device may change where it runs
    diff = _differences(saved, on_disk)
    if not diff:
        return False
    if force:
        return True
    shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
    fix = ("continue with the checkpoint's config (config.toml is rewritten to match) with "
           "invkit run --resume RUN --force, or start a new run with the edited settings"
           if what == "resume" else
           "if model.pt was copied from another run, use that run's directory; if config.toml "
           "was edited, undo the edit")
    raise CheckpointError(
        f"{str(path)!r} does not match the config saved in {str(Path(run_dir) / MODEL)!r} "
        f"({shown}). Refusing to {what} a run whose files disagree: {fix}.".replace(
            "RUN", str(run_dir)))


def load_run(run_dir: Any, device: str | torch.device = "cpu"
             ) -> tuple[Posterior, RunConfig, dict[str, Any]]:
    """(posterior, config, checkpoint) of a run directory, with the problem rebuilt.

    Refuses a model.pt that does not belong with the directory's config.toml; warns when the
    run is unfinished (its checkpoint is from before the last step).
    """
    run_dir = Path(run_dir)
    if run_dir.is_file() and run_dir.name == MODEL:
        run_dir = run_dir.parent
    ckpt = load_checkpoint(run_dir)
    cfg = checkpoint_config(ckpt, run_dir)
    check_config_file(run_dir, cfg, "use")
    if not ckpt.get("complete", True):
        step = ckpt["state"].get("step", "?")
        of = (f"{cfg.train.steps} (train.steps)" if cfg.train.steps
              else "the steps planned from the budget (train.steps = 0)")
        warnings.warn(InvkitWarning(
            f"{str(run_dir)!r} is an unfinished run: its checkpoint is from step {step} of "
            f"{of}, so its posterior is only partly trained. "
            f"Finish training with: invkit run --resume {str(run_dir)}"), stacklevel=2)
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    problem = checkpoint_problem(ckpt, cfg, run_dir)
    model = build_model(cfg.model, problem.dim_x, problem.dim_y, cfg.seed)
    try:
        model.load_state_dict(_weights(ckpt))
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(
            f"The weights in {str(run_dir)!r} do not fit the network its config describes "
            f"({first_line(exc) or type(exc).__name__}). The checkpoint is damaged or was "
            f"edited; retrain, or use an intact copy."
        ) from None
    y_range = ckpt.get("data") if isinstance(ckpt.get("data"), dict) else None
    return Posterior(model, problem, cfg, dev, y_range=y_range), cfg, ckpt


def _weights(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The weights to sample with: an unfinished run trained with train.ema is sampled with
    its weight average, as the finished run would be (its "model" holds the raw weights the
    resumed training continues from)."""
    state = ckpt["state"]
    average = state.get("weight_average")
    if ckpt.get("complete", True) or not isinstance(average, dict):
        return state["model"]
    return {**state["model"], **average["weights"]}


def load_posterior(run_dir: Any, device: str | torch.device = "cpu") -> Posterior:
    return load_run(run_dir, device)[0]
