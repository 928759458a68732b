"""Try every kind of bad input on the ``invkit`` CLI and print the message each one gets.

    python docs/_scripts/error_table.py            # print docs/reference/errors.md
    python docs/_scripts/error_table.py --write    # rewrite docs/reference/errors.md

Everything runs in a temporary folder on a tiny run (seconds on a CPU). Faults that cannot be
produced on demand (a full disk, a read-only mount, a signal at a chosen step) are simulated
by patching the one call that would fail, and the table says so.
``tests/test_reliability.py::test_error_table_script_runs`` checks that every row still exits
with the code listed here.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import pathlib
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

PAGE = Path(__file__).resolve().parents[1] / "reference" / "errors.md"
TINY = ["--preset", "quick", "--quiet", "--no-eval", "--threads", "1",
        "--set", "data.simulations=500",
        "--set", "data.n_test=32", "--set", "train.batch_size=32",
        "--set", "model.subnet_width=8", "--set", "model.n_blocks=2",
        "--set", "train.steps=20", "--set", "train.log_every=5"]
Y = "1,0,0,0,0,0,0,0"  # a valid observation of the gmm problem (one-hot colour, dim_y = 8)


@dataclass
class Case:
    section: str
    what: str
    argv: list[str]
    expected: int = 2
    prepare: Callable[[], None] | None = None  # makes files the command needs
    patch: Callable[[], contextlib.AbstractContextManager] | None = None  # simulated faults
    shown: str = ""  # the command as shown, when argv carries the tiny settings
    simulated: str = ""


@dataclass
class Row:
    case: Case
    code: int
    message: str
    extra: dict = field(default_factory=dict)


# -- the faults that are simulated ------------------------------------------------------------
def _oserror(code: int, filename: str | None = None) -> OSError:
    return OSError(code, os.strerror(code), filename)


def read_only_mount():
    def mkdir(self, *args, **kwargs):
        raise _oserror(errno.EROFS, str(self))

    return mock.patch.object(pathlib.Path, "mkdir", mkdir)


def disk_full_after(saves_ok: int):
    import torch

    real = torch.save
    count = {"n": 0}

    def save(obj, f, *args, **kwargs):
        count["n"] += 1
        if count["n"] > saves_ok:
            raise _oserror(errno.ENOSPC)
        return real(obj, f, *args, **kwargs)

    return mock.patch.object(torch, "save", save)


def signal_during_step(step: int, sig: int = signal.SIGTERM):
    from invkit.training.inn_objective import INNObjective

    real = INNObjective.forward
    count = {"n": 0}

    def forward(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == step:
            os.kill(os.getpid(), sig)
        return real(self, *args, **kwargs)

    return mock.patch.object(INNObjective, "forward", forward)


def signal_while_simulating(sig: int = signal.SIGTERM):
    import invkit.training.trainer as trainer

    real = trainer.generate

    def generate(*args, **kwargs):
        os.kill(os.getpid(), sig)
        return real(*args, **kwargs)

    return mock.patch.object(trainer, "generate", generate)


def signal_after_the_last_step(sig: int = signal.SIGTERM):
    import invkit.training.trainer as trainer

    real = trainer.Trainer.fit

    def fit(self):
        result = real(self)
        os.kill(os.getpid(), sig)
        return result

    return mock.patch.object(trainer.Trainer, "fit", fit)


def held_by_another_process(run_dir: str):
    """The run directory locked, as by another invkit process (the lock is per open file)."""
    from invkit.lock import RunLock

    @contextlib.contextmanager
    def held() -> Iterator[None]:
        with RunLock(Path(run_dir)):
            yield

    return held()


def read_only_run_dir():
    import tempfile as tf

    import invkit.rundir as rundir

    def mkstemp(*args, **kwargs):
        raise _oserror(errno.EROFS)

    return mock.patch.object(rundir.tempfile, "mkstemp", mkstemp) if hasattr(rundir, "tempfile") \
        else mock.patch.object(tf, "mkstemp", mkstemp)


def name_clash():
    """A third-party plugin that registers a problem named like invkit's own ``gmm``."""
    import invkit
    from invkit import ProblemSpec
    from invkit.registry import get_registry

    @contextlib.contextmanager
    def clash() -> Iterator[None]:
        reg = get_registry()
        saved = ({k: dict(v) for k, v in reg.entries.items()},
                 {k: dict(v) for k, v in reg.ambiguous.items()}, list(reg.warnings))
        spec = reg.problem_spec("gmm")

        class Impostor:
            @invkit.hookimpl
            def invkit_register_problems(self, register):
                register(ProblemSpec("gmm", spec.build, options=dict(spec.options)))

        reg.add_plugin(Impostor(), name="impostor", distribution="impostor-problems")
        try:
            yield
        finally:
            reg.entries, reg.ambiguous, reg.warnings = saved
            reg.pm.unregister(name="impostor")

    return clash()


