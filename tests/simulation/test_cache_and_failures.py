"""Nothing simulated is lost: Ctrl-C, a simulator that raises, NaN rows, damaged or foreign
cache folders."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from simkinds import make_problem, prior, write_script

from invkit.errors import InvkitError, InvkitWarning
from invkit.problem import ForwardProcess, Problem
from invkit.simulation import BlockCache, external_program, simulate

BS = 8


def _blocks(root: Path) -> list[Path]:
    return sorted(root.glob("*/block-*.npz"))


def _children() -> set[int]:
    """This process's child processes (Linux)."""
    out: set[int] = set()
    for f in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        out |= {int(p) for p in f.read_text().split()}
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _interruptible(per_sample_s: float = 0.0, interrupt_on_call: int | None = None,
                   stall: Path | None = None):
    """A per-sample numpy problem. Its n-th call raises KeyboardInterrupt (in-process only);
    while the file ``stall`` exists each call takes 10 s (so a test can interrupt a run that
    is surely not finished, whatever the machine's load)."""
    calls = {"n": 0}

    def fn(row):
        calls["n"] += 1
        if interrupt_on_call is not None and calls["n"] == interrupt_on_call:
            raise KeyboardInterrupt
        if per_sample_s:
            time.sleep(10 if stall is not None and stall.exists() else per_sample_s)
        return np.array([row.sum(), row[0] * row[1]])

    process = ForwardProcess("slowish", 2, 2, fn, backend="numpy", vectorized=False)
    return Problem("interrupted", prior(), process)


def test_ctrl_c_in_process_keeps_the_finished_blocks_and_a_rerun_completes(tmp_path):
    reference = simulate(_interruptible(), 40, seed=0, block_size=BS)
    with pytest.raises(KeyboardInterrupt):
        simulate(_interruptible(interrupt_on_call=3 * BS + 2), 40, seed=0, block_size=BS,
                 cache=tmp_path)
    assert len(_blocks(tmp_path)) == 3
    resumed = simulate(_interruptible(), 40, seed=0, block_size=BS, cache=tmp_path)
    assert (resumed.from_cache, resumed.simulated) == (24, 16)
    assert torch.equal(resumed.x, reference.x) and torch.equal(resumed.y, reference.y)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_with_workers_keeps_blocks_and_leaves_no_processes(tmp_path):
    reference = simulate(_interruptible(), 400, seed=0, block_size=BS)
    stall = tmp_path / "stall"
    problem = _interruptible(per_sample_s=0.002, stall=stall)
    cache = tmp_path / "cache"

    def interrupt_when_two_blocks_are_cached():
        deadline = time.monotonic() + 30
        while len(_blocks(cache)) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        stall.touch()
        # delivered to this thread, not the main one: a Ctrl-C may reach any thread, and the
        # main thread must still notice it while it waits for the (now stalled) workers
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    before = _children()
    before_mp = {p.pid for p in multiprocessing.active_children()}
    thread = threading.Thread(target=interrupt_when_two_blocks_are_cached)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        thread.start()
        simulate(problem, 400, seed=0, block_size=BS, workers=2, cache=cache)
    thread.join()
    assert time.monotonic() - started < 30  # the stalled workers were not waited for
    kept = len(_blocks(cache))
    assert 2 <= kept < 50
    deadline = time.monotonic() + 10  # a killed worker may take a moment to be reaped
    while time.monotonic() < deadline and (
            {p.pid for p in multiprocessing.active_children()} - before_mp
            or not _children() <= before):
        time.sleep(0.05)
    assert not {p.pid for p in multiprocessing.active_children()} - before_mp
    assert _children() <= before
    stall.unlink()
    resumed = simulate(problem, 400, seed=0, block_size=BS, workers=2, cache=cache)
    assert resumed.from_cache == kept * BS and resumed.simulated == 400 - kept * BS
    assert torch.equal(resumed.x, reference.x) and torch.equal(resumed.y, reference.y)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_also_ends_the_external_programs_the_workers_started(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    script = write_script(tmp_path, textwrap.dedent(f"""\
        import os, sys, time
        open(os.path.join({str(pids)!r}, str(os.getpid())), "w").close()
        line = sys.stdin.readline()
        time.sleep(30)
        print(line.strip())
        """), "sleeper.py")
    process = external_program([sys.executable, str(script)], 1, 1, name="sleeper",
                               batched=False)
    problem = Problem("sleepy", prior(1), process)

    def interrupt_when_both_run():
        deadline = time.monotonic() + 20
        while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt_when_both_run)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        thread.start()
        simulate(problem, 4, seed=0, block_size=2, workers=2, cache=tmp_path / "c")
    thread.join()
    assert time.monotonic() - started < 20
    programs = [int(p.name) for p in pids.iterdir()]
    assert len(programs) == 2
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in programs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in programs)


