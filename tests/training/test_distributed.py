"""Data-parallel training (gloo, 2 CPU processes) reproduces one process on the same batch.

Two ranks each take half of every global batch; the MMD terms are computed over the whole
batch through the sharded fused MMD, so the loss history and the weights must match a single
process within float rounding.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from invkit import distributed
from invkit.training.losses import mmd2

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")

LOSSES = ("total", "l_y", "l_z", "l_x", "l_recon")
WIDTHS = [0.05, 0.2, 0.9]
# a tiny gmm run: 2 ranks x 64 rows; several log records so the curve is compared, not a point
TINY = {
    "data.simulations": 4096, "data.n_test": 16, "train.batch_size": 128, "train.steps": 12,
    "train.log_every": 2, "model.n_blocks": 2, "model.subnet_width": 32,
}

# the conditional INN (maximum likelihood): the global batch's standardisation, condition noise
# and auxiliary draws on every rank alike, each rank on its own rows
CINN = {"model.kind": "cinn", "model.cond_features": 4, "model.cond_width": 16}
CINN_LOSSES = ("total", "z_sq", "neg_log_det")
# the INN with model.standardise: statistics from the global first batch, on every rank alike;
# with the kinematics preset's padding options (noise on x's padding only, L_pad)
STD = {"model.standardise": True, "train.pad_noise_on": "x", "train.lambda_pad": 5.0}
# and L_resim, through the arm's own forward process (the mixture's labels have no gradient),
# with the joint L_x of the arm's default preset
RESIM = {**STD, "train.lambda_resim": 10.0, "train.mmd_x_y_scale": 3.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(overrides: dict, problem: str = "gmm") -> tuple[list[dict], dict]:
    from invkit import api
    from invkit.training.trainer import Trainer

    cfg, prob = api.resolve(problem, "quick", dict(overrides), device="cpu")
    shard = distributed.current()
    trainer = Trainer(prob, cfg, torch.device("cpu"), progress=False)
    result = trainer.fit()
    assert shard is None or trainer.dist is shard
    return result.history, {k: v.clone() for k, v in trainer.model.state_dict().items()}


def _worker(rank: int, world: int, port: int, out: str, overrides: dict) -> None:
    """One rank: the sharded MMD on fixed data, then a tiny training run."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    shard = distributed.init_from_env(torch.device("cpu"))
    assert shard is not None and shard.world_size == world and shard.rank == rank
    try:
        x, y = _mmd_data()
        xl = shard.rows(x).clone().requires_grad_()
        yl = shard.rows(y).clone().requires_grad_()
        value = distributed.sharded_mmd2(xl, yl, WIDTHS, shard)
        value.backward()
        history, state = _train(overrides)
        cinn_history, cinn_state = _train({**overrides, **CINN})
        std_history, std_state = _train({**overrides, **STD})
        resim_history, resim_state = _train({**overrides, **RESIM}, "kinematics")
        torch.save({"history": history, "state": state, "mmd": shard.mean(value),
                    "gx": xl.grad, "gy": yl.grad, "cinn_history": cinn_history,
                    "cinn_state": cinn_state, "std_history": std_history,
                    "std_state": std_state, "resim_history": resim_history,
                    "resim_state": resim_state}, Path(out) / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


def _mmd_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64)
    return x, torch.randn(40, 3, generator=g, dtype=torch.float64) + 0.3


