"""The live training log: train_log.csv written as training goes, rewritten from the history on
resume, and TensorBoard only when asked (and installed)."""

from __future__ import annotations

import csv
import os
import signal
import sys

import pytest

from invkit.cli.main import main

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--preset", "quick", "--quiet", "--no-eval", "--threads", "1",
        "--set", "data.simulations=500", "--set", "data.n_test=32",
        "--set", "train.batch_size=32", "--set", "model.subnet_width=8",
        "--set", "model.n_blocks=2", "--set", "train.steps=40", "--set", "train.log_every=5"]


def _rows(run):
    with open(run / "train_log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_logged_step_is_a_row(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "gmm", *TINY, "--set", "data.validation=0.2",
                 "--set", "train.validate_every=5", "--out", str(out)]) == 0
    rows = _rows(out)
    assert [int(r["step"]) for r in rows] == list(range(5, 45, 5))
    assert {"total", "l_y", "l_z", "l_x", "l_recon", "lr", "time_s", "val_loss"} <= set(rows[0])
    assert all(float(r["val_loss"]) == float(r["val_loss"]) for r in rows)  # logged, finite


def test_the_log_is_readable_while_training(tmp_path, monkeypatch):
    """Each row is flushed as it is logged: read the file from inside training."""
    import invkit.training.log as log

    seen = []
    real = log.TrainLog.write

    def write(self, record):
        real(self, record)
        seen.append(len(_rows(tmp_path / "run")))

    monkeypatch.setattr(log.TrainLog, "write", write)
    assert main(["run", "gmm", *TINY, "--out", str(tmp_path / "run")]) == 0
    assert seen == list(range(1, 9))


def test_resume_rewrites_the_log_from_the_checkpoint(tmp_path, monkeypatch):
    from invkit.training.inn_objective import INNObjective

    out = tmp_path / "run"
    real, calls = INNObjective.forward, []

    def stop_at_step_17(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 17:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(INNObjective, "forward", stop_at_step_17)
        assert main(["run", "gmm", *TINY, "--out", str(out)]) == 130
    assert [int(r["step"]) for r in _rows(out)] == [5, 10, 15]
    assert main(["run", "--resume", str(out), "--quiet", "--no-eval"]) == 0
    assert [int(r["step"]) for r in _rows(out)] == list(range(5, 45, 5))


def test_tensorboard_without_the_package_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails
    assert main(["run", "gmm", *TINY, "--set", "train.tensorboard=true",
                 "--out", str(tmp_path / "run")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "pip install 'invkit[tensorboard]'" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_tensorboard_events_when_asked(tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    assert main(["run", "gmm", *TINY, "--set", "train.tensorboard=true",
                 "--out", str(out)]) == 0
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