def careless_prior():
    """The gmm prior drawing from torch's global RNG instead of the generator it is given."""
    import dataclasses

    import torch

    from invkit.registry import get_registry

    @contextlib.contextmanager
    def careless() -> Iterator[None]:
        entry = get_registry().entries["prior"]["gmm_prior"]
        real = entry.obj
        entry.obj = dataclasses.replace(real, sample_fn=lambda n, g: torch.randn(n, 2))
        try:
            yield
        finally:
            entry.obj = real

    return careless()


def plugin_failed_to_load():
    """The registry as it is when a run's plugin is installed but its import fails."""
    from invkit.registry import FailedPlugin, get_registry

    @contextlib.contextmanager
    def failed() -> Iterator[None]:
        reg = get_registry()
        reg.failed.append(FailedPlugin("spectra", "invkit-spectra",
                                       "ModuleNotFoundError: No module named 'scipy'", "1.2.0"))
        try:
            yield
        finally:
            reg.failed.pop()

    return failed()


def hook_raises(hook: str):
    """The gmm plugin's metrics or plots hook raising, as a third-party hook might."""
    import invkit_gmm.evaluation
    import invkit_gmm.plots

    def broken(ctx):
        raise KeyError("mode_centres")

    module = invkit_gmm.evaluation if hook == "metrics" else invkit_gmm.plots
    return mock.patch.object(module, hook, broken)


# -- the files the cases need -----------------------------------------------------------------
def write(name: str, text: str) -> Callable[[], None]:
    return lambda: Path(name).write_text(text)


def save_array(name: str, shape: tuple[int, int], bad: bool = False) -> Callable[[], None]:
    """An .npy of zeros of ``shape`` (one value infinite when ``bad``), or an .npz holding it
    twice (as ``a`` and ``b``)."""

    def prepare() -> None:
        import numpy as np

        a = np.zeros(shape)
        if bad:
            a[2, 1] = np.inf
        if name.endswith(".npz"):
            np.savez(name, a=a, b=a)
        else:
            np.save(name, a)

    return prepare


def corrupt(edit: Callable[[dict], None] | None = None, raw: bytes | None = None,
            torch_obj: object = None, sync: bool = False) -> Callable[[], None]:
    """A fresh copy of the tiny run in ``bad/`` whose model.pt is damaged in one way;
    ``sync``: config.toml rewritten to the damaged checkpoint's config, so that the two agree
    and only the damage itself is found."""

    def prepare() -> None:
        import torch

        shutil.rmtree("bad", ignore_errors=True)
        shutil.copytree("run", "bad")
        target = Path("bad/model.pt")
        if raw is not None:
            target.write_bytes(raw)
        elif torch_obj is not None:
            torch.save(torch_obj, target)
        elif edit is not None:
            ckpt = torch.load(target, weights_only=True)
            edit(ckpt)
            torch.save(ckpt, target)
            if sync:
                import tomli_w

                Path("bad/config.toml").write_text(tomli_w.dumps(ckpt["config"]))

    return prepare


def _edit_ckpt(run: str, edit: Callable[[dict], None]) -> None:
    import torch

    target = Path(run, "model.pt")
    ckpt = torch.load(target, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, target)


def truncated() -> None:
    corrupt()()
    data = Path("bad/model.pt").read_bytes()
    Path("bad/model.pt").write_bytes(data[: len(data) // 2])


class _Evil:
    """A pickle that would run code on load; weights_only=True refuses it."""

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path("pwned"),))


def _set(*keys: str, value: object) -> Callable[[dict], None]:
    def edit(ckpt: dict) -> None:
        target = ckpt
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value

    return edit


