"""Nothing of the user's is lost: --force replaces only runs invkit wrote, and only once the new
run has trained; a run directory is locked for its life; an evaluation changes metrics and
plots together or not at all; signals and full disks keep what was trained."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from invkit.cli.main import main
from invkit.lock import RunLock

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--preset", "quick", "--quiet", "--threads", "1",
        "--set", "data.simulations=500", "--set", "data.n_test=32",
        "--set", "train.batch_size=32", "--set", "model.subnet_width=8",
        "--set", "model.n_blocks=2", "--set", "train.steps=20", "--set", "train.log_every=5"]
EVAL = ["--set", "eval.n_targets=4", "--set", "eval.n_samples=32",
        "--set", "eval.calibration_targets=20", "--set", "eval.calibration_samples=19"]


def _err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    torch.set_num_threads(1)
    assert main(["run", "gmm", *TINY, *EVAL, "--out", str(out)]) == 0
    return out


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(size)``: a real small file system (tmpfs) of that size, unmounted afterwards;
    the test is skipped where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        mnt = tmp_path / f"fs{len(mounted)}"
        mnt.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                          capture_output=True).returncode != 0:
            pytest.skip("mounting a tmpfs is not allowed here")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _copy(run: Path, where: Path) -> Path:
    target = where / "copy"
    shutil.copytree(run, target, ignore=shutil.ignore_patterns(".lock"))
    return target


# -- 1. --force ---------------------------------------------------------------------------------
def test_force_never_deletes_a_folder_invkit_did_not_write(tmp_path, capsys):
    """A folder holding a config.toml is not a run for that alone: the thesis stays."""
    out = tmp_path / "work"
    out.mkdir()
    (out / "config.toml").write_text("[train]\nsteps = 3\n")
    (out / "thesis.tex").write_text("years of work")
    assert main(["run", "gmm", *TINY, "--no-eval", "--out", str(out), "--force"]) == 2
    assert "--force replaces only a run directory that invkit wrote" in _err(capsys)
    assert (out / "thesis.tex").read_text() == "years of work"
    assert (out / "config.toml").read_text() == "[train]\nsteps = 3\n"


def test_force_replaces_a_run_and_a_failed_replacement_puts_the_old_run_back(
        tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(["run", "gmm", *TINY, "--no-eval", "--out", str(out)]) == 0
    before = (out / "model.pt").read_bytes()
    import invkit.training.trainer as trainer

    def broken(*args, **kwargs):
        raise RuntimeError("simulator crashed before the first step")

    with monkeypatch.context() as m:
        m.setattr(trainer, "generate", broken)
        with pytest.raises(RuntimeError):
            main(["run", "gmm", *TINY, "--no-eval", "--out", str(out), "--force"])
    assert (out / "model.pt").read_bytes() == before  # the old run is back, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no half-made or aside folders
    assert main(["run", "gmm", *TINY, "--no-eval", "--seed", "3", "--out", str(out),
                 "--force"]) == 0
    assert (out / "model.pt").read_bytes() != before
    assert json.loads((out / ".invkit-run").read_text())["format"] == "invkit-run"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_force_refuses_a_file(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep")
    assert main(["run", "gmm", *TINY, "--no-eval", "--out", str(target), "--force"]) == 2
    err = _err(capsys)
    assert "is a file, not a run directory" in err and "does not exist" not in err
    assert target.read_text() == "keep"


def test_exists_suggests_resume_only_when_there_is_something_to_resume(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["run", "gmm", *TINY, "--no-eval", "--out", str(out)]) == 2
    assert "--resume" not in _err(capsys)


# -- 2. baseline --out ------------------------------------------------------------------------
def test_baseline_out_asks_for_force(tmp_path, capsys):
    target = tmp_path / "abc.pt"
    target.write_text("my results")
    args = ["baseline", "abc", "kinematics", "--y", "1.5,0.5", "-n", "5", "--quiet",
            "--set", "budget=20000", "--set", "method=quantile", "--out", str(target)]
    assert main(args) == 2
    assert "exists; add --force to overwrite it" in _err(capsys)
    assert target.read_text() == "my results"
    assert main([*args, "--force"]) == 0
    assert len(torch.load(target, weights_only=True)["samples"]) == 1


def test_baseline_out_in_a_missing_folder_is_refused_before_any_work(tmp_path, capsys):
    args = ["baseline", "abc", "kinematics", "--y", "1.5,0.5", "-n", "5", "--quiet",
            "--set", "budget=20000", "--out", str(tmp_path / "no" / "abc.pt")]
    assert main(args) == 2
    assert "does not exist" in _err(capsys)


# -- 3. the lock ------------------------------------------------------------------------------
def test_a_run_in_use_is_refused_with_the_holders_pid(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path)
    with RunLock(run, "use"):  # as another `invkit run` holding it
        assert main(["run", "gmm", *TINY, "--no-eval", "--out", str(run), "--force"]) == 2
        assert f"is in use by process {os.getpid()}" in _err(capsys)
        assert main(["evaluate", str(run), "--quiet"]) == 2
        assert f"is in use by process {os.getpid()}" in _err(capsys)
        assert main(["run", "--resume", str(run), "--quiet"]) == 2
        assert "in use" in _err(capsys)
    assert (run / "model.pt").exists()


def test_two_forced_runs_at_once_one_is_refused(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "invkit", "run", "gmm", *TINY, "--no-eval",
            "--set", "train.steps=5000", "--out", str(out), "--force"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    import time

    deadline = time.monotonic() + 60
    while not (out / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    first.terminate()  # it has shown what it had to; SIGTERM: it saves and exits 130
    _, first_err = first.communicate(timeout=120)
    assert second.returncode == 2, second.stderr
    assert f"in use by process {first.pid}" in " ".join(second.stderr.split())
    assert first.returncode == 130, first_err


# -- 4. evaluate on a run directory it cannot write -------------------------------------------
def test_evaluate_that_cannot_write_changes_nothing(finished, tmp_path, monkeypatch, capsys):
    run = _copy(finished, tmp_path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    import tempfile

    import invkit.rundir as rundir

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(rundir.tempfile, "mkstemp", read_only)
    assert main(["evaluate", str(run), "--quiet"]) == 2
    err = _err(capsys)
    assert "Cannot write to" in err and "read-only" in err and "Nothing was changed" in err
    monkeypatch.setattr(rundir.tempfile, "mkstemp", tempfile.mkstemp)
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == {p: b for p, b in before.items() if p.name != ".lock"}


def test_evaluate_on_a_really_read_only_mount(finished, tmpfs, capsys):
    mnt = tmpfs("8m")
    run = _copy(finished, mnt)
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["evaluate", str(run), "--quiet"]) == 2
    err = _err(capsys)
    assert "read-only" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


# -- 19. signals over the whole life of the run -----------------------------------------------
def test_a_signal_after_the_last_step_lets_the_final_save_finish(tmp_path, monkeypatch, capsys):
    """With checkpoint_every=0 the final save is the only one: a signal between the last step
    and that save used to lose every step (and delete the run)."""
    import invkit.training.trainer as trainer

    real = trainer.Trainer.fit

    def fit(self):
        result = real(self)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives right before the final save
        return result

    monkeypatch.setattr(trainer.Trainer, "fit", fit)
    out = tmp_path / "run"
    assert main(["run", "gmm", *TINY, "--set", "train.checkpoint_every=0",
                 "--out", str(out)]) == 130
    assert "after the last training step; the final checkpoint is saved" in _err(capsys)
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["complete"] and ckpt["state"]["step"] == 20


# -- 21. a real full disk ---------------------------------------------------------------------
def test_a_real_full_disk_is_a_clear_message(tmpfs, capsys):
    out = tmpfs("96k") / "run"
    code = main(["run", "gmm", *TINY, "--no-eval", "--set", "model.subnet_width=64",
                 "--set", "train.checkpoint_every=5", "--set", "data.cache=none",
                 "--out", str(out)])
    err = _err(capsys)
    assert code == 2 and "Traceback" not in err, err
    assert "No space left on device" in err and "The disk is full" in err
    assert not list(out.glob(".model.pt.*"))  # no torn temporary file left behind


def test_plots_on_a_disk_that_fills_leave_no_empty_images(finished, tmpfs, capsys):
    mnt = tmpfs("4m")
    run = _copy(finished, mnt)
    shutil.rmtree(run / "simulations", ignore_errors=True)
    for png in (run / "plots").glob("*.png"):
        png.unlink()
    filler = mnt / "filler"
    free = shutil.disk_usage(mnt).free
    filler.write_bytes(b"\0" * max(0, free - 30_000))  # room for metrics, not the plots
    code = main(["evaluate", str(run), "--quiet"])
    err = _err(capsys)
    assert code == 2 and "Traceback" not in err, err
    assert not [p for p in (run / "plots").glob("*.png") if p.stat().st_size == 0]
    assert not list(run.glob(".plots-*"))  # the staging folder is gone


# -- 23. a model.pt that belongs to another run -----------------------------------------------
def test_a_checkpoint_from_another_run_is_refused(finished, tmp_path, capsys):
    other = tmp_path / "arm"
    assert main(["run", "kinematics", *TINY, "--no-eval", "--out", str(other)]) == 0
    run = _copy(finished, tmp_path)
    shutil.copy(other / "model.pt", run / "model.pt")
    before = (run / "metrics.json").read_text()
    assert main(["evaluate", str(run), "--quiet"]) == 2
    err = _err(capsys)
    assert "does not match the config saved in" in err
    assert "problem.name: 'gmm' in config.toml, 'kinematics' in model.pt" in err
    assert (run / "metrics.json").read_text() == before
    assert main(["sample", str(run), "--y", "1.5,0.5", "-n", "3"]) == 2


# -- 12. --resume after config.toml was edited ------------------------------------------------
def test_resume_refuses_an_edited_config_and_force_takes_the_checkpoints(tmp_path, capsys,
                                                                          monkeypatch):
    out = tmp_path / "run"
    from invkit.training.inn_objective import INNObjective

    real, calls = INNObjective.forward, []

    def stop_at_step_10(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(INNObjective, "forward", stop_at_step_10)
        assert main(["run", "gmm", *TINY, "--no-eval", "--out", str(out)]) == 130
    capsys.readouterr()
    config = out / "config.toml"
    config.write_text(config.read_text().replace("steps = 20", "steps = 40"))
    assert main(["run", "--resume", str(out), "--quiet", "--no-eval"]) == 2
    err = _err(capsys)
    assert "train.steps: 40 in config.toml, 20 in model.pt" in err and "--force" in err
    assert main(["run", "--resume", str(out), "--quiet", "--no-eval", "--force"]) == 0
    assert "steps = 20" in config.read_text()  # rewritten to the config it trained with
    assert torch.load(out / "model.pt", weights_only=True)["state"]["step"] == 20


# -- 24. python -m invkit, and temporary files of a killed save ------------------------------
def test_python_dash_m_invkit_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "invkit", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("invkit ")


def test_stale_temporaries_are_removed(finished, tmp_path):
    run = _copy(finished, tmp_path)
    stale = run / ".model.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert main(["evaluate", str(run), "--quiet", "--set", "eval.plots=false"]) == 0
    assert not stale.exists()


def test_the_summary_says_what_early_stopping_did():
    from invkit.cli.common import summary_rows

    rows = dict(summary_rows({"steps": 900, "train_time_s": 3.0, "val_best_step": 600,
                              "val_loss_best": -1.25, "stopped_early_step": 900,
                              "kept_best_weights": True}))
    assert rows["validation"] == "stopped early at step 900; best loss -1.25 at step 600, its " \
                                 "weights kept"
    assert "validation" not in dict(summary_rows({"steps": 900, "train_time_s": 3.0}))
