"""Fuzzing: generated ``--set`` pairs, TOML files, observations and damaged checkpoints.

Whatever the input, invkit answers with a result or one InvkitError paragraph (exit 2), never
an unexpected exception (a traceback). Config inputs are checked through the resolution the
CLI uses (``invkit.api.resolve``: cheap); the CLI itself is driven with a training budget of
two steps, appended after the fuzzed settings so that it always wins.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import tempfile
from pathlib import Path

import pytest
import tomli_w
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from invkit.api import resolve
from invkit.cli.main import main
from invkit.config import RunConfig, config_from_dict, known_keys
from invkit.errors import InvkitError

FAST = settings(max_examples=60, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
FEW = settings(max_examples=15, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture,
                                      HealthCheck.too_slow])
KEYS = known_keys()
SHORT = sorted({k.split(".")[-1] for k in KEYS} | {"labels", "problem.labels", "model"})
BUDGET = [a for kv in ("train.steps=2", "data.simulations=64", "data.n_test=8",
                        "train.batch_size=16", "model.subnet_width=8", "model.n_blocks=2",
                        "model.subnet_depth=1", "train.compile=false", "model.dim_z=0",
                        "model.dim_total=0", "train.checkpoint_every=0", "train.log_every=1",
                        "model.cond_width=8")
          if kv.split("=")[0] in KEYS for a in ("--set", kv)]


pytestmark = pytest.mark.usefixtures("one_thread")


# -- strategies --------------------------------------------------------------------------------
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=16)


def _default(key: str):
    cfg = RunConfig()
    if "." not in key:
        return getattr(cfg, key)
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


def _typed(key: str) -> st.SearchStrategy[str]:
    """Values of the key's own type, near and beyond its limits: most of them are valid."""
    default = _default(key)
    if isinstance(default, bool):
        return st.sampled_from(["true", "false", "1", "0", "yes", "off"])
    if isinstance(default, int):
        return st.one_of(st.integers(-2, 40).map(str), st.sampled_from(["1e1", "3.0", "2.5"]))
    if isinstance(default, float):
        return st.one_of(st.floats(-1, 5, allow_nan=False).map(repr),
                         st.sampled_from(["0", "1e-12", "1e30", "1e39"]))
    if isinstance(default, list):
        return st.lists(st.floats(-0.5, 1.5, allow_nan=False), max_size=3).map(
            lambda v: ",".join(map(repr, v)))
    return st.sampled_from(["glow", "rnvp", "allinone", "inn", "cinn", "auto", "exact", "abc",
                            "none", "quick", "paper", "cpu", "x"])


typed_pairs = st.sampled_from(KEYS).flatmap(lambda k: st.tuples(st.just(k), _typed(k)))
typed_pairs = st.one_of(typed_pairs, st.tuples(st.just("labels"),
                                               st.sampled_from(["all", "some", "none"])))


keys = st.one_of(st.sampled_from(KEYS), st.sampled_from(SHORT),
                 st.text(alphabet="abcdefghijklmnopqrstuvwxyz._", max_size=20), text)
numbers = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True))
value_text = st.one_of(
    text,
    numbers.map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-0", "true", "false", "yes", "[]", "[1,2]",
                     "0.9,0.99", "0.9, 2", "", " ", "glow", "rnvp", "allinone", "cinn", "inn",
                     "all", "some", "few", "cpu", "cuda", "cuda:0", "mps", "auto", "quick",
                     "paper", "exact", "abc", "none", "1e3", "0", "-1", "2**40"]),
    st.lists(numbers, max_size=4).map(lambda v: ",".join(map(str, v))),
)
scalars = st.one_of(numbers, st.booleans(), text,
                    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 1, 1)),
                    st.dates())
toml_values = st.recursive(
    st.one_of(scalars, st.lists(st.one_of(numbers, text), max_size=3)),
    lambda children: st.dictionaries(st.one_of(st.sampled_from(SHORT), text), children,
                                     max_size=3),
    max_leaves=8,
)


@st.composite
def toml_documents(draw) -> dict:
    doc: dict = {}
    for top in ("preset", "seed", "device"):
        if draw(st.booleans()):
            doc[top] = draw(st.one_of(scalars, st.sampled_from(["quick", "default", "cpu"])))
    for section in ("model", "train", "eval", "problem"):
        if draw(st.booleans()):
            if draw(st.integers(0, 9)) == 0:
                doc[section] = draw(scalars)  # a scalar where a table belongs
                continue
            names = [k.split(".", 1)[1] for k in KEYS if k.startswith(section + ".")]
            names = names or ["labels", "name"]
            key = st.one_of(st.sampled_from(names), st.sampled_from(SHORT), text)
            doc[section] = draw(st.dictionaries(key, toml_values, max_size=4))
    if draw(st.booleans()):
        doc[draw(text)] = draw(toml_values)
    return doc


def _resolves_or_fails_cleanly(**kwargs) -> None:
    try:
        cfg, problem = resolve("gmm", **kwargs)
    except InvkitError as exc:
        assert str(exc).strip(), "an error without a message"
        event(type(exc).__name__)
        return
    event("resolved")
    assert cfg.problem == "gmm" and problem.dim_x == 2
    # whatever resolved must survive the round trip the run directory makes
    assert config_from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()


