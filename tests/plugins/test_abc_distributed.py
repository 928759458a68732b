"""ABC on 2 gloo processes returns exactly what one process returns (same draws, same order).

Each rank simulates every other seed block of a round; rejection ABC replays one process's
early stop from the summed per-chunk counts, quantile ABC merges the ranks' top-k. The budgets
are small but span several rounds, a truncated last block, early stops that retire targets in
different chunks, the sorted-band filter (40 targets) and a rank that gets no block at all.
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

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")

_KW = dict(chunk_size=2**13, seed_block=2**12, progress=False)


def _problem():
    from invkit.registry import Registry
    from invkit_kinematics import plugin as kin_plugin

    reg = Registry()
    reg.add_plugin(kin_plugin, name="kinematics")
    return reg.build_problem("kinematics")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _scenarios(shard: distributed.Shard | None) -> dict[str, dict]:
    """Every ABC call of the comparison; ``shard=None`` is the one-process reference."""
    from invkit_abc import quantile_abc, rejection_abc
    from invkit_kinematics.plots import COMPARISON_TARGETS

    problem = _problem()
    few = COMPARISON_TARGETS[[2, 5]]
    many = problem.simulate(problem.sample_prior(40, _gen(99)))  # >= 16: the band filter
    runs = {
        "rejection_stops": rejection_abc(problem, few, 0.05, 600_000, generator=_gen(1),
                                         max_accept=20, shard=shard, **_KW),
        "rejection_many_stops": rejection_abc(problem, many, 0.05, 400_000, generator=_gen(2),
                                              max_accept=5, min_accept=5, shard=shard, **_KW),
        "rejection_full": rejection_abc(problem, many, 0.05, 200_003, generator=_gen(3),
                                        shard=shard, **_KW),
        "quantile": quantile_abc(problem, many, 50, 200_003, generator=_gen(4), shard=shard,
                                 **_KW),
        # one seed block only: the second rank simulates nothing
        "rejection_tiny": rejection_abc(problem, few, 0.3, 3000, generator=_gen(5),
                                        shard=shard, **_KW),
        "quantile_tiny": quantile_abc(problem, few, 20, 3000, generator=_gen(6), shard=shard,
                                      **_KW),
    }
    return {name: {"samples": r.samples, "n": r.n_simulations, "info": r.info}
            for name, r in runs.items()}


def _plugin_runs() -> dict[str, dict]:
    """The registered baseline: it finds the joined group through invkit.distributed."""
    from invkit.registry import Registry
    from invkit_abc import plugin as abc_plugin
    from invkit_kinematics.plots import COMPARISON_TARGETS

    reg = Registry()
    reg.add_plugin(abc_plugin, name="abc")
    baseline = reg.baseline("abc")
    opts = {**baseline.options, "budget": 300_000, "chunk_size": 2**16,
            "tolerance": 0.05, "min_accept": 0}
    out = {}
    for method in ("rejection", "quantile"):
        r = baseline.run(_problem(), COMPARISON_TARGETS[[1, 5]], 30, {**opts, "method": method},
                         _gen(7))
        out[method] = {"samples": r.samples, "n": r.n_simulations, "info": r.info}
    return out


def _reference() -> torch.Tensor:
    from invkit.evaluation.reference import baseline_reference
    from invkit.registry import get_registry
    from invkit_kinematics.plots import COMPARISON_TARGETS

    baseline = get_registry().baseline("abc")
    return baseline_reference(_problem(), baseline, COMPARISON_TARGETS[:3], _eval_config(),
                              progress=False)


def _eval_config():
    from invkit.config import RunConfig, set_key

    # "baseline", not "auto": the noise-free arm's auto reference is its exact sampler, and
    # these tests are about sharing a baseline reference's pool between ranks
    cfg = RunConfig()
    for key, value in (("seed", 1), ("eval.n_samples", 20), ("eval.reference_budget", 50_000),
                       ("eval.reference", "baseline")):
        set_key(cfg, key, value)
    return cfg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    shard = distributed.init_from_env(torch.device("cpu"))
    assert shard is not None and shard.world_size == world
    try:
        result = {"direct": _scenarios(shard), "plugin": _plugin_runs()}
        # as after `torchrun ... invkit run` training: every rank computes the reference
        from invkit.evaluation.reference import prepare_reference
        from invkit_kinematics.plots import COMPARISON_TARGETS

        os.environ["INVKIT_CACHE"] = str(Path(out) / "together")
        prepare_reference(_problem(), COMPARISON_TARGETS[:3], _eval_config(), progress=False)
        if rank == 0:  # then rank 0's evaluation reads it (no collective: nothing to wait for)
            result["prepared"] = _reference()
        with distributed.one_rank():
            assert distributed.current() is None and distributed.is_main() == (rank == 0)
        assert distributed.current() is shard
        if rank == 0:  # as after `torchrun ... invkit run`: rank 0 evaluates by itself, while
            # rank 1 leaves (a collective here would fail: its peer is gone)
            os.environ["INVKIT_CACHE"] = out
            result["reference"] = _reference()
        result["out"] = out
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("abc_ddp")
    mp.start_processes(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True,
                       start_method="spawn")
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def _assert_identical(got: dict, ref: dict, name: str) -> None:
    assert got["n"] == ref["n"], name
    info = dict(got["info"])
    assert info.pop("processes") == 2, name
    assert info == ref["info"], name
    assert len(got["samples"]) == len(ref["samples"]), name
    for i, (a, b) in enumerate(zip(got["samples"], ref["samples"], strict=True)):
        assert torch.equal(a, b), f"{name}: target {i}"


def test_two_ranks_equal_one_process(two_ranks):
    """Rejection and quantile ABC: the same draws in the same order, counts and n_simulations."""
    ref = _scenarios(None)
    assert ref["rejection_stops"]["info"]["stopped_early"]
    assert ref["rejection_many_stops"]["info"]["stopped_early"]
    assert len(set(ref["rejection_many_stops"]["info"]["acceptances"])) > 1  # retired apart
    assert min(ref["rejection_full"]["info"]["counts"]) > 0
    for rank, got in enumerate(two_ranks):
        for name, want in ref.items():
            _assert_identical(got["direct"][name], want, f"rank {rank} {name}")


def test_registered_baseline_shards_in_a_joined_group(two_ranks):
    ref = _plugin_runs()
    for got in two_ranks:
        for method, want in ref.items():
            _assert_identical(got["plugin"][method], want, method)


def test_reference_on_rank_0_alone(two_ranks, tmp_path, monkeypatch):
    """Rank 0's evaluation computes the ABC reference without the others (one process's)."""
    monkeypatch.setenv("INVKIT_CACHE", str(tmp_path))
    assert "reference" not in two_ranks[1]
    assert torch.equal(two_ranks[0]["reference"], _reference())


def test_reference_before_rank_0_evaluates_is_shared_work(two_ranks, tmp_path, monkeypatch):
    """`invkit run` under torchrun: both ranks simulate the reference pool; rank 0 caches it
    and its evaluation reads the one-process result from the cache."""
    files = list((Path(two_ranks[0]["out"]) / "together").rglob("*.pt"))
    assert len(files) == 1
    cached = torch.load(files[0], weights_only=True)
    assert cached["processes"] == 2
    monkeypatch.setenv("INVKIT_CACHE", str(tmp_path))
    alone = _reference()
    assert torch.equal(cached["samples"], alone)
    assert torch.equal(two_ranks[0]["prepared"], alone)
    assert torch.load(next(tmp_path.rglob("*.pt")), weights_only=True)["processes"] == 1


def test_prepare_reference_is_a_no_op_in_one_process(tmp_path, monkeypatch):
    from invkit.evaluation.reference import prepare_reference
    from invkit_kinematics.plots import COMPARISON_TARGETS

    monkeypatch.setenv("INVKIT_CACHE", str(tmp_path))
    prepare_reference(_problem(), COMPARISON_TARGETS[:3], _eval_config(), progress=False)
    assert not list(tmp_path.rglob("*.pt"))


def test_only_rank_0_writes_the_reference_cache(tmp_path, monkeypatch):
    """Where every rank evaluates (torchrun ... invkit evaluate), rank 0 alone writes."""
    monkeypatch.setenv("INVKIT_CACHE", str(tmp_path))
    monkeypatch.setenv("RANK", "1")
    other = _reference()
    assert not list(tmp_path.rglob("*.pt"))
    monkeypatch.setenv("RANK", "0")
    assert torch.equal(_reference(), other)
    assert len(list(tmp_path.rglob("*.pt"))) == 1
    monkeypatch.setenv("RANK", "1")  # now every rank reads rank 0's file
    assert torch.equal(_reference(), other)


def test_plan_splits_the_stream_into_disjoint_balanced_shares():
    from invkit_abc.stream import Plan, sim_index

    budget, chunk, block = 1_000_003, 3 * 4096, 4096
    one = Plan(budget, chunk, block, None)
    stream = [k for j in range(one.n_rounds) for k in one.blocks(j)]
    assert stream == list(range(one.n_blocks))
    for world in (2, 3, 5):
        shards = [Plan(budget, chunk, block, distributed.Shard(r, world, r, "gloo",
                                                                torch.device("cpu")))
                  for r in range(world)]
        owned = [[k for j in range(p.n_rounds) for k in p.blocks(j)] for p in shards]
        assert sorted(k for o in owned for k in o) == stream
        assert max(map(len, owned)) - min(map(len, owned)) <= 1
        assert sum(p.own_sims() for p in shards) == budget
        # a round is N one-process chunks
        assert all(b // one.per_chunk // world == j for p in shards
                   for j in range(p.n_rounds) for b in p.blocks(j))
    # columns of a piece made of several blocks (accelerators) map to stream positions
    cols = torch.tensor([0, 4095, 4096, 8191, 8200])
    assert sim_index(cols, [3, 7, 9], block).tolist() == [
        3 * block, 3 * block + 4095, 7 * block, 7 * block + 4095, 9 * block + 8]


@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name(
    "torchrun").exists(), reason="torchrun not installed")
def test_torchrun_cli_baseline(tmp_path):
    """`torchrun -m invkit.cli.main baseline abc`: one table and one file, one process's draws."""
    from invkit.cli.main import main

    args = ["baseline", "abc", "kinematics", "--y", "1.5,0.5", "--y", "1.9,0.4", "-n", "25",
            "--set", "tolerance=0.02", "--set", "budget=1000000", "--set", "chunk_size=65536",
            "--seed", "3", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one.pt")]) == 0
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    out = tmp_path / "ranks"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "invkit.cli.main", *args,
         "--out", str(out / "two.pt")],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count('"n_simulations"') == 1  # rank 0 alone prints
    assert [p.name for p in out.iterdir()] == ["two.pt"]
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    two = torch.load(out / "two.pt", weights_only=True)
    assert two["n_simulations"] == one["n_simulations"] < 1_000_000  # stopped after rounds
    for a, b in zip(two["samples"], one["samples"], strict=True):
        assert a.shape[0] == 25 and torch.equal(a, b)