def _spawn(fn, args: tuple, world: int = 2) -> None:
    mp.start_processes(fn, args=(world, _free_port(), *args), nprocs=world, join=True,
                       start_method="spawn")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    _spawn(_worker, (str(out), TINY))
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_sharded_mmd_equals_global_mmd(two_ranks):
    """Each rank's share: the mean of values is the global MMD^2; gradients are N x global."""
    x, y = (t.requires_grad_() for t in _mmd_data())
    ref = mmd2(x, y, WIDTHS)
    ref.backward()
    for rank, got in enumerate(two_ranks):
        torch.testing.assert_close(got["mmd"], ref.detach(), rtol=1e-12, atol=1e-14)
        rows = slice(20 * rank, 20 * (rank + 1))
        # DDP averages over 2 ranks, so each rank's gradient is 2 x its rows of the global one
        torch.testing.assert_close(got["gx"] / 2, x.grad[rows], rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(got["gy"] / 2, y.grad[rows], rtol=1e-10, atol=1e-14)


def test_two_ranks_match_one_process(two_ranks):
    """Same loss curve and weights as one process on the same global batches (float32)."""
    one_history, one_state = _train(TINY)
    assert len(one_history) == TINY["train.steps"] // TINY["train.log_every"]
    for got in two_ranks:
        assert [h["step"] for h in got["history"]] == [h["step"] for h in one_history]
        for mine, ref in zip(got["history"], one_history):
            for name in LOSSES:  # measured: agree to ~3e-7 relative
                assert mine[name] == pytest.approx(ref[name], rel=1e-5, abs=1e-7), name
        for key, value in one_state.items():
            torch.testing.assert_close(got["state"][key], value, rtol=1e-5, atol=1e-5)
    # the ranks agree exactly with each other (same averaged gradients, same updates)
    for key in one_state:
        assert torch.equal(two_ranks[0]["state"][key], two_ranks[1]["state"][key])


def test_cinn_two_ranks_match_one_process(two_ranks):
    """``--set model=cinn`` under DDP: the loss curve and weights of one process (float32)."""
    one_history, one_state = _train({**TINY, **CINN})
    assert len(one_history) == TINY["train.steps"] // TINY["train.log_every"]
    for got in two_ranks:
        assert [h["step"] for h in got["cinn_history"]] == [h["step"] for h in one_history]
        for mine, ref in zip(got["cinn_history"], one_history):
            for name in CINN_LOSSES:
                assert mine[name] == pytest.approx(ref[name], rel=1e-5, abs=1e-6), name
        assert one_state.keys() == got["cinn_state"].keys()
        for key, value in one_state.items():
            torch.testing.assert_close(got["cinn_state"][key], value, rtol=1e-5, atol=1e-5)
    for key in one_state:
        assert torch.equal(two_ranks[0]["cinn_state"][key], two_ranks[1]["cinn_state"][key])


def test_standardised_inn_two_ranks_match_one_process(two_ranks):
    """``model.standardise`` (and the padding options) under DDP: the same statistics, loss
    curve and weights."""
    one_history, one_state = _train({**TINY, **STD})
    assert "x_scale" in one_state and bool(one_state["standardised"])
    for got in two_ranks:
        for mine, ref in zip(got["std_history"], one_history, strict=True):
            for name in (*LOSSES, "l_pad"):
                assert mine[name] == pytest.approx(ref[name], rel=1e-5, abs=1e-7), name
        assert one_state.keys() == got["std_state"].keys()
        for key in ("x_shift", "x_scale", "y_shift", "y_scale"):
            assert torch.equal(got["std_state"][key], one_state[key]), key
        for key, value in one_state.items():
            torch.testing.assert_close(got["std_state"][key], value, rtol=1e-5, atol=1e-5)
    for key in one_state:
        assert torch.equal(two_ranks[0]["std_state"][key], two_ranks[1]["std_state"][key])


def test_resim_inn_two_ranks_match_one_process(two_ranks):
    """``train.lambda_resim`` under DDP (each rank simulates its own rows of the samples), with
    the joint L_x (``train.mmd_x_y_scale``): the loss curve and weights of one process."""
    one_history, one_state = _train({**TINY, **RESIM}, "kinematics")
    for got in two_ranks:
        for mine, ref in zip(got["resim_history"], one_history, strict=True):
            for name in (*LOSSES, "l_pad", "l_resim"):
                assert mine[name] == pytest.approx(ref[name], rel=1e-5, abs=1e-7), name
        for key, value in one_state.items():
            torch.testing.assert_close(got["resim_state"][key], value, rtol=1e-5, atol=1e-5)
    for key in one_state:
        assert torch.equal(two_ranks[0]["resim_state"][key], two_ranks[1]["resim_state"][key])


def test_batch_must_divide_by_ranks():
    from invkit.errors import ConfigError

    shard = distributed.Shard(rank=0, world_size=3, local_rank=0, backend="gloo",
                              device=torch.device("cpu"))
    with pytest.raises(ConfigError, match="divisible"):
        distributed.wrap_objective(torch.nn.Linear(1, 1), shard, batch_size=128)


def test_single_process_is_untouched(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init_from_env(torch.device("cpu")) is None
    assert distributed.current() is None and distributed.is_main()


@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name(
    "torchrun").exists(), reason="torchrun not installed")
def test_torchrun_cli_run(tmp_path):
    """`torchrun -m invkit.cli.main run`: rank 0 alone writes the run directory."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    out = tmp_path / "run"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2",
         "-m", "invkit.cli.main", "run", "gmm", "--preset", "quick", "--device", "cpu",
         "--out", str(out), "--no-eval", "--quiet", *sets],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("every figure:") == 1  # one summary, from rank 0
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["complete"] and ckpt["state"]["step"] == TINY["train.steps"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def _rank0_pid(parent: int, timeout: float = 60.0) -> int:
    """The worker with RANK=0 among the descendants of torchrun's process ``parent``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                env = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"RANK=0" in env and b"LOCAL_RANK=0" in env and int(proc.name) != parent \
                    and _descends(int(proc.name), parent):
                return int(proc.name)
        time.sleep(0.2)
    raise AssertionError("rank 0 of torchrun was not found")


def _descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
        if pid == ancestor:
            return True
    return False


@pytest.mark.skipif(not Path("/proc/self/environ").exists() or (
    shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists()),
    reason="needs torchrun and /proc")
def test_sigterm_to_rank_0_alone_stops_every_rank_with_a_resumable_checkpoint(tmp_path):
    """A signal that reaches rank 0 only: the ranks agree to stop at the next step, rank 0
    saves, and the job exits at once (it used to hang in a collective until gloo's timeout)."""
    import signal
    import time

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    out = tmp_path / "run"
    sets = [a for k, v in {**TINY, "train.steps": 100_000, "train.checkpoint_every": 20}.items()
            for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INVKIT_DIST_TIMEOUT": "600"}
    proc = subprocess.Popen(
        [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "invkit", "run", "gmm",
         "--preset", "quick", "--device", "cpu", "--out", str(out), "--no-eval", "--quiet",
         *sets], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (out / "model.pt").exists():  # training is under way
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.2)
        os.kill(_rank0_pid(proc.pid), signal.SIGTERM)
        start = time.monotonic()
        output, _ = proc.communicate(timeout=60)
        assert time.monotonic() - start < 60
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Training stopped at step" in output, output
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert not ckpt["complete"] and 0 < ckpt["state"]["step"] < 100_000
    # resumable: the saved state loads into a trainer of the saved config
    from invkit.config import config_from_dict
    from invkit.registry import get_registry
    from invkit.training.trainer import Trainer

    cfg = config_from_dict(ckpt["config"])
    trainer = Trainer(get_registry().build_problem("gmm"), cfg, torch.device("cpu"),
                      progress=False)
    trainer.load_state_dict(ckpt["state"])
    assert trainer.step == ckpt["state"]["step"]