def _wrong_width(ckpt: dict) -> None:
    ckpt["config"]["model"]["subnet_width"] = 32


def _unfinished(ckpt: dict) -> None:
    ckpt["complete"] = False
    ckpt["state"]["step"] = 7


def copy_run(name: str, edit_config: tuple[str, str] | None = None,
             model_from: str | None = None) -> Callable[[], None]:
    """A copy of the tiny run, its config.toml edited or its model.pt from another run."""

    def prepare() -> None:
        shutil.rmtree(name, ignore_errors=True)
        shutil.copytree("run", name, ignore=shutil.ignore_patterns(".lock"))
        if edit_config is not None:
            cfg = Path(name, "config.toml")
            cfg.write_text(cfg.read_text().replace(*edit_config))
        if model_from is not None:
            shutil.copy(Path(model_from, "model.pt"), Path(name, "model.pt"))

    return prepare


def _missing_plugin(ckpt: dict) -> None:
    ckpt["config"]["problem"]["name"] = "spectra"
    ckpt["problem"].update(name="spectra", plugin="spectra", distribution="invkit-spectra",
                           version="1.2.0")


def cases() -> list[Case]:
    run, cfg = "invkit run gmm", "invkit run gmm --config c.toml"
    return [
        # -- invkit run: names, keys and values ------------------------------------------
        Case("run", "unknown problem", ["run", "gmn"]),
        Case("run", "a fraction for an integer setting", ["run", "gmm", "--set",
                                                            "train.steps=1.5"]),
        Case("run", "mistyped config key", ["run", "gmm", "--set", "train.stpes=100"]),
        Case("run", "ambiguous short key", ["run", "gmm", "--set", "n_samples=100"]),
        Case("run", "value of the wrong type", ["run", "gmm", "--set", "steps=lots"]),
        Case("run", "integer too large to be one", ["run", "gmm", "--set", "steps=1e400"]),
        Case("run", "value out of range", ["run", "gmm", "--set", "lr=-1"]),
        Case("run", "NaN value", ["run", "gmm", "--set", "lr=nan"]),
        Case("run", "not one of the choices", ["run", "gmm", "--set", "block=glo"]),
        Case("run", "list of the wrong length", ["run", "gmm", "--set", "betas=0.9"]),
        Case("run", "empty list", ["run", "gmm", "--set", "mmd_widths_x=[]"]),
        Case("run", "bad problem option value", ["run", "gmm", "--set", "labels=few"]),
        Case("run", "unknown problem option", ["run", "gmm", "--set", "problem.colour=3"]),
        Case("run", "--set without '='", ["run", "gmm", "--set", "steps"]),
        Case("run", "seed out of range", ["run", "gmm", "--seed", "-1"]),
        Case("run", "unknown device", ["run", "gmm", "--device", "tpu"]),
        Case("run", "malformed device", ["run", "gmm", "--device", "cpu:x"]),
        Case("run", "evaluation without held-out pairs",
             ["run", "gmm", "--set", "data.n_test=0"]),
        Case("run", "no problem", ["run"]),
        Case("run", "unknown option (argparse)", ["run", "gmm", "--steps", "10"]),
        # -- config files ------------------------------------------------------------------
        Case("config file", "missing file", ["run", "gmm", "--config", "missing.toml"]),
        Case("config file", "not UTF-8 text", ["run", "gmm", "--config", "c.toml"],
             prepare=lambda: Path("c.toml").write_bytes(b"# caf\xe9\n[train]\nsteps = 3\n"),
             shown=cfg + "  # a Latin-1 comment"),
        Case("config file", "not TOML", ["run", "gmm", "--config", "c.toml"],
             prepare=write("c.toml", "[train\nsteps = 1\n"), shown=cfg + "  # [train"),
        Case("config file", "unknown key", ["run", "gmm", "--config", "c.toml"],
             prepare=write("c.toml", "[train]\nstpes = 10\n"),
             shown=cfg + "  # [train] stpes = 10"),
        Case("config file", "wrong type", ["run", "gmm", "--config", "c.toml"],
             prepare=write("c.toml", '[train]\nsteps = "many"\n'),
             shown=cfg + '  # [train] steps = "many"'),
        Case("config file", "scalar where a list belongs", ["run", "gmm", "--config", "c.toml"],
             prepare=write("c.toml", "[train]\nbetas = 0.9\n"),
             shown=cfg + "  # [train] betas = 0.9"),
        Case("config file", "problem given as a string", ["run", "gmm", "--config", "c.toml"],
             prepare=write("c.toml", 'problem = "gmm"\n'), shown=cfg + '  # problem = "gmm"'),
        Case("config file", "unknown problem option", ["run", "gmm", "--config", "c.toml"],
             prepare=write("c.toml", '[problem]\nlabel = "some"\n'),
             shown=cfg + '  # [problem] label = "some"'),
        Case("config file", "unknown preset", ["run", "gmm", "--config", "c.toml"],
             prepare=write("c.toml", 'preset = "fast"\n'), shown=cfg + '  # preset = "fast"'),
        # -- the run directory -------------------------------------------------------------
        Case("run directory", "--out exists", ["run", "gmm", *TINY, "--out", "run"],
             shown=f"{run} --out run"),
        Case("run directory", "--force on a folder that is not a run",
             ["run", "gmm", *TINY, "--out", "notes", "--force"],
             prepare=lambda: (Path("notes").mkdir(exist_ok=True),
                              Path("notes/todo.txt").write_text("x")),
             shown=f"{run} --out notes --force"),
        Case("run directory", "--force on a folder with a config.toml and other files",
             ["run", "gmm", *TINY, "--out", "thesis", "--force"],
             prepare=lambda: (Path("thesis").mkdir(exist_ok=True),
                              Path("thesis/config.toml").write_text("[train]\nsteps = 3\n"),
                              Path("thesis/thesis.tex").write_text("years of work")),
             shown=f"{run} --out thesis --force"),
        Case("run directory", "--force on a file", ["run", "gmm", *TINY, "--out", "f.txt",
                                                    "--force"],
             prepare=write("f.txt", "x"), shown=f"{run} --out f.txt --force"),
        Case("run directory", "--out in use by another invkit process",
             ["run", "gmm", *TINY, "--out", "run", "--force"],
             patch=lambda: held_by_another_process("run"), shown=f"{run} --out run --force",
             simulated="the run directory's lock is held"),
        Case("run directory", "--out below a file", ["run", "gmm", *TINY, "--out", "f.txt/run"],
             prepare=write("f.txt", "x"), shown=f"{run} --out f.txt/run"),
        Case("run directory", "read-only output folder",
             ["run", "gmm", *TINY, "--out", "ro/run"], patch=read_only_mount,
             shown=f"{run} --out ro/run", simulated="mkdir fails with EROFS"),
        Case("run directory", "disk full at the first checkpoint (run kept, without model.pt)",
             ["run", "gmm", *TINY, "--set", "train.checkpoint_every=10", "--out", "full1"],
             patch=lambda: disk_full_after(0), shown=f"{run} --out full1",
             simulated="torch.save fails with ENOSPC"),
        Case("run directory", "disk full at a later checkpoint (earlier one kept)",
             ["run", "gmm", *TINY, "--set", "train.checkpoint_every=10", "--out", "full2"],
             patch=lambda: disk_full_after(1), shown=f"{run} --out full2",
             simulated="the second torch.save fails with ENOSPC"),
        # -- training ----------------------------------------------------------------------
        Case("training", "loss diverges", ["run", "gmm", *TINY, "--set", "train.lr=1e6",
                                           "--out", "nan"],
             shown=f"{run} --set train.lr=1e6"),
        Case("training", "Ctrl-C or SIGTERM", ["run", "gmm", *TINY, "--out", "stopped"],
             expected=130, patch=lambda: signal_during_step(7),
             shown=f"{run} --out stopped", simulated="SIGTERM during step 7"),
        Case("training", "Ctrl-C or SIGTERM after the last step (the final save finishes)",
             ["run", "gmm", *TINY, "--set", "train.checkpoint_every=0", "--out", "late"],
             expected=130, patch=signal_after_the_last_step, shown=f"{run} --out late",
             simulated="SIGTERM between the last step and the final save"),
        Case("training", "Ctrl-C or SIGTERM before the first step (run removed)",
             ["run", "gmm", *TINY, "--out", "early"], expected=130,
             patch=signal_while_simulating, shown=f"{run} --out early",
             simulated="SIGTERM while the training data are simulated"),
        Case("training", "--resume of a folder that is not a run",
             ["run", "--resume", "notes"], prepare=lambda: Path("notes").mkdir(exist_ok=True)),
        Case("training", "--resume of a missing folder", ["run", "--resume", "nowhere"]),
        Case("training", "--resume with new settings",
             ["run", "--resume", "run", "--set", "train.lr=1"]),
        Case("training", "--resume after config.toml was edited",
             ["run", "--resume", "edited"],
             prepare=copy_run("edited", ("steps = 20", "steps = 40"))),
        Case("training", "a prior that ignores its generator (a warning)",
             ["run", "gmm", *TINY, "--out", "careless"], expected=0, patch=careless_prior,
             shown=f"{run} --out careless",
             simulated="the gmm prior draws from torch's global RNG"),
        # -- invkit sample -----------------------------------------------------------------
        Case("sample", "NaN in the observation", ["sample", "run", "--y", "nan,1,0,0,0,0,0,0"]),
        Case("sample", "observation of the wrong dimension", ["sample", "run", "--y", "1,0"]),
        Case("sample", "observation that is not numbers", ["sample", "run", "--y", "1,x"]),
        Case("sample", "an empty field", ["sample", "run", "--y", "1,,0,0,0,0,0,0,0"]),
        Case("sample", "numbers separated by spaces", ["sample", "run", "--y",
                                                       "1 0 0 0 0 0 0 0"]),
        Case("sample", "digit separators", ["sample", "run", "--y", "1_0,0,0,0,0,0,0,0"]),
        Case("sample", "a value beyond float32", ["sample", "run", "--y",
                                                  "1e39,0,0,0,0,0,0,0"]),
        Case("sample", "an observation far outside the training data (a warning)",
             ["sample", "run", "--y", "1e30,0,0,0,0,0,0,0", "-n", "3"], expected=0),
        Case("sample", "an unfinished run (a warning)", ["sample", "partial", "--y", Y,
                                                         "-n", "3"],
             expected=0, prepare=lambda: (copy_run("partial")(), _edit_ckpt("partial",
                                                                              _unfinished))),
        Case("sample", "more samples than fit in memory",
             ["sample", "run", "--y", Y, "-n", "1000000000000"]),
        Case("sample", "a seed too large", ["sample", "run", "--y", Y, "--seed",
                                            "99999999999999999999999"]),
        Case("sample", "observations of different lengths",
             ["sample", "run", "--y", Y, "--y", "1,0"]),
        Case("sample", "no samples", ["sample", "run", "--y", Y, "-n", "0"]),
        Case("sample", "--out exists", ["sample", "run", "--y", Y, "--out", "s.npy"],
             prepare=write("s.npy", "keep")),
        Case("sample", "--out of an unknown format", ["sample", "run", "--y", Y, "--out",
                                                       "s.txt"]),
        Case("sample", "--out in a missing folder",
             ["sample", "run", "--y", Y, "--out", "no/such/s.npy"]),
        Case("sample", "not a run directory", ["sample", "nowhere", "--y", Y]),
        Case("sample", "no observations", ["sample", "run"]),
        # -- invkit sample --y-file, --summary, --plot -------------------------------------
        Case("y-file", "a missing file", ["sample", "run", "--y-file", "obs.csv"]),
        Case("y-file", "a format it does not read", ["sample", "run", "--y-file", "obs.txt"],
             prepare=write("obs.txt", Y + "\n")),
        Case("y-file", "rows of the wrong width", ["sample", "run", "--y-file", "wide.csv"],
             prepare=write("wide.csv", "1,0,0\n0,1,0\n")),
        Case("y-file", "a header naming unknown observations",
             ["sample", "run", "--y-file", "named.csv"],
             prepare=write("named.csv", "y1,y2,y3,y4,y5,y6,y7,y_8\n" + Y + "\n")),
        Case("y-file", "a header without every observation",
             ["sample", "run", "--y-file", "short.csv"],
             prepare=write("short.csv", "y1,y2,y3,y4,y5,y6,y7\n1,0,0,0,0,0,0\n")),
        Case("y-file", "a cell that is not a number", ["sample", "run", "--y-file", "text.csv"],
             prepare=write("text.csv", Y + "\n0,1,0,0,zero,0,0,0\n")),
        Case("y-file", "an empty cell", ["sample", "run", "--y-file", "gap.csv"],
             prepare=write("gap.csv", "1,0,0,,0,0,0,0\n")),
        Case("y-file", "cells separated by semicolons", ["sample", "run", "--y-file", "semi.csv"],
             prepare=write("semi.csv", Y.replace(",", ";") + "\n")),
        Case("y-file", "a NaN in a row", ["sample", "run", "--y-file", "nan.csv"],
             prepare=write("nan.csv", Y + "\n" + Y + "\n0,nan,0,0,0,0,0,0\n")),
        Case("y-file", "an empty file", ["sample", "run", "--y-file", "empty.csv"],
             prepare=write("empty.csv", "")),
        Case("y-file", "a header and no observations",
             ["sample", "run", "--y-file", "header.csv"],
             prepare=write("header.csv", "y1,y2,y3,y4,y5,y6,y7,y8\n")),
        Case("y-file", "an array of the wrong width", ["sample", "run", "--y-file", "wide.npy"],
             prepare=save_array("wide.npy", (5, 3))),
        Case("y-file", "an infinite value in an array", ["sample", "run", "--y-file",
                                                          "inf.npy"],
             prepare=save_array("inf.npy", (4, 8), bad=True)),
        Case("y-file", "an .npz with several arrays", ["sample", "run", "--y-file", "two.npz"],
             prepare=save_array("two.npz", (2, 8))),
        Case("y-file", "--summary of an unknown format",
             ["sample", "run", "--y", Y, "--summary", "summary.txt"]),
        Case("y-file", "--summary exists", ["sample", "run", "--y", Y, "--summary", "s.json"],
             prepare=write("s.json", "keep")),
        Case("y-file", "--plot already holds plots", ["sample", "run", "--y", Y, "--plot",
                                                      "pairs"],
             prepare=lambda: (Path("pairs").mkdir(exist_ok=True),
                              Path("pairs/observation_000.png").write_text("keep"))),
        Case("y-file", "--plot names a file", ["sample", "run", "--y", Y, "--plot", "f.png"],
             prepare=write("f.png", "x")),
        # -- invkit evaluate ---------------------------------------------------------------
        Case("evaluate", "a setting that needs retraining",
             ["evaluate", "run", "--set", "train.lr=1"]),
        Case("evaluate", "not a run directory", ["evaluate", "nowhere"]),
        Case("evaluate", "calibration settings that could detect nothing",
             ["evaluate", "run", "--set", "eval.calibration_samples=1"]),
        Case("evaluate", "a run directory it cannot write", ["evaluate", "run"],
             patch=read_only_run_dir, simulated="creating a file fails with EROFS"),
        Case("evaluate", "a run in use by another invkit process", ["evaluate", "run"],
             patch=lambda: held_by_another_process("run"),
             simulated="the run directory's lock is held"),
        Case("evaluate", "a model.pt copied from another run", ["evaluate", "mixed"],
             prepare=copy_run("mixed", model_from="arm")),
        Case("evaluate", "a problem's metrics hook raises", ["evaluate", "run"],
             patch=lambda: hook_raises("metrics"),
             simulated="the gmm plugin's metrics(ctx) raises KeyError"),
        Case("evaluate", "a problem's plots hook raises", ["evaluate", "run"],
             patch=lambda: hook_raises("plots"),
             simulated="the gmm plugin's plots(ctx) raises KeyError"),
        # -- damaged or foreign checkpoints (the same for sample, evaluate and --resume) ----
        Case("checkpoint", "truncated model.pt", ["sample", "bad", "--y", Y], prepare=truncated),
        Case("checkpoint", "random bytes", ["sample", "bad", "--y", Y],
             prepare=corrupt(raw=bytes(range(256)) * 8)),
        Case("checkpoint", "empty file", ["evaluate", "bad"], prepare=corrupt(raw=b"")),
        Case("checkpoint", "a torch file that is not a checkpoint",
             ["sample", "bad", "--y", Y], prepare=corrupt(torch_obj={"weights": [1.0]})),
        Case("checkpoint", "a pickle that would run code", ["sample", "bad", "--y", Y],
             prepare=corrupt(torch_obj=_Evil())),
        Case("checkpoint", "written with another FrEIA", ["evaluate", "bad"],
             prepare=corrupt(_set("versions", "FrEIA", value="0.1"))),
        Case("checkpoint", "another checkpoint format", ["sample", "bad", "--y", Y],
             prepare=corrupt(_set("format_version", value=99))),
        Case("checkpoint", "weights that do not fit its config", ["sample", "bad", "--y", Y],
             prepare=corrupt(_wrong_width, sync=True)),
        Case("checkpoint", "weights that do not fit its config (resume)",
             ["run", "--resume", "bad"], prepare=corrupt(_wrong_width, sync=True)),
        Case("checkpoint", "a config with an unknown key", ["evaluate", "bad"],
             prepare=corrupt(_set("config", "train", "stpes", value=3))),
        Case("checkpoint", "problem plugin not installed", ["sample", "bad", "--y", Y],
             prepare=corrupt(_missing_plugin, sync=True)),
        Case("checkpoint", "problem plugin installed but failed to load",
             ["sample", "bad", "--y", Y], prepare=corrupt(_missing_plugin, sync=True),
             patch=plugin_failed_to_load, simulated="its import fails with ModuleNotFoundError"),
        Case("checkpoint", "problem plugin of another version (a warning)",
             ["sample", "bad", "--y", Y, "-n", "5"], expected=0,
             prepare=corrupt(_set("problem", "version", value="0.0.1"))),
        # -- invkit baseline ---------------------------------------------------------------
        Case("baseline", "unknown baseline", ["baseline", "abd", "gmm", "--y", Y]),
        Case("baseline", "unknown baseline option",
             ["baseline", "abc", "gmm", "--y", Y, "--set", "tolerence=0.1"]),
        Case("baseline", "no samples", ["baseline", "abc", "gmm", "--y", Y, "-n", "0"]),
        Case("baseline", "--out exists", ["baseline", "abc", "gmm", "--y", Y, "--out",
                                          "abc.pt"], prepare=write("abc.pt", "keep")),
        Case("baseline", "a seed too large", ["baseline", "abc", "gmm", "--y", Y, "--seed",
                                              "99999999999999999999999"]),
        Case("baseline", "an absurd budget", ["baseline", "abc", "gmm", "--y", Y, "--set",
                                              "budget=1e30"]),
        # -- plugins ------------------------------------------------------------------------
        Case("plugins", "two distributions register the same problem name",
             ["run", "gmm", *TINY], patch=name_clash, shown="invkit run gmm",
             simulated="a plugin of distribution impostor-problems registers 'gmm' too"),
    ]


