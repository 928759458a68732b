"""No lost work, numerical faults, reproducibility, and bad input everywhere (issue: Reliability).

Every run here is tiny (a 2-block INN of width 16 on a few hundred points), so the whole file
takes seconds. Runs whose results are compared use one CPU thread: with several threads, CPU
reductions may be ordered differently and the last bits of the weights could differ.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from invkit.cli.main import main
from invkit.device import flush_denormal_enabled
from invkit.training.objectives import INNObjective

TINY = ["--preset", "quick", "--quiet",
        "--set", "data.simulations=1000", "--set", "data.n_test=64",
        "--set", "train.batch_size=32", "--set", "model.subnet_width=16",
        "--set", "model.n_blocks=2", "--set", "train.log_every=10"]
TINY_EVAL = ["--set", "eval.n_targets=4", "--set", "eval.n_samples=64",
             "--set", "eval.plots=false"]
CHILD = ("import sys, torch; torch.set_num_threads(1); from invkit.cli.main import main; "
         "sys.exit(main(sys.argv[1:]))")
TIMING = re.compile(r"(^|_)time_s$|_per_s$")


@pytest.fixture(autouse=True)
def one_thread(_threads):
    """One thread: tiny networks gain nothing from more, and busy CI cores make them slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(False)  # training turns it on; hypothesis needs it off
    yield
    torch.set_num_threads(before)
    torch.set_flush_denormal(False)


def untimed(obj):
    """The object without wall-clock fields and without where its simulations came from (the
    cache or the simulator: the same numbers either way), which alone may differ between
    runs."""
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items()
                if not TIMING.search(str(k)) and k != "simulations"}
    if isinstance(obj, list):
        return [untimed(v) for v in obj]
    return obj


def assert_same_tensors(a, b, where=""):
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def load(run_dir: Path) -> dict:
    return torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)


def assert_same_run(a: Path, b: Path) -> None:
    """Identical final weights, optimizer, RNG state, loss history and metrics."""
    ca, cb = load(a), load(b)
    assert ca["complete"] and cb["complete"]
    sa, sb = ca["state"], cb["state"]
    assert sa["step"] == sb["step"]
    assert_same_tensors(sa["model"], sb["model"], "model")
    assert_same_tensors(sa["optimizer"], sb["optimizer"], "optimizer")
    assert torch.equal(sa["generator"], sb["generator"])
    assert untimed(sa["history"]) == untimed(sb["history"])
    ma = json.loads((a / "metrics.json").read_text())
    mb = json.loads((b / "metrics.json").read_text())
    assert untimed(ma) == untimed(mb)


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() - t0 < timeout, "no checkpoint appeared"
        time.sleep(0.005)


