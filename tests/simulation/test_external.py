"""external_program: a command as a forward process (CSV in, CSV out), and its errors."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch
from simkinds import prior, write_script

from invkit.errors import InvkitError
from invkit.problem import Problem
from invkit.simulation import ExternalProgramError, external_program, simulate

X = np.array([[0.5, 2.0], [1.0, -1.0], [3.0, 0.25]])


def _program(tmp_path, body: str, **kwargs):
    script = write_script(tmp_path, textwrap.dedent(body), "prog.py")
    kwargs.setdefault("name", "prog")
    return external_program([sys.executable, str(script), *kwargs.pop("extra", [])],
                            kwargs.pop("dim_x", 2), kwargs.pop("dim_y", 1), **kwargs)


ECHO_SUM = """\
    import sys
    rows = [list(map(float, line.split(","))) for line in sys.stdin if line.strip()]
    print("total")
    for r in rows:
        print(sum(r))
    """


def test_batched_sends_all_rows_at_once_and_reads_one_row_each(tmp_path):
    process = _program(tmp_path, ECHO_SUM)
    assert process.backend == "numpy" and process.vectorized and process.rng == "none"
    y = process.fn(X)
    assert y.shape == (3, 1) and np.allclose(y[:, 0], X.sum(1))


def test_per_sample_runs_the_program_once_per_row(tmp_path):
    process = _program(tmp_path, ECHO_SUM, batched=False)
    assert not process.vectorized
    y = process(torch.tensor(X, dtype=torch.float32))
    assert y.shape == (3, 1) and torch.allclose(y[:, 0], torch.tensor(X.sum(1)).float())


def test_inputs_go_out_at_full_precision(tmp_path):
    process = _program(tmp_path, """\
        import sys
        for line in sys.stdin:
            print(line.strip().split(",")[0])
        """)
    x = np.array([[np.pi, 0.0], [1 / 3, 1.0]])
    assert np.array_equal(process.fn(x)[:, 0], x[:, 0])


def test_seed_placeholder_makes_a_stochastic_program_reproducible(tmp_path):
    body = """\
        import os, random, sys
        assert os.environ["INVKIT_SEED"] == sys.argv[1]
        rng = random.Random(int(sys.argv[1]))
        for line in sys.stdin:
            print(float(line.split(",")[0]) + rng.gauss(0, 1))
        """
    for batched in (True, False):
        process = _program(tmp_path, body, extra=["{seed}"], batched=batched)
        assert process.rng == "generator" and process.stochastic
        problem = Problem("ext", prior(), process)
        a = simulate(problem, 6, seed=0, block_size=3)
        b = simulate(problem, 6, seed=0, block_size=3, workers=2)
        c = simulate(problem, 6, seed=1, block_size=3)
        assert torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)
        assert not torch.allclose(a.y[:, 0], a.x[:, 0])  # the noise is there


def test_a_failing_program_names_the_command_and_shows_its_stderr(tmp_path):
    process = _program(tmp_path, """\
        import sys
        print("reading input", file=sys.stderr)
        print("ERROR: mesh too coarse", file=sys.stderr)
        sys.exit(3)
        """)
    with pytest.raises(ExternalProgramError) as info:
        process.fn(X)
    message = str(info.value)
    assert "exited with status 3" in message and "prog.py" in message
    assert "ERROR: mesh too coarse" in message and "'prog'" in message


def test_a_program_that_hangs_is_stopped_at_its_timeout(tmp_path):
    process = _program(tmp_path, """\
        import sys, time
        print("started", file=sys.stderr, flush=True)
        time.sleep(30)
        """, timeout=0.5)
    match = r"(?s)did not finish within 0.5 s.*timeout.*ended with:\nstarted"
    with pytest.raises(ExternalProgramError, match=match):
        process.fn(X)


@pytest.mark.parametrize("body, match", [
    ("print('1.0'); print('oops'); print('2.0')", r"line 2 'oops', which is not 1 numbers"),
    ("print('1.0'); print('2.0')", r"printed 2 row\(s\) of 1 number\(s\) for 3 input"),
    ("print('1,2'); print('1,2'); print('1,2')", r"3 row\(s\) of 2 number\(s\).*expected 3 "
                                                  r"row\(s\) of 1"),
    ("pass", r"printed 0 row\(s\)"),
])
def test_output_that_is_not_y_is_an_error(tmp_path, body, match):
    process = _program(tmp_path, f"import sys\nsys.stdin.read()\n{body}\n")
    with pytest.raises(ExternalProgramError, match=match):
        process.fn(X)


def test_a_missing_program_and_bad_arguments_are_clear_errors():
    process = external_program(["no-such-simulator-here", "--fast"], 2, 1, name="missing")
    with pytest.raises(ExternalProgramError, match="'no-such-simulator-here' was not found"):
        process.fn(X)
    with pytest.raises(InvkitError, match="empty"):
        external_program("", 2, 1, name="e")
    with pytest.raises(InvkitError, match="dim_y"):
        external_program("prog", 2, 0, name="e")
    with pytest.raises(InvkitError, match="timeout"):
        external_program("prog", 2, 1, name="e", timeout=-1)


def test_a_command_string_is_split_like_a_shell_would_without_a_shell(tmp_path):
    script = write_script(tmp_path, "import sys\nprint(sys.argv[1])\n", "args.py")
    process = external_program(f"{sys.executable} {script} 'a b'", 1, 1, name="p",
                               batched=False)
    assert process.fn.args[-1] == "a b"


def test_errors_inside_simulate_name_the_block(tmp_path):
    process = _program(tmp_path, "import sys\nsys.stdin.read()\nsys.exit(1)\n")
    with pytest.raises(InvkitError, match=r"'prog'.*block 0 of the stream.*exited with status 1"):
        simulate(Problem("ext", prior(), process), 4, seed=0)