def _run(case: Case) -> tuple[int, str]:
    from invkit.cli.main import main

    if case.prepare is not None:
        case.prepare()
    err = io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        if case.patch is not None:
            stack.enter_context(case.patch())
        try:
            code = main(case.argv)
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    if case.expected == 0:
        lines = [line for line in lines if line.startswith("warning:")]
    elif lines and not lines[0].startswith("error:"):  # argparse: usage, then the error
        lines = lines[-1:]
    return code, " ".join(" ".join(lines).split())


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    old = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="invkit-errors-") as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


def collect() -> list[Row]:
    """Run every case in a temporary folder; the first trains the tiny run the others use."""
    import torch

    from invkit.cli.main import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _workdir():
            with contextlib.redirect_stdout(io.StringIO()):
                assert main(["run", "gmm", *TINY, "--out", "run"]) == 0
                assert main(["run", "kinematics", *TINY, "--out", "arm"]) == 0
            rows = []
            for case in cases():
                code, message = _run(case)
                rows.append(Row(case, code, message))
            assert not Path("pwned").exists(), "a pickle ran code on load"
            return rows
    finally:
        torch.set_num_threads(threads)


def _md(text: str) -> str:
    for ch in "\\`*_|<>[]":
        text = text.replace(ch, "\\" + ch)
    return text