def _raising_problem(bad_x0: float | None):
    """Raises on the batch whose first x equals ``bad_x0``: the same block whichever process
    runs it."""
    def fn(x, rng):
        if bad_x0 is not None and x[0, 0] == bad_x0:
            raise RuntimeError("solver diverged")
        return x[:, :1] + rng.normal(size=(len(x), 1))

    return Problem("fragile", prior(), ForwardProcess("fragile_sim", 2, 1, fn, backend="numpy",
                                                       rng="generator"))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_simulator_that_raises_names_the_block_and_keeps_the_blocks_done(workers, tmp_path):
    reference = simulate(_raising_problem(None), 48, seed=9, block_size=BS)
    bad_x0 = float(np.float64(reference.x[3 * BS, 0]))
    with pytest.raises(InvkitError) as info:
        simulate(_raising_problem(bad_x0), 48, seed=9, block_size=BS, workers=workers,
                 cache=tmp_path)
    message = str(info.value)
    assert "'fragile_sim'" in message and "block 3 " in message and "seed 9" in message
    assert "RuntimeError: solver diverged" in message and "block seed" in message
    names = {p.name for p in _blocks(tmp_path)}
    assert "block-00000003.npz" not in names
    assert {"block-00000000.npz", "block-00000001.npz", "block-00000002.npz"} <= names
    if workers == 0:
        assert len(names) == 3
    fixed = simulate(_raising_problem(None), 48, seed=9, block_size=BS, cache=tmp_path)
    assert fixed.from_cache == len(names) * BS
    assert torch.equal(fixed.y, reference.y)


def _nan_problem():
    def fn(x):
        y = x.sum(1, keepdims=True)
        y[x[:, 0] > 1.0] = np.nan
        return y

    return Problem("nans", prior(), ForwardProcess("nan_sim", 2, 1, fn, backend="numpy"))


def test_nan_rows_are_dropped_counted_and_named_in_a_warning(tmp_path):
    gen = torch.Generator()
    x = torch.cat([prior().sample(BS, gen.manual_seed(__import__("invkit.simulation",
                   fromlist=["block_seed"]).block_seed(1, k))) for k in range(8)])
    expected = int((x[:, 0] > 1.0).sum())
    assert expected > 0
    with pytest.warns(InvkitWarning) as record:
        result = simulate(_nan_problem(), 64, seed=1, block_size=BS, cache=tmp_path)
    message = str(record[0].message)
    assert f"{expected} of 64 simulations" in message and "'nan_sim'" in message
    assert "%" in message and "dropped" in message
    assert result.dropped == expected and result.n == 64 - expected
    assert torch.isfinite(result.y).all()
    with pytest.warns(InvkitWarning):
        again = simulate(_nan_problem(), 64, seed=1, block_size=BS, cache=tmp_path)
    assert again.dropped == expected and again.from_cache == 64


def test_nan_policy_error_refuses_and_says_how_to_drop(tmp_path):
    with pytest.raises(InvkitError) as info:
        simulate(_nan_problem(), 64, seed=1, block_size=BS, nan_policy="error", cache=tmp_path)
    message = str(info.value)
    assert "'nan_sim'" in message and "nan_policy='drop'" in message
    assert "data.nan_policy" in message and "block" in message
    assert _blocks(tmp_path)  # the block with NaN was cached before the refusal


