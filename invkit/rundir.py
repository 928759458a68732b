"""The run directory: config.toml, model.pt, metrics.json, plots/ — and loading it back."""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from invkit.checkpoint import load_checkpoint
from invkit.config import RunConfig
from invkit.errors import CheckpointError, InvkitError

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
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / METRICS
    return json.loads(path.read_text()) if path.exists() else {}


def load_run(run_dir: Any, device: str | torch.device = "cpu"):
    """(posterior, config, checkpoint) of a run directory, with the problem rebuilt."""
    from invkit.posterior import Posterior
    from invkit.registry import get_registry
    from invkit.training.trainer import build_model

    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir)
    cfg = RunConfig.from_dict(ckpt["config"])
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    problem = get_registry().build_problem(cfg.problem, cfg.problem_options)
    model = build_model(cfg, problem)
    try:
        model.load_state_dict(ckpt["state"]["model"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"The weights in {str(run_dir)!r} do not fit the network its config describes "
            f"({str(exc).splitlines()[0]}). The checkpoint is damaged or was edited."
        ) from None
    return Posterior(model, problem, cfg, dev), cfg, ckpt


def load_posterior(run_dir: Any, device: str | torch.device = "cpu"):
    return load_run(run_dir, device)[0]