def _shown(case: Case) -> str:
    if case.shown:
        return case.shown
    return "invkit " + " ".join(a if a and " " not in a else repr(a) for a in case.argv)


INTRO = """\
# Bad input and the messages it gets

Every mistake a user can make gets **one paragraph** on stderr that says what was wrong and
how to fix it, and a **non-zero exit code**, never a traceback: exit code 2 for bad input,
130 for a command stopped with Ctrl-C or SIGTERM (a training run saves a checkpoint first).
A traceback is a bug in invkit or in a plugin: please report it.

What invkit guarantees:

- Bad names, keys and values are caught **before** anything is written: no run directory.
- A run directory in which training has started is never deleted; one that fails before its
  first training step is removed. `invkit run --resume RUN_DIR` continues a run from its last
  checkpoint (`model.pt`).
- `--force` replaces only a run directory invkit wrote (it holds a `.invkit-run` marker),
  never any other folder, and only once the new run has started: the old run is moved aside
  and put back if the new one fails before its first step.
- A run directory is locked while a process uses it (`invkit run`, `--resume`, `evaluate`):
  a second process is refused with the first one's pid. The lock dies with its process.
- An evaluation writes its plots and `metrics.json` together or not at all: it checks that it
  can write first, and draws plots into a staging folder that is moved into `plots/` at the
  end.
- Ctrl-C or SIGTERM during a run asks it to stop at the next step: it saves a checkpoint first,
  also when the signal comes after the last step; under torchrun the ranks agree to stop at
  the same step.
- Checkpoints are written atomically (a temporary file, fsync, rename): a crash, a kill or a
  full disk leaves the previous checkpoint intact, never a torn one. They are written every
  `train.checkpoint_every` steps (default 500; 0 = only at the end), on Ctrl-C / SIGTERM and
  at the end. `invkit run --resume RUN_DIR` continues with the saved optimizer, learning-rate
  schedule, random-number state and running losses, and ends exactly where an uninterrupted
  run would (on CPU: the same weights and metrics, bit for bit).
- A loss or weight that becomes NaN or infinite stops training with the step range and the
  loss term; the diverged state is never saved over the last good checkpoint.
- Checkpoints are loaded with `torch.load(weights_only=True)`: a checkpoint can hold no code.
  A checkpoint whose problem plugin has another version than the installed one loads with a
  warning; one written with another FrEIA version is refused.
- One seed (`--seed`) fixes the data, the initial weights, the permutations and all training
  noise, without reading or changing the global random generators: the same command twice
  on a CPU gives the same `metrics.json` (apart from timings).

Observations that start with a minus sign can be passed as `--y -1,0.5` or `--y=-1,0.5`.

The table below is generated by running each command on a tiny run. Regenerate it with

```console
$ python docs/_scripts/error_table.py --write
```

and `tests/test_reliability.py::test_error_table_script_runs` checks that every row still
exits as listed. Faults that cannot be produced on demand are simulated by making the one
call that would fail raise the error the system would give (noted in the table).
Paths are relative to the folder the commands run in; `run` is a finished run directory and
`bad` a copy of it with `model.pt` damaged as described.
"""

