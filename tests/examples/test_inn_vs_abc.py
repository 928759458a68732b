"""examples/inn_vs_abc.py end to end on a tiny run and a small ABC budget."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from invkit.cli.main import main as invkit_main

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "inn_vs_abc.py"

pytestmark = pytest.mark.usefixtures("one_thread")


def _script():
    spec = importlib.util.spec_from_file_location("inn_vs_abc", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kin") / "run"
    assert invkit_main(["run", "kinematics", "--preset", "quick", "--quiet", "--no-eval",
                        "--set", "train.steps=20", "--set", "data.simulations=2000",
                        "--out", str(out)]) == 0
    return out


@pytest.mark.filterwarnings("ignore:rejection ABC")  # small budget: some targets short
def test_comparison_writes_figure_table_and_json(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    assert _script().main([str(run), "--budget", "2e5", "--tolerance", "0.05",
                           "--n-abc", "20", "--out", str(out)]) == 0
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["inn_samples_total"] == 9 * 1000
    assert summary["abc_simulations"] == 200_000
    assert len(summary["targets"]) == 9
    for row in summary["targets"]:
        assert 0 <= row["abc_accepted"] <= 20
        if row["abc_accepted"]:  # accepted configurations lie within the tolerance
            assert row["abc_err_resim"] <= 0.05
    assert (out / "comparison.png").stat().st_size > 10_000
    table = (out / "comparison.md").read_text()
    assert "rejection ABC, tol 0.05" in table and table.count("\n| (") == 9


def test_rejects_a_run_of_another_problem(tmp_path: Path) -> None:
    out = tmp_path / "gmm"
    assert invkit_main(["run", "gmm", "--preset", "quick", "--quiet", "--no-eval",
                        "--set", "train.steps=5", "--out", str(out)]) == 0
    with pytest.raises(SystemExit, match="kinematics"):
        _script().main([str(out), "--budget", "1e4"])