# -- no lost work ----------------------------------------------------------------------------
# Enough steps that the child is still training when its first checkpoint (step 10) appears.
LONG = [*TINY, "--no-eval", "--set", "train.steps=200", "--set", "train.checkpoint_every=10"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["run", "gmm", *LONG, "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    return out


def test_checkpoint_every_has_a_sensible_default():
    from invkit.config import TrainConfig

    assert TrainConfig().checkpoint_every == 500


def test_sigkill_then_resume_ends_where_an_uninterrupted_run_would(uninterrupted, tmp_path,
                                                                    one_thread):
    out = tmp_path / "run"
    with open(tmp_path / "err", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, "run", "gmm", *LONG,
                                 "--out", str(out)], cwd=tmp_path, env=child_env(),
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_for(out / "model.pt", proc)
            proc.kill()  # no chance to clean up: only what was already on disk survives
        finally:
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ckpt = load(out)  # atomic writes: never a torn file
    assert not ckpt["complete"] and 10 <= ckpt["state"]["step"] < 200
    assert ckpt["state"]["step"] % 10 == 0
    assert main(["run", "--resume", str(out), "--quiet", "--no-eval"]) == 0
    assert_same_run(out, uninterrupted)
    assert not list(out.glob(".model.pt.*.tmp"))


def test_sigterm_saves_the_step_it_stopped_at_and_resume_is_identical(uninterrupted, tmp_path,
                                                                      one_thread, capsys):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, "run", "gmm", *LONG,
                             "--out", str(out)], cwd=tmp_path, env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(out / "model.pt", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = " ".join(err.decode().split())
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    stopped = int(re.search(r"stopped at step (\d+) of 200 by SIGTERM", err).group(1))
    assert f"invkit run --resume {out}" in err
    ckpt = load(out)
    assert ckpt["state"]["step"] == stopped and not ckpt["complete"]
    assert main(["run", "--resume", str(out), "--quiet", "--no-eval"]) == 0
    assert_same_run(out, uninterrupted)


def _signal_at(monkeypatch, call: int, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to this process during training step ``call`` (1-based), deterministically."""
    original = INNObjective.forward
    count = {"n": 0}

    def forward(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == call:
            os.kill(os.getpid(), sig)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(INNObjective, "forward", forward)


def test_ctrl_c_between_log_steps_loses_nothing(tmp_path, monkeypatch, one_thread, capsys):
    """Stopped at step 14 (logs every 10): the 4 steps' losses and the eval come out identical."""
    sig = signal.SIGINT
    args = [*TINY, *TINY_EVAL, "--set", "train.steps=40", "--set", "train.checkpoint_every=20"]
    ref = tmp_path / "ref"
    assert main(["run", "gmm", *args, "--out", str(ref)]) == 0
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _signal_at(m, 14, sig)  # arrives during step 14: that step finishes, then it stops
        assert main(["run", "gmm", *args, "--out", str(out)]) == 130
    err = " ".join(capsys.readouterr().err.split())
    assert f"stopped at step 14 of 40 by {signal.Signals(sig).name}" in err
    assert f"Resume with: invkit run --resume {out}" in err
    state = load(out)["state"]
    assert state["step"] == 14 and state["loss_acc_n"] == 4
    assert not (out / "metrics.json").exists()
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, ref)


def test_sigterm_before_the_first_step_leaves_no_run(tmp_path, monkeypatch, capsys):
    """A signal while the data are simulated (before any training step) removes the run:
    nothing was trained."""
    import invkit.training.trainer as trainer

    real = trainer.generate

    def generate(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "generate", generate)
    monkeypatch.chdir(tmp_path)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["run", "gmm", *TINY, "--no-eval", "--set", "train.steps=20"]) == 130
    assert "Interrupted by SIGTERM before the first training step" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert signal.getsignal(signal.SIGTERM) == before  # the caller's handler is back


def test_resume_of_a_finished_run_changes_nothing(tmp_path, one_thread):
    out = tmp_path / "run"
    assert main(["run", "gmm", *TINY, "--no-eval", "--set", "train.steps=20",
                 "--out", str(out)]) == 0
    before = load(out)["state"]
    assert main(["run", "--resume", str(out), "--quiet", "--no-eval"]) == 0
    assert_same_tensors(before["model"], load(out)["state"]["model"], "model")


# -- numerical faults ------------------------------------------------------------------------
def _nan_from(monkeypatch, call: int) -> None:
    """From training step ``call`` on, the objective returns NaN (as a diverging run would)."""
    original = INNObjective.forward
    count = {"n": 0}

    def forward(self, *args, **kwargs):
        count["n"] += 1
        terms = original(self, *args, **kwargs)
        if count["n"] < call:
            return terms
        return {name: t * float("nan") for name, t in terms.items()}

    monkeypatch.setattr(INNObjective, "forward", forward)


def test_real_divergence_is_one_paragraph_and_keeps_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default run directory: runs/gmm/TIMESTAMP
    assert main(["run", "gmm", *TINY, "--no-eval", "--set", "train.steps=40",
                 "--set", "train.lr=1e6"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "NaN or infinite between steps 0 and 10" in err
    assert "--set train.lr=" in err and "grad_clip_norm" in err and "Traceback" not in err
    # training ran in it: the directory stays (its config.toml says what diverged), with no
    # model.pt, since no good checkpoint was written
    (run,) = (tmp_path / "runs" / "gmm").iterdir()
    assert (run / "config.toml").is_file() and not (run / "model.pt").exists()
    assert "the run directory keeps its config.toml" in err


@pytest.mark.parametrize("log_every,stop", [(5, 25), (50, 30)])
def test_divergence_keeps_the_last_good_checkpoint(log_every, stop, tmp_path, monkeypatch,
                                                   capsys):
    """NaN from step 23: checkpoints at 10 and 20 are kept, nothing after them is saved.

    With log_every=50 the first check of the losses would come after the checkpoint of step
    30: that checkpoint must refuse to save the NaN state.
    """
    out = tmp_path / "run"
    _nan_from(monkeypatch, 23)
    assert main(["run", "gmm", *TINY, "--no-eval", "--set", "train.steps=60",
                 "--set", f"train.log_every={log_every}", "--set", "train.checkpoint_every=10",
                 "--out", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    first = 20
    assert f"became NaN or infinite between steps {first} and {stop}" in err, err
    assert "l_y" in err and "The last good checkpoint (step 20) is kept" in err
    ckpt = load(out)
    assert ckpt["state"]["step"] == 20 and not ckpt["complete"]
    assert all(torch.isfinite(v).all() for v in ckpt["state"]["model"].values()
               if v.is_floating_point())


def test_nan_weights_after_the_last_step_are_not_saved(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _nan_from(monkeypatch, 20)  # the 20th and last step: its loss is logged as NaN
    assert main(["run", "gmm", *TINY, "--no-eval", "--set", "train.steps=20",
                 "--set", "train.checkpoint_every=10", "--out", str(out)]) == 2
    assert load(out)["state"]["step"] == 10


def test_grad_clamping_is_on_by_default():
    from invkit.config import TrainConfig

    assert TrainConfig().grad_clamp > 0


# -- reproducibility -------------------------------------------------------------------------
def test_same_command_twice_gives_identical_metrics(tmp_path, one_thread):
    args = ["run", "gmm", *TINY, *TINY_EVAL, "--set", "train.steps=20", "--seed", "7"]
    torch.manual_seed(1)
    np.random.seed(1)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    # one seed fixes everything without touching (or depending on) the global RNGs
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert not flush_denormal_enabled()  # nor the CPU's float mode (numpy shares it)
    assert all(np.array_equal(x, y) for x, y in zip(np.random.get_state(), np_state))
    torch.manual_seed(2)
    np.random.seed(2)
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert_same_run(tmp_path / "a", tmp_path / "b")
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert "err_resim" in metrics and math.isfinite(metrics["err_resim"])


def test_another_seed_gives_another_network(tmp_path):
    args = ["run", "gmm", *TINY, "--no-eval", "--set", "train.steps=1"]
    assert main([*args, "--seed", "1", "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--seed", "2", "--out", str(tmp_path / "b")]) == 0
    wa, wb = load(tmp_path / "a")["state"]["model"], load(tmp_path / "b")["state"]["model"]
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


# -- bad input everywhere --------------------------------------------------------------------
def _assert_one_paragraph(err: str, *fragments: str) -> None:
    text = err.strip()
    assert text.startswith("error:"), text
    assert "Traceback" not in text and "\n\n" not in text
    flat = " ".join(text.split())
    for fragment in fragments:
        assert fragment in flat, flat


@pytest.mark.parametrize("argv,fragments", [
    (["run", "gmn"], ["Unknown problem 'gmn'", "Did you mean 'gmm'"]),
    (["run", "gmm", "--set", "train.stpes=10"], ["Unknown config key", "train.steps"]),
    (["run", "gmm", "--set", "steps=lots"], ["'train.steps' must be an integer"]),
    (["run", "gmm", "--set", "steps=1e400"], ["'train.steps' must be an integer"]),
    (["run", "gmm", "--set", "lr=-1"], ["'train.lr' must be positive"]),
    (["run", "gmm", "--set", "lr=nan"], ["'train.lr' must be a finite number"]),
    (["run", "gmm", "--set", "betas=0.9"], ["'train.betas' must be 2 numbers"]),
    (["run", "gmm", "--set", "mmd_widths_x=[]"], ["needs at least one value"]),
    (["run", "gmm", "--set", "block=glo"], ["must be one of glow", "Did you mean 'glow'"]),
    (["run", "gmm", "--set", "labels=few"], ["labels must be one of"]),
    (["run", "gmm", "--set", "problem.colour=3"], ["Unknown config key 'problem.colour'"]),
    (["run", "gmm", "--seed", "-1"], ["'seed' must be between 0 and 4294967295"]),
    (["run", "gmm", "--device", "tpu"], ["Unknown device 'tpu'"]),
    (["run", "gmm", "--device", "cpu:x"], ["Unknown device 'cpu:x'"]),
    (["run", "gmm", "--set", "data.n_test=0"], ["data.n_test is 0", "--no-eval"]),
    (["run", "gmm", "--preset", "quick", "--set", "nokey"], ["--set expects KEY=VALUE"]),
    (["run"], ["needs a PROBLEM"]),
    (["run", "--resume", "nowhere"], ["Cannot resume 'nowhere': it does not exist"]),
    (["run", "--resume", "."], ["it holds no model.pt"]),
    (["run", "gmm", "--config", "missing.toml"], ["Config file 'missing.toml' does not exist"]),
])
def test_bad_input_is_one_paragraph_and_leaves_nothing(argv, fragments, tmp_path, monkeypatch,
                                                       capsys):
    monkeypatch.chdir(tmp_path)
    no_eval = ["--no-eval"] if "data.n_test=0" not in argv else []
    assert main([*argv, *no_eval]) == 2
    _assert_one_paragraph(capsys.readouterr().err, *fragments)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("content,fragments", [
    ('[train]\nstpes = 10\n', ["Unknown config key 'train.stpes'", "train.steps"]),
    ('[train]\nsteps = "many"\n', ["'train.steps' must be an integer"]),
    ('[train]\nlr = true\n', ["'train.lr' must be a number"]),
    ('[train]\nbetas = 0.9\n', ["'train.betas' must be a list"]),
    ('[model]\nblock = "glw"\n', ["Did you mean 'glow'"]),
    ('problem = "gmm"\n', ["'problem' must be a table"]),
    ('[problem]\nlabel = "some"\n', ["has no option 'label'", "Did you mean 'labels'"]),
    ('[train\nsteps = 1\n', ["is not valid TOML"]),
    ('seed = 1.5\n', ["'seed' must be an integer"]),
    ('preset = "fast"\n', ["Unknown preset 'fast'"]),
])
def test_bad_config_file(content, fragments, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(content)
    assert main(["run", "gmm", "--config", "c.toml", "--no-eval"]) == 2
    _assert_one_paragraph(capsys.readouterr().err, *fragments)
    assert not (tmp_path / "runs").exists()


def test_existing_out_needs_force_and_force_spares_foreign_folders(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert main(["run", "gmm", *TINY, "--no-eval", "--out", str(out)]) == 2
    _assert_one_paragraph(capsys.readouterr().err, "already exists", "--force")
    assert main(["run", "gmm", *TINY, "--no-eval", "--out", str(out), "--force"]) == 2
    _assert_one_paragraph(capsys.readouterr().err, "is not one (it has no .invkit-run marker")
    assert (out / "thesis.tex").read_text() == "years of work"


def test_read_only_output_folder(tmp_path, monkeypatch, capsys):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)  # what root gets from a read-only mount too
    assert main(["run", "gmm", *TINY, "--no-eval", "--out", str(tmp_path / "run")]) == 2
    _assert_one_paragraph(capsys.readouterr().err, "Cannot create the run directory",
                          "Read-only file system", "writable --out")


def _full_disk_after(monkeypatch, saves_ok: int) -> None:
    """torch.save succeeds ``saves_ok`` times, then writes a few bytes and fails with ENOSPC."""
    real_save = torch.save
    count = {"n": 0}

    def save(obj, f, *args, **kwargs):
        count["n"] += 1
        if count["n"] > saves_ok:
            f.write(b"PK\x03\x04 partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


@pytest.mark.parametrize("saves_ok", [0, 1])
def test_full_disk(saves_ok, tmp_path, monkeypatch, capsys):
    """Disk full at the first checkpoint: the run directory stays (training ran in it), without
    a model.pt; at the second: the first checkpoint is kept."""
    out = tmp_path / "run"
    _full_disk_after(monkeypatch, saves_ok)
    assert main(["run", "gmm", *TINY, "--no-eval", "--set", "train.steps=30",
                 "--set", "train.checkpoint_every=10", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    if saves_ok == 0:
        _assert_one_paragraph(err, "No space left on device", "The disk is full")
        assert (out / "config.toml").is_file() and not (out / "model.pt").exists()
        assert not list(out.glob(".model.pt.*"))  # no torn temporary file
    else:
        _assert_one_paragraph(err, "No space left on device", "(step 10) is intact",
                              f"invkit run --resume {out}")
        assert load(out)["state"]["step"] == 10  # the intact earlier checkpoint
        assert not list(out.glob(".model.pt.*"))  # no torn temporary file


def test_full_disk_while_writing_metrics_keeps_the_model(tmp_path, monkeypatch, capsys):
    import invkit.api

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    out = tmp_path / "run"
    monkeypatch.setattr(invkit.api, "write_json", full)
    assert main(["run", "gmm", *TINY, "--no-eval", "--set", "train.steps=10",
                 "--out", str(out)]) == 2
    _assert_one_paragraph(capsys.readouterr().err, "The disk is full")
    assert load(out)["complete"]  # the finished training is not thrown away


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["run", "gmm", *TINY, "--no-eval", "--set", "train.steps=10",
                 "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("extra,fragments", [
    (["--y", "nan,1,0,0,0,0,0,0"], ["is not finite; observations must be finite numbers"]),
    (["--y", "inf,1,0,0,0,0,0,0"], ["is not finite; observations must be finite numbers"]),
    (["--y", "1,0"], ["dim_y=8"]),
    (["--y", "1,x"], ["is not a number"]),
    (["--y", "1,0,0,0,0,0,0,0", "--y", "1,0"], ["same number of values"]),
    (["--y", "1,0,0,0,0,0,0,0", "-n", "0"], ["-n must be a positive number"]),
    (["--y", "1,0,0,0,0,0,0,0", "--out", "s.txt"], ["--out must end in .npy, .pt or .csv"]),
    (["--y", "1,0,0,0,0,0,0,0", "--out", "no/such/dir/s.npy"], ["a folder in it does not exist"]),
    (["--y", "1,0,0,0,0,0,0,0", "--device", "cuda:x"], ["cuda"]),
])
def test_bad_sample_input(tiny_run, extra, fragments, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", str(tiny_run), "-n", "5", *extra]) == 2
    _assert_one_paragraph(capsys.readouterr().err, *fragments)


def test_negative_observation_values_parse(tiny_run, tmp_path):
    out = tmp_path / "s.npy"
    assert main(["sample", str(tiny_run), "-n", "3", "--y", "-1,0,0,0,0,0,0,0.5",
                 "--y", "-.5,0,0,0,0,0,0,0", "--out", str(out)]) == 0
    assert np.load(out).shape == (2, 3, 2)


def test_sample_out_exists_needs_force(tiny_run, tmp_path, capsys):
    out = tmp_path / "s.npy"
    out.write_bytes(b"keep")
    assert main(["sample", str(tiny_run), "-n", "5", "--y", "1,0,0,0,0,0,0,0",
                 "--out", str(out)]) == 2
    _assert_one_paragraph(capsys.readouterr().err, "exists; add --force")
    assert out.read_bytes() == b"keep"


def test_evaluate_refuses_training_keys(tiny_run, capsys):
    assert main(["evaluate", str(tiny_run), "--quiet", "--set", "train.lr=1"]) == 2
    _assert_one_paragraph(capsys.readouterr().err, "only changes eval.* settings")


def test_resume_refuses_new_settings(tiny_run, capsys):
    assert main(["run", "--resume", str(tiny_run), "--set", "train.lr=1"]) == 2
    _assert_one_paragraph(capsys.readouterr().err, "--resume continues a run")


def test_error_table_script_runs(capsys):
    """docs/reference/errors.md is generated by docs/_scripts/error_table.py: keep it working."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "docs" / "_scripts" / "error_table.py"
    spec = importlib.util.spec_from_file_location("error_table", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["error_table"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["error_table"]
    rows = module.collect()
    assert len(rows) > 40
    for row in rows:
        assert row.code == row.case.expected, (row.case.what, row.code, row.message)
        assert "Traceback" not in row.message and row.message, row