TITLES = {
    "run": "`invkit run`: names, keys and values",
    "config file": "Config files (`--config FILE.toml`)",
    "run directory": "The run directory",
    "training": "Training, interrupting and resuming",
    "sample": "`invkit sample`",
    "y-file": "`invkit sample`: files of observations, summaries and plots",
    "evaluate": "`invkit evaluate`",
    "checkpoint": "Damaged or foreign checkpoints",
    "baseline": "`invkit baseline`",
    "plugins": "Plugins",
}


def render(rows: list[Row]) -> str:
    out = [INTRO]
    for section, title in TITLES.items():
        out.append(f"\n## {title}\n")
        out.append("| Bad input | Command | Exit | Message |")
        out.append("|---|---|---|---|")
        for row in (r for r in rows if r.case.section == section):
            what = _md(row.case.what)
            if row.case.simulated:
                what += f" (simulated: {_md(row.case.simulated)})"
            out.append(f"| {what} | `{_shown(row.case)}` | {row.code} | {_md(row.message)} |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    rows = collect()
    page = render(rows)
    wrong = [r for r in rows if r.code != r.case.expected or "Traceback" in r.message]
    for r in wrong:
        print(f"unexpected: {r.case.what}: exit {r.code}: {r.message}", file=sys.stderr)
    if "--write" in argv:
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(page)
        print(f"wrote {PAGE}", file=sys.stderr)
    else:
        sys.stdout.write(page)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
