"""Safe loading: every damaged, foreign or hostile checkpoint is one clear error (exit 2).

A tiny run is trained once; each case copies it and damages its model.pt in one way, then
``invkit sample`` / ``invkit evaluate`` / ``invkit run --resume`` must fail with a
CheckpointError paragraph, no traceback.
"""

from __future__ import annotations

import errno
import os
import pathlib
import random
import shutil
from pathlib import Path

import pytest
import torch

import invkit
from invkit.checkpoint import load_checkpoint, save_atomic, versions
from invkit.cli.main import main
from invkit.errors import CheckpointError, InvkitWarning

Y = "1,0,0,0,0,0,0,0"
TINY = ["--preset", "quick", "--quiet", "--no-eval", "--set", "data.simulations=500",
        "--set", "data.n_test=32", "--set", "train.batch_size=32",
        "--set", "model.subnet_width=8", "--set", "model.n_blocks=2",
        "--set", "train.steps=10", "--set", "train.log_every=5"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    assert main(["run", "gmm", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def bad(run, tmp_path):
    """A fresh copy of the run, to damage."""
    return Path(shutil.copytree(run, tmp_path / "bad"))


def _edit(path: Path, edit) -> None:
    ckpt = torch.load(path / "model.pt", weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path / "model.pt")


class _Evil:
    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(os.environ["INVKIT_TEST_MARKER"]),))


def _truncate(p: Path) -> None:
    data = (p / "model.pt").read_bytes()
    (p / "model.pt").write_bytes(data[: len(data) // 2])


def _sync_config(path: Path) -> None:
    """config.toml rewritten from the (edited) checkpoint, as a consistent run has it."""
    import tomli_w

    ckpt = torch.load(path / "model.pt", weights_only=True)
    (path / "config.toml").write_text(tomli_w.dumps(ckpt["config"]))


def _width(ck):
    ck["config"]["model"]["subnet_width"] = 32


def _shape(ck):
    key = next(k for k, v in ck["state"]["model"].items() if v.dim() == 2)
    ck["state"]["model"][key] = torch.zeros(3, 3)


def _missing_weight(ck):
    ck["state"]["model"].pop(next(iter(ck["state"]["model"])))


def _missing_plugin(ck):
    ck["config"]["problem"]["name"] = "spectra"
    ck["problem"].update(name="spectra", plugin="spectra", distribution="invkit-spectra",
                         version="1.2.0")


DAMAGE = {
    "truncated": (_truncate, "cannot be read as an invkit checkpoint"),
    "random bytes": (lambda p: (p / "model.pt").write_bytes(random.Random(0).randbytes(4096)),
                     "cannot be read as an invkit checkpoint"),
    # bytes that look like a pickle of an odd protocol: torch warns before it fails (once in
    # a while os.urandom did this, and the warning came before invkit's error)
    "odd pickle protocol": (lambda p: (p / "model.pt").write_bytes(
        b"\x80\x35" + random.Random(1).randbytes(4094)), "cannot be read as an invkit checkpoint"),
    "empty": (lambda p: (p / "model.pt").write_bytes(b""), "cannot be read"),
    "a directory": (lambda p: ((p / "model.pt").unlink(), (p / "model.pt").mkdir()),
                    "cannot be read"),
    "torch file, not a checkpoint": (lambda p: torch.save({"w": torch.ones(2)}, p / "model.pt"),
                                     "is a torch file but not an invkit checkpoint"),
    "a bare tensor": (lambda p: torch.save(torch.ones(2), p / "model.pt"),
                      "not an invkit checkpoint"),
    "code in the pickle": (lambda p: torch.save(_Evil(), p / "model.pt"),
                           "not a weights-only torch file"),
    "other FrEIA": (lambda p: _edit(p, lambda ck: ck["versions"].update(FrEIA="0.1")),
                    "was written with FrEIA 0.1"),
    "other format": (lambda p: _edit(p, lambda ck: ck.update(format_version=7)),
                     "has checkpoint format 7"),
    "no state": (lambda p: _edit(p, lambda ck: ck.pop("state")), "lacks its 'state' section"),
    # the checkpoint's own config edited (config.toml gone, so only the weights disagree)
    "weights vs config": (lambda p: (_edit(p, _width), (p / "config.toml").unlink()),
                          "do not fit the network"),
    "config.toml edited": (lambda p: (p / "config.toml").write_text(
        (p / "config.toml").read_text().replace("subnet_width = 8", "subnet_width = 64")),
                           "does not match the config saved in"),
    "weight of another shape": (lambda p: _edit(p, _shape), "do not fit the network"),
    "weight missing": (lambda p: _edit(p, _missing_weight), "do not fit the network"),
    "config not a table": (lambda p: _edit(p, lambda ck: ck.update(config="oops")),
                           "is damaged"),
    "config unknown key": (lambda p: _edit(p, lambda ck: ck["config"]["train"].update(x=1)),
                           "Unknown config key 'train.x'"),
    "config out of range": (lambda p: _edit(p, lambda ck: ck["config"]["model"].update(
        n_blocks=-2)), "'model.n_blocks' must be positive"),
    "problem plugin missing": (lambda p: (_edit(p, _missing_plugin), _sync_config(p)),
                               "from plugin 'spectra' (distribution invkit-spectra 1.2.0), "
                               "which is not installed here"),
}


@pytest.mark.parametrize("command", ["sample", "evaluate"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_checkpoint_is_one_clear_error(damage, command, bad, tmp_path, monkeypatch,
                                               capsys):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("INVKIT_TEST_MARKER", str(marker))
    make, message = DAMAGE[damage]
    make(bad)
    argv = ["sample", str(bad), "--y", Y, "-n", "5"] if command == "sample" else \
        ["evaluate", str(bad), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    flat = " ".join(err.split())
    assert flat.startswith("error:") and message in flat, flat
    assert "Traceback" not in err and "\n\n" not in err.strip()
    assert not marker.exists()  # weights_only: the pickle's code never ran


@pytest.mark.parametrize("damage", ["weights vs config", "weight of another shape",
                                    "problem plugin missing", "other FrEIA", "truncated"])
def test_damaged_checkpoint_cannot_be_resumed(damage, bad, capsys):
    DAMAGE[damage][0](bad)
    _edit(bad, lambda ck: ck.update(complete=False)) if damage != "truncated" else None
    assert main(["run", "--resume", str(bad), "--quiet", "--no-eval"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err


@pytest.mark.parametrize("part,value", [
    ("optimizer", {"state": {}, "param_groups": []}),
    ("generator", torch.zeros(3, dtype=torch.uint8)),
    ("step", "many"),
])
def test_damaged_training_state_cannot_be_resumed(part, value, bad, capsys):
    _edit(bad, lambda ck: ck["state"].update({part: value}))
    assert main(["run", "--resume", str(bad), "--quiet", "--no-eval"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "The training state in" in err and "does not fit" in err, err


def test_other_plugin_version_is_a_warning_not_an_error(bad, capsys):
    _edit(bad, lambda ck: ck["problem"].update(version="0.0.1"))
    assert main(["sample", str(bad), "--y", Y, "-n", "5"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("warning:") and "from invkit 0.0.1" in err
    with pytest.warns(InvkitWarning, match="0.0.1"):
        invkit.load(bad)


def test_checkpoint_records_what_it_needs(run):
    ckpt = torch.load(run / "model.pt", weights_only=True)  # plain torch, weights only
    assert ckpt["versions"] == versions()
    assert set(ckpt["versions"]) == {"invkit", "FrEIA", "torch"}
    assert ckpt["problem"]["name"] == "gmm"
    assert {"plugin", "distribution", "version"} <= set(ckpt["problem"])
    assert ckpt["config"]["train"]["steps"] == 10 and ckpt["config"]["problem"]["name"] == "gmm"
    assert ckpt["complete"] is True
    posterior = invkit.load(run / "model.pt")  # a run directory or its model.pt
    assert posterior.sample([1, 0, 0, 0, 0, 0, 0, 0], 3, seed=0).shape == (3, 2)


def test_load_checkpoint_errors_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint at"):
        load_checkpoint(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path)


def test_save_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_atomic({"a": torch.ones(3)}, path)
    real = torch.save

    def full(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError):
        save_atomic({"a": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left
    save_atomic({"a": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.zeros(3))
