"""Files written by an earlier invkit keep working: checkpoints load and sample identically, and
a seeded quick run gives the same metrics (tests/data/legacy/README.md says how they were made).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import invkit

LEGACY = Path(__file__).parent / "data" / "legacy"
SAMPLES = json.loads((LEGACY / "samples.json").read_text())
# what changes from run to run (timings, rates, file lists) or says where it ran
_VOLATILE = ("time_s", "sampling_rate_per_s", "plots", "calibration_plots", "device", "threads")


@pytest.mark.parametrize("run", sorted(SAMPLES))
def test_old_checkpoint_loads_and_samples_identically(run, tmp_path):
    run_dir = tmp_path / run
    shutil.copytree(LEGACY / run, run_dir)
    post = invkit.load(run_dir)
    want = SAMPLES[run]
    y = torch.tensor(want["y"])
    x, log_q = post.sample_and_log_prob(y, 5, seed=0)
    torch.testing.assert_close(x, torch.tensor(want["x"]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(log_q, torch.tensor(want["log_q"]), rtol=1e-4, atol=1e-4)
    if "log_prob" in want:
        torch.testing.assert_close(post.log_prob(x, y), torch.tensor(want["log_prob"]),
                                   rtol=1e-4, atol=1e-4)


def _close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a
                                            if not k.endswith(_VOLATILE))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(u, v) for u, v in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-4, abs_tol=1e-6)
    return a == b


def test_seeded_quick_gmm_run_gives_the_metrics_it_gave_before(tmp_path):
    """One torch thread, as the saved file was made: training is chaotic, so the figures of
    another thread count differ (equally valid, not equal)."""
    out = tmp_path / "gmm"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "invkit.cli.main", "run", "gmm", "--preset", "quick",
           "--seed", "0", "--out", str(out), "--quiet"]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=600)
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((LEGACY / "gmm-quick-seed0-metrics.json").read_text())
    keys = [k for k in want if not k.endswith(_VOLATILE)]
    differ = [k for k in keys if not _close(want[k], got.get(k))]
    assert not differ, {k: (want[k], got.get(k)) for k in differ}
