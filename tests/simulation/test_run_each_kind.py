"""Every kind of simulator through the whole command line at a tiny budget: ``invkit run``
trains on it (simulating in worker processes for the slow kinds), evaluates, samples and
resumes from the cached simulations; a file of simulations too (``invkit run FILE``).

These back the sections of docs/guide/simulators.md, one per kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from simkinds import KINDS, make_problem

import invkit
from invkit import ProblemSpec
from invkit.cli.main import main
from invkit.registry import get_registry

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--preset", "quick", "--quiet", "--threads", "1", "--set", "data.simulations=300",
        "--set", "data.n_test=40", "--set", "train.batch_size=32", "--set", "model.n_blocks=2",
        "--set", "model.subnet_width=8", "--set", "train.steps=20", "--set", "train.log_every=10",
        "--set", "eval.n_targets=3", "--set", "eval.n_samples=50", "--set", "eval.plots=false",
        "--set", "eval.calibration_targets=20", "--set", "eval.calibration_samples=19"]
NO_REFERENCE = ["--set", "eval.reference=none"]  # these toy problems have none to compare with


@pytest.fixture
def registered(tmp_path):
    """The kinds as problems ``kind_<name>`` of a plugin in the process-wide registry."""
    folder = tmp_path / "scripts"
    folder.mkdir()

    class Kinds:
        @invkit.hookimpl
        def invkit_register_problems(self, register):
            for kind in KINDS:
                def build(kind=kind):
                    return make_problem(kind, folder).__class__(
                        **{**make_problem(kind, folder).__dict__, "name": f"kind_{kind}"})
                register(ProblemSpec(f"kind_{kind}", build))

    reg = get_registry()
    reg.add_plugin(Kinds(), name="kinds", distribution="kinds-test")
    try:
        yield
    finally:
        reg.pm.unregister(name="kinds")
        for kind in KINDS:
            reg.entries["problem"].pop(f"kind_{kind}", None)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_runs_end_to_end(registered, tmp_path, kind):
    out = tmp_path / "run"
    workers = "0" if kind in ("torch", "torch_generator", "torch_global") else "2"
    assert main(["run", f"kind_{kind}", *TINY, *NO_REFERENCE,
                 "--set", f"data.workers={workers}", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    counts = metrics["simulations"]
    # the budget of 300 minus the default validation split of 10%, and the 40 test pairs
    assert (counts["train"], counts["validation"], counts["simulated"]) == (270, 30, 340)
    assert "calibration_ok" in metrics and "err_resim" in metrics
    post = invkit.load(out)
    assert post.sample(torch.zeros(post.dim_y), 7).shape == (7, post.dim_x)
    # a second model on the same problem and seed reads the simulations instead
    again = tmp_path / "again"
    assert main(["run", f"kind_{kind}", *TINY, *NO_REFERENCE,
                 "--set", f"data.cache={out / 'simulations'}",
                 "--set", "model=cinn", "--out", str(again)]) == 0
    counts = json.loads((again / "metrics.json").read_text())["simulations"]
    assert counts["simulated"] == 0 and counts["from_cache"] == 340


def test_a_file_of_simulations_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(400, 2))
    obs = np.c_[theta.sum(1), theta[:, 0] - theta[:, 1]] + 0.1 * rng.normal(size=(400, 2))
    path = tmp_path / "sims.csv"
    np.savetxt(path, np.c_[theta, obs], delimiter=",", header="a,b,s,d", comments="")
    out = tmp_path / "run"
    assert main(["run", str(path), "--set", "x=a,b", "--set", "y=s,d", *TINY,
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["simulations"]["test"] == 40 and metrics["simulations"]["train"] == 270
    assert "err_resim" not in metrics and "no simulator" in metrics["err_post_skipped"]
    post = invkit.load(out)
    assert post.problem.x_names == ["a", "b"] and post.problem.y_names == ["s", "d"]
    assert Path(post.config.problem_options["path"]).is_absolute()
    assert main(["evaluate", str(out), "--quiet", "--set", "eval.plots=false"]) == 0
