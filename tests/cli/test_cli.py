"""The command line on the quick preset: run, sample, evaluate, list, and bad input."""

import json

import numpy as np
import pytest

from invkit.cli.main import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "gmm-run"
    code = main(["run", "gmm", "--preset", "quick", "--out", str(out), "--quiet",
                 "--set", "train.steps=60", "--set", "train.n_samples=5000"])
    assert code == 0
    return out


def test_run_writes_the_run_directory(run_dir):
    for name in ("config.toml", "model.pt", "metrics.json"):
        assert (run_dir / name).exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("forward_accuracy", "mode_tv_mean", "err_resim", "train_time_s",
                "sampling_rate_per_s"):
        assert key in metrics
    assert (run_dir / "plots" / "gmm_forward_inverse.png").exists()
    assert (run_dir / "plots" / "losses.png").exists()


def test_sample_to_file(run_dir, tmp_path):
    out = tmp_path / "s.npy"
    assert main(["sample", str(run_dir), "--y", "1,0,0,0,0,0,0,0", "--y", "0,1,0,0,0,0,0,0",
                 "-n", "50", "--out", str(out)]) == 0
    assert np.load(out).shape == (2, 50, 2)


def test_sample_wrong_dim_is_a_clear_error(run_dir, capsys):
    assert main(["sample", str(run_dir), "--y", "1,0", "-n", "5"]) == 2
    err = capsys.readouterr().err
    assert "dim_y=8" in err and "Traceback" not in err


def test_evaluate_recomputes(run_dir):
    assert main(["evaluate", str(run_dir), "--quiet", "--set", "eval.n_samples=100"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_samples_per_target"] == 100


def test_existing_out_is_not_overwritten(run_dir, capsys):
    assert main(["run", "gmm", "--preset", "quick", "--out", str(run_dir), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "gmm" in out and "invkit" in out


@pytest.mark.parametrize("argv,message", [
    (["run", "gmn", "--preset", "quick"], "Did you mean 'gmm'"),
    (["run", "gmm", "--set", "train.lrr=1"], "Did you mean"),
    (["run", "gmm", "--set", "steps=lots"], "must be an integer"),
    (["run", "gmm", "--set", "labels=few"], "labels must be one of"),
    (["run", "gmm", "--set", "nokey"], "KEY=VALUE"),
    (["sample", "/nonexistent/run", "--y", "1"], "No checkpoint"),
])
def test_bad_input_gets_one_paragraph(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("model.pt"))
