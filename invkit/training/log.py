"""The live training log: every logged step as a row of ``train_log.csv`` in the run directory,
written and flushed as training goes (so it can be read, plotted or tailed while the run is
still going), and as TensorBoard scalars when asked (``train.tensorboard``; ``tensorboard
--logdir runs/`` then shows every run side by side).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from invkit.errors import ConfigError

FIRST = ("step", "time_s", "lr")


def require_tensorboard() -> None:
    """Fail before training, with the install command, when TensorBoard is asked for but
    missing (torch's writer needs the ``tensorboard`` package)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError("train.tensorboard=true needs the tensorboard package: pip install "
                          "'invkit[tensorboard]' (or pip install tensorboard), or drop the "
                          "setting; train_log.csv is written either way.") from None


class TrainLog:
    """Appends log records to ``path`` (CSV, flushed per row) and, optionally, TensorBoard."""

    def __init__(self, path: Path, names: Sequence[str], history: Sequence[dict[str, Any]],
                 tensorboard: Path | None = None) -> None:
        self.columns = [*FIRST, *names, "val_loss"]
        self._file = open(path, "w", newline="")  # noqa: SIM115 - open for the run's life
        self._csv = csv.DictWriter(self._file, self.columns, extrasaction="ignore")
        self._csv.writeheader()
        self._tb = None
        if tensorboard is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(tensorboard), purge_step=_next(history))
        for record in history:
            self._csv.writerow(record)
        self._file.flush()

    def write(self, record: dict[str, Any]) -> None:
        self._csv.writerow(record)
        self._file.flush()
        if self._tb is not None:
            step = int(record["step"])
            for key, value in record.items():
                if key not in ("step", "time_s") and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"train/{key}", value, step)
            self._tb.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _next(history: Sequence[dict[str, Any]]) -> int:
    """TensorBoard drops events after this step (written before an interruption)."""
    return int(history[-1]["step"]) + 1 if history else 0