# -- config resolution -------------------------------------------------------------------------
pairs = st.one_of(typed_pairs, typed_pairs, st.tuples(keys, value_text))


@FAST
@given(pairs=st.lists(pairs, min_size=1, max_size=4),
       preset=st.sampled_from(["quick", "default", "paper"]))
def test_set_pairs_resolve_or_fail_cleanly(pairs, preset):
    _resolves_or_fails_cleanly(preset=preset, overrides=pairs)


@FAST
@given(doc=toml_documents())
def test_toml_files_resolve_or_fail_cleanly(doc, tmp_path_factory):
    try:
        content = tomli_w.dumps(doc)
    except (TypeError, ValueError):  # nothing TOML can hold (e.g. a time zone tomli_w rejects)
        assume(False)
    path = tmp_path_factory.getbasetemp() / "fuzz.toml"
    path.write_text(content, encoding="utf-8")
    _resolves_or_fails_cleanly(config_file=path)


@FAST
@given(content=st.one_of(text, st.binary(max_size=64).map(lambda b: b.decode("latin-1"))))
def test_garbage_config_files_fail_cleanly(content, tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "garbage.toml"
    path.write_text(content, encoding="utf-8")
    _resolves_or_fails_cleanly(config_file=path)


# -- the CLI -----------------------------------------------------------------------------------
def _exit_code(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    event(f"exit {code}")  # pytest --hypothesis-show-statistics: how many got through
    return code, err


@contextlib.contextmanager
def _working_folder(path: str):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@FEW
@given(pairs=st.lists(pairs, min_size=1, max_size=3),
       seed=st.one_of(st.none(), st.integers(-5, 2**33)))
def test_cli_run_with_fuzzed_settings_exits_0_or_2(pairs, seed, capsys):
    sets = [a for k, v in pairs for a in ("--set", f"{k}={v}")]
    # in the temporary folder: a fuzzed relative path (data.cache=..., say) lands there
    with tempfile.TemporaryDirectory() as tmp, _working_folder(tmp):
        out = Path(tmp) / "run"
        argv = ["run", "gmm", "--preset", "quick", "--quiet", "--no-eval", *sets, *BUDGET,
                "--out", str(out)]
        if seed is not None:
            argv += ["--seed", str(seed)]
        code, err = _exit_code(argv, capsys)
        assert code in (0, 2), err
        if code == 2:
            assert err.startswith("error:") or "usage:" in err, err
            # refused settings write nothing; a run that diverged keeps its config and its
            # simulations (to rerun with the fix the error names), never a model
            assert not (out / "model.pt").exists()
            assert not out.exists() or (out / "config.toml").exists()
        else:
            assert (out / "model.pt").exists() and (out / "metrics.json").exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["run", "gmm", "--preset", "quick", "--quiet", "--no-eval", *BUDGET,
                     "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    return out


observations = st.one_of(
    st.lists(st.floats(-3, 3), min_size=8, max_size=8).map(lambda v: ",".join(map(repr, v))),
    value_text,
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-9, 9)),
             min_size=0, max_size=10).map(lambda v: ",".join(map(str, v))),
)


@FAST
@given(ys=st.lists(observations, min_size=1, max_size=2), n=st.integers(-3, 20))
def test_cli_sample_with_fuzzed_observations_exits_0_or_2(ys, n, tiny_run, capsys):
    argv = ["sample", str(tiny_run), "-n", str(n)]
    for y in ys:
        argv.append(f"--y={y}")
    code, err = _exit_code(argv, capsys)
    assert code in (0, 2), err
    parsed_ok = code == 0
    if parsed_ok:
        values = [[float(v) for v in y.replace(" ", "").strip("[]()").split(",") if v]
                  for y in ys]
        assert n >= 1 and all(len(v) == 8 and all(map(math.isfinite, v)) for v in values)


@FEW
@given(data=st.data())
def test_damaged_checkpoints_are_results_or_clear_errors(data, tiny_run, capsys):
    raw = (tiny_run / "model.pt").read_bytes()
    how = data.draw(st.sampled_from(["truncate", "flip", "splice", "zero"]))
    buf = bytearray(raw)
    if how == "truncate":
        buf = buf[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "splice":
        i = data.draw(st.integers(0, len(raw) - 1))
        buf[i:i] = data.draw(st.binary(min_size=1, max_size=32))
    else:
        i = data.draw(st.integers(0, len(raw) - 1))
        buf[i:i + data.draw(st.integers(1, 256))] = b"\x00" * 256
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "run"
        bad.mkdir()
        (bad / "model.pt").write_bytes(bytes(buf))
        command = data.draw(st.sampled_from(["sample", "evaluate", "resume"]))
        argv = {"sample": ["sample", str(bad), "--y", "1,0,0,0,0,0,0,0", "-n", "3"],
                "evaluate": ["evaluate", str(bad), "--quiet", "--set", "eval.n_targets=2",
                             "--set", "eval.n_samples=8", "--set", "eval.plots=false"],
                "resume": ["run", "--resume", str(bad), "--quiet", "--no-eval"]}[command]
        code, err = _exit_code(argv, capsys)
        assert code in (0, 2), err