def test_all_rows_non_finite_is_an_error_even_when_dropping():
    process = ForwardProcess("all_nan", 2, 1, lambda x: np.full((len(x), 1), np.inf),
                             backend="numpy")
    with pytest.raises(InvkitError, match="all of them"):
        simulate(Problem("p", prior(), process), 16, seed=0, block_size=BS)


def test_a_damaged_block_is_simulated_again(tmp_path):
    problem = make_problem("numpy_generator")
    reference = simulate(problem, 32, seed=0, block_size=BS, cache=tmp_path)
    block = _blocks(tmp_path)[1]
    block.write_bytes(block.read_bytes()[:50])
    with pytest.warns(InvkitWarning, match="could not be read"):
        repaired = simulate(problem, 32, seed=0, block_size=BS, cache=tmp_path)
    assert (repaired.simulated, repaired.from_cache) == (BS, 24)
    assert torch.equal(repaired.y, reference.y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert simulate(problem, 32, seed=0, block_size=BS, cache=tmp_path).from_cache == 32


def test_other_problems_options_and_seeds_get_their_own_folders(tmp_path):
    problem = make_problem("torch")
    simulate(problem, 16, seed=0, block_size=BS, cache=tmp_path)
    simulate(problem, 16, seed=1, block_size=BS, cache=tmp_path)
    simulate(problem, 16, seed=0, block_size=4, cache=tmp_path)
    from dataclasses import replace

    simulate(replace(problem, options={"scale": 2}), 16, seed=0, block_size=BS, cache=tmp_path)
    simulate(replace(problem, noise_std=0.1), 16, seed=0, block_size=BS, cache=tmp_path)
    folders = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(folders) == 5
    keys = [json.loads((f / "manifest.json").read_text())["key"] for f in folders]
    assert {k["seed"] for k in keys} == {0, 1} and {k["block_size"] for k in keys} == {4, 8}
    assert all(k["problem"] == "toy_torch" and k["process"] == "linear_sin" for k in keys)


def test_a_folder_whose_manifest_names_another_setting_is_refused(tmp_path):
    problem = make_problem("torch")
    first = simulate(problem, 16, seed=0, block_size=BS, cache=tmp_path)
    manifest = Path(first.cache_dir) / "manifest.json"
    data = json.loads(manifest.read_text())
    data["key"]["seed"] = 7
    manifest.write_text(json.dumps(data))
    with pytest.raises(InvkitError, match="another setting.*seed"):
        simulate(problem, 16, seed=0, block_size=BS, cache=tmp_path)


def test_blocks_are_written_atomically_and_stale_temporaries_are_removed(tmp_path):
    key = {"problem": "p", "seed": 0, "block_size": 4}
    cache = BlockCache.open(tmp_path, key)
    cache.save(0, np.zeros((4, 2), np.float32), np.ones((4, 1), np.float32))
    assert [p.name for p in cache.folder.iterdir() if p.name.startswith(".")] == []
    stale = cache.folder / ".block-00000001.npz.999999999.tmp"
    stale.write_bytes(b"half a block")
    again = BlockCache.open(tmp_path, key)
    assert not stale.exists() and again.load(0, 4, 2, 1) is not None
    assert again.load(1, 4, 2, 1) is None and again.count() == 1


def test_workers_rebuild_a_registered_problem_where_fork_is_unavailable(monkeypatch):
    monkeypatch.delenv("INVKIT_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("INVKIT_PLUGINS", "gmm")  # what the spawned worker loads, too
    from invkit.registry import get_problem

    problem = get_problem("gmm")
    reference = simulate(problem, 64, seed=0, block_size=16)
    spawned = simulate(problem, 64, seed=0, block_size=16, workers=1, start_method="spawn")
    assert torch.equal(reference.x, spawned.x) and torch.equal(reference.y, spawned.y)
    assert reference.plugin is not None and "gmm" in reference.plugin


def test_without_fork_a_problem_built_in_code_is_refused_with_a_way_out():
    with pytest.raises(InvkitError, match="workers=0"):
        simulate(make_problem("torch"), 64, seed=0, block_size=16, workers=1,
                 start_method="spawn")
