"""The run directory: config.toml, model.pt, metrics.json, plots/, and loading it back."""

from __future__ import annotations

import datetime as _dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from invkit.checkpoint import first_line, load_checkpoint
from invkit.config import RunConfig, config_from_dict
from invkit.errors import CheckpointError, InvkitError, InvkitWarning, join_sentences
from invkit.models.kinds import build_model
from invkit.posterior import Posterior
from invkit.problem import Problem
from invkit.registry import Registry, get_registry

CONFIG, MODEL, METRICS, PLOTS = "config.toml", "model.pt", "metrics.json", "plots"


def default_run_dir(problem: str, root: Path = Path("runs")) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / problem / stamp
    k = 1
    while path.exists():
        path = root / problem / f"{stamp}-{k}"
        k += 1
    return path


def create_run_dir(path: Path, force: bool = False) -> Path:
    """Make the run directory; an existing one is replaced only with ``force``."""
    path = Path(path)
    if path.exists():
        if not force:
            raise InvkitError(
                f"Output directory {str(path)!r} already exists; invkit never overwrites a run. "
                f"Choose another --out, add --force to replace it, or --resume it."
            )
        if not (path / MODEL).exists() and not (path / CONFIG).exists() and any(path.iterdir()):
            raise InvkitError(
                f"--force would delete {str(path)!r}, which does not look like an invkit run "
                f"directory (no config.toml or model.pt). Remove it yourself or pick another --out."
            )
        shutil.rmtree(path)
    try:
        (path / PLOTS).mkdir(parents=True)
    except OSError as exc:
        raise InvkitError(f"Cannot create the run directory {str(path)!r}: {exc.strerror}. "
                          f"Pick a writable --out.") from None
    return path


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. a full disk: leave no half-written file behind
        raise


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / METRICS
    return json.loads(path.read_text()) if path.exists() else {}


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
    import warnings

    reg = get_registry()
    saved = ckpt.get("problem") if isinstance(ckpt.get("problem"), dict) else {}
    dist, version = saved.get("distribution", "?"), saved.get("version", "")
    if cfg.problem not in reg.entries["problem"]:
        raise CheckpointError(_missing_problem(reg, cfg.problem, saved, where))
    here = reg.origin("problem", cfg.problem)
    if (dist, version) != (here.distribution, here.version) and saved:
        warnings.warn(InvkitWarning(
            f"{str(where)!r} was trained with problem {cfg.problem!r} from {dist} {version}; "
            f"this environment has {here.distribution} {here.version}. If the problem changed "
            f"in between, samples and metrics may not match the original run."
        ), stacklevel=2)
    return reg.build_problem(cfg.problem, cfg.problem_options)


def _dist_key(name: str) -> str:
    """A distribution name as pip compares them: case, '-', '_' and '.' do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


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
              if _dist_key(f.distribution) == _dist_key(dist) or f.name == plugin]
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


def load_run(run_dir: Any, device: str | torch.device = "cpu"
             ) -> tuple[Posterior, RunConfig, dict[str, Any]]:
    """(posterior, config, checkpoint) of a run directory, with the problem rebuilt."""
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir)
    cfg = checkpoint_config(ckpt, run_dir)
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    problem = checkpoint_problem(ckpt, cfg, run_dir)
    model = build_model(cfg.model, problem.dim_x, problem.dim_y, cfg.seed)
    try:
        model.load_state_dict(ckpt["state"]["model"])
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(
            f"The weights in {str(run_dir)!r} do not fit the network its config describes "
            f"({first_line(exc) or type(exc).__name__}). The checkpoint is damaged or was "
            f"edited; retrain, or use an intact copy."
        ) from None
    return Posterior(model, problem, cfg, dev), cfg, ckpt


def load_posterior(run_dir: Any, device: str | torch.device = "cpu") -> Posterior:
    return load_run(run_dir, device)[0]
