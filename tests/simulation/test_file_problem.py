"""A problem made of a file of simulations: names from the file, data read lazily, and the
built-in spec ``file`` as the registry will build it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import invkit
from invkit.errors import InvkitError, InvkitWarning
from invkit.registry import Registry
from invkit.simulation import FILE_PROBLEM_SPEC, file_problem, simulate

THETA = np.random.default_rng(1).normal(size=(30, 2))
OBS = THETA.sum(1, keepdims=True) ** 2


class FileOnly:
    """A stand-in for the core's registration of the built-in."""

    @invkit.hookimpl
    def invkit_register_problems(self, register):
        register(FILE_PROBLEM_SPEC)


def _registry() -> Registry:
    reg = Registry()
    reg.add_plugin(FileOnly(), name="builtin")
    return reg


def _csv(tmp_path, header="mass,radius,flux"):
    path = tmp_path / "sims.csv"
    rows = "\n".join(",".join(repr(float(v)) for v in row) for row in np.hstack([THETA, OBS]))
    path.write_text(f"{header}\n{rows}\n")
    return path


def test_a_csv_problem_takes_its_names_from_the_header(tmp_path):
    problem = file_problem(_csv(tmp_path), x="mass,radius", y="flux", name="stars")
    assert not problem.has_simulator and (problem.dim_x, problem.dim_y) == (2, 1)
    assert problem.x_names == ["mass", "radius"] and problem.y_names == ["flux"]
    x, y = problem.simulations.load()
    assert x.dtype == torch.float32 and torch.allclose(x, torch.tensor(THETA).float())


def test_npz_array_names_become_the_names_and_blank_ones_get_defaults(tmp_path):
    np.savez(tmp_path / "s.npz", theta=THETA, flux=OBS)
    problem = file_problem(tmp_path / "s.npz", x="theta", y="flux")
    assert problem.x_names == ["theta1", "theta2"] and problem.y_names == ["flux"]
    blank = file_problem(_csv(tmp_path, header="mass,,flux"), x="0:2", y="flux")
    assert blank.x_names == ["mass", "x2"]


def test_the_data_are_read_on_first_use_and_kept(tmp_path):
    path = _csv(tmp_path)
    problem = file_problem(path, x="mass,radius", y="flux")
    path.write_text("mass,radius,flux\n1,2,3\n")  # changed after the problem was built
    x, _ = problem.simulations.load()
    assert x.tolist() == [[1.0, 2.0]]
    path.write_text("mass,radius,flux\n4,5,6\n")
    assert problem.simulations.load()[0] is x


def test_column_errors_surface_when_the_problem_is_built(tmp_path):
    with pytest.raises(InvkitError, match="Did you mean 'radius'"):
        file_problem(_csv(tmp_path), x="mass,radios", y="flux")


def test_the_builtin_spec_builds_through_the_registry(tmp_path):
    np.savez(tmp_path / "sims.npz", x=THETA, y=OBS)
    reg = _registry()
    problem = reg.build_problem("file", {"path": str(tmp_path / "sims.npz")})  # default x, y
    assert problem.name == "file" and problem.options["x"] == "x"
    result = simulate(problem, None, seed=0)
    assert result.n == 30 and result.from_file == 30 and result.simulated == 0
    assert torch.allclose(result.y, torch.tensor(OBS).float())
    csv = reg.build_problem("file", {"path": str(_csv(tmp_path)), "x": "mass,radius", "y": ""})
    assert csv.y_names == ["flux"]


def test_the_builtin_spec_says_how_to_name_the_file():
    with pytest.raises(InvkitError, match="--set path=sims.npz --set x=theta --set y=obs"):
        _registry().build_problem("file")
    assert set(FILE_PROBLEM_SPEC.options) == {"path", "x", "y"}
    assert all(isinstance(v, str) for v in FILE_PROBLEM_SPEC.options.values())


def test_nan_rows_of_a_file_follow_the_policy_where_they_are_used(tmp_path):
    y = OBS.copy()
    y[[2, 5]] = np.nan
    np.savez(tmp_path / "sims.npz", x=THETA, y=y)
    problem = file_problem(tmp_path / "sims.npz")
    assert problem.simulations.load()[1].isnan().sum() == 2  # rows as they are in the file
    with pytest.warns(InvkitWarning, match=r"2 of 30 simulations.*file sims.npz"):
        result = simulate(problem, None, seed=0)
    assert result.n == 28 and result.dropped == 2
    with pytest.raises(InvkitError, match="nan_policy='drop'"):
        simulate(problem, None, seed=0, nan_policy="error")


def test_a_budget_takes_a_seeded_random_subset_of_the_rows(tmp_path):
    np.savez(tmp_path / "sims.npz", x=np.arange(60.0).reshape(30, 2), y=OBS)
    problem = file_problem(tmp_path / "sims.npz")
    a, b = simulate(problem, 10, seed=0), simulate(problem, 10, seed=0)
    assert torch.equal(a.x, b.x) and a.n == 10 and a.requested == 10
    assert not torch.equal(a.x, torch.arange(20.0).reshape(10, 2))  # not just the first rows
    assert not torch.equal(a.x, simulate(problem, 10, seed=1).x)
