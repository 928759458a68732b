"""Files of simulations: .npz / .npy / .csv read into float32 tensors, and every way a file or
a column selection can be wrong, each with an error that says what to change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from invkit.errors import InvkitError, InvkitWarning
from invkit.simulation import read_simulations
from invkit.simulation.files import inspect_file

RNG = np.random.default_rng(0)
THETA = RNG.normal(size=(20, 2))
OBS = RNG.normal(size=(20, 3))
TABLE = np.hstack([THETA, OBS])
HEADER = "theta1,theta2,obs1,obs2,obs3"


def _csv(tmp_path, text: str, name: str = "sims.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _table_csv(tmp_path, table=TABLE, header=HEADER):
    rows = "\n".join(",".join(repr(float(v)) for v in row) for row in table)
    return _csv(tmp_path, f"{header}\n{rows}\n")


def _close(a: torch.Tensor, b: np.ndarray) -> bool:
    return a.dtype == torch.float32 and torch.equal(a, torch.from_numpy(b.astype(np.float32)))


# -- what is read ----------------------------------------------------------------------------
def test_npz_with_arrays_named_x_and_y_needs_no_selection(tmp_path):
    np.savez(tmp_path / "s.npz", x=THETA, y=OBS)
    sims = read_simulations(tmp_path / "s.npz")
    assert _close(sims.x, THETA) and _close(sims.y, OBS)
    assert sims.x_names == ["x1", "x2"] and sims.y_names == ["y1", "y2", "y3"]


def test_npz_arrays_by_name_are_joined_column_by_column(tmp_path):
    np.savez(tmp_path / "s.npz", mass=THETA[:, 0], radius=THETA[:, 1], obs=OBS, other=np.ones(3))
    sims = read_simulations(tmp_path / "s.npz", x="mass,radius", y=["obs"])
    assert _close(sims.x, THETA) and _close(sims.y, OBS)
    assert sims.x_names == ["mass", "radius"] and sims.y_names == ["obs1", "obs2", "obs3"]


def test_one_array_npz_and_npy_are_split_by_column_index(tmp_path):
    np.savez(tmp_path / "one.npz", sims=TABLE)
    np.save(tmp_path / "t.npy", TABLE)
    for path in (tmp_path / "one.npz", tmp_path / "t.npy"):
        sims = read_simulations(path, x="0:2", y="2:5")
        assert _close(sims.x, THETA) and _close(sims.y, OBS) and sims.x_names is None
    sims = read_simulations(tmp_path / "t.npy", x="0,1")  # y: the other columns
    assert _close(sims.y, OBS)
    sims = read_simulations(tmp_path / "t.npy", y="-3:")
    assert _close(sims.x, THETA)


def test_csv_columns_by_name_or_by_index(tmp_path):
    path = _table_csv(tmp_path)
    by_name = read_simulations(path, x="theta1,theta2", y="obs1,obs2,obs3")
    by_index = read_simulations(path, x="0:2", y="2:")
    only_x = read_simulations(path, x=["theta1", 1])
    for sims in (by_name, by_index, only_x):
        assert _close(sims.x, THETA) and _close(sims.y, OBS)
        assert sims.x_names == ["theta1", "theta2"] and sims.y_names == ["obs1", "obs2", "obs3"]
    reordered = read_simulations(path, x="theta2,theta1", y="obs3")
    assert _close(reordered.x, THETA[:, ::-1]) and reordered.y_names == ["obs3"]


def test_csv_with_quotes_spaces_and_a_byte_order_mark(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text('\ufeff"a", b ,c\n"1.5", 2 ,3\n4,5,6\n', encoding="utf-8")
    sims = read_simulations(path, x="a,b", y="c")
    assert sims.x.tolist() == [[1.5, 2.0], [4.0, 5.0]] and sims.y.tolist() == [[3.0], [6.0]]


def test_csv_empty_cells_are_missing_values_and_follow_the_nan_policy(tmp_path):
    path = _csv(tmp_path, "a,b,c\n1,2,3\n4,,6\n7,8,nan\n10,11,12\n")
    with pytest.warns(InvkitWarning, match=r"2 of 4 simulations \(50%\).*sims.csv.*dropped"):
        sims = read_simulations(path, x="a,b", y="c")
    assert sims.y.tolist() == [[3.0], [12.0]] and (sims.rows, sims.dropped) == (4, 2)
    with pytest.raises(InvkitError, match="nan_policy='drop'"):
        read_simulations(path, x="a,b", y="c", nan_policy="error")
    kept = read_simulations(path, x="a,b", y="c", nan_policy="keep")
    assert kept.x.shape == (4, 2) and kept.dropped == 0


def test_inf_in_npz_is_non_finite_too(tmp_path):
    x = THETA.copy()
    x[4, 1] = np.inf
    np.savez(tmp_path / "s.npz", x=x, y=OBS)
    with pytest.warns(InvkitWarning, match="1 of 20"):
        assert read_simulations(tmp_path / "s.npz").x.shape == (19, 2)


# -- what is wrong ---------------------------------------------------------------------------
def test_a_missing_file_suggests_a_close_name(tmp_path):
    np.savez(tmp_path / "simulations.npz", x=THETA, y=OBS)
    with pytest.raises(InvkitError, match=r"does not exist.*Did you mean 'simulations.npz'"):
        read_simulations(tmp_path / "simulation.npz")


@pytest.mark.parametrize("name, match", [
    ("s.h5", "HDF5.*numpy.savez"), ("s.parquet", r"\.npz, \.npy, \.csv"), ("dir.csv", "folder"),
])
def test_unsupported_files_say_what_is(tmp_path, name, match):
    (tmp_path / "dir.csv").mkdir()
    if name != "dir.csv":
        (tmp_path / name).touch()
    with pytest.raises(InvkitError, match=match):
        read_simulations(tmp_path / name)


def test_an_unknown_column_name_lists_close_matches(tmp_path):
    path = _table_csv(tmp_path)
    with pytest.raises(InvkitError, match=r"no column 'theta_1'\. Did you mean 'theta1'.*"
                                          r"Its columns: theta1, theta2, obs1"):
        read_simulations(path, x="theta_1,theta2", y="obs1")
    np.savez(tmp_path / "s.npz", theta=THETA, obs=OBS)
    with pytest.raises(InvkitError, match=r"no array 'thetas'\. Did you mean 'theta'.*holds"):
        read_simulations(tmp_path / "s.npz", x="thetas", y="obs")


def test_overlapping_and_empty_column_sets(tmp_path):
    path = _table_csv(tmp_path)
    with pytest.raises(InvkitError, match="'theta2' are selected for both x and y"):
        read_simulations(path, x="theta1,theta2", y="theta2,obs1")
    with pytest.raises(InvkitError, match="selects no columns"):
        read_simulations(path, x="3:3", y="obs1")
    with pytest.raises(InvkitError, match="no columns are left for y"):
        read_simulations(path, x="0:5")
    with pytest.raises(InvkitError, match="more than once"):
        read_simulations(path, x="theta1,0", y="obs1")
    with pytest.raises(InvkitError, match="empty item"):
        read_simulations(path, x="theta1,,theta2", y="obs1")
    np.savez(tmp_path / "s.npz", theta=THETA, obs=OBS)
    with pytest.raises(InvkitError, match="selected for both"):
        read_simulations(tmp_path / "s.npz", x="theta", y="theta,obs")


def test_a_non_numeric_cell_names_its_line_and_column(tmp_path):
    path = _csv(tmp_path, "a,b,c\n1,2,3\n4,five,6\n")
    with pytest.raises(InvkitError, match=r"sims.csv, line 3, column 'b': 'five' is not a number"):
        read_simulations(path, x="a,b", y="c")


def test_ragged_rows_name_their_line(tmp_path):
    path = _csv(tmp_path, "a,b,c\n1,2,3\n4,5\n7,8,9\n")
    with pytest.raises(InvkitError, match=r"line 3: 2 cells, but the header has 3 columns"):
        read_simulations(path, x="a,b", y="c")


def test_a_wrong_number_of_columns(tmp_path):
    path = _table_csv(tmp_path)
    with pytest.raises(InvkitError, match=r"x has 2 column\(s\) \(theta1, theta2\), but the "
                                          r"problem expects dim_x=3"):
        read_simulations(path, x="theta1,theta2", y="obs1", dim_x=3)
    with pytest.raises(InvkitError, match=r"column 7, but the file has 5 column\(s\)"):
        read_simulations(path, x="0,7", y="obs1")
    with pytest.raises(InvkitError, match=r"up to index 7, but the file has 5 column\(s\)"):
        read_simulations(path, x="0:7")
    np.save(tmp_path / "flat.npy", np.arange(5.0))
    with pytest.raises(InvkitError, match="one 2-D array"):
        read_simulations(tmp_path / "flat.npy", x="0")


def test_a_csv_without_a_header_or_rows(tmp_path):
    with pytest.raises(InvkitError, match="looks like data.*header row"):
        read_simulations(_csv(tmp_path, "1,2,3\n4,5,6\n"), x="0:2", y="2")
    with pytest.raises(InvkitError, match="no rows of simulations"):
        read_simulations(_csv(tmp_path, "a,b,c\n\n", "empty.csv"), x="a,b", y="c")
    with pytest.raises(InvkitError, match="is empty"):
        read_simulations(_csv(tmp_path, "", "void.csv"), x="a", y="b")


def test_names_where_the_file_has_none_and_no_selection_where_one_is_needed(tmp_path):
    np.save(tmp_path / "t.npy", TABLE)
    with pytest.raises(InvkitError, match="no column names; select columns by index"):
        read_simulations(tmp_path / "t.npy", x="theta", y="obs")
    with pytest.raises(InvkitError, match=r"say which columns are x.*it has 5 columns.*x=0:4"):
        read_simulations(tmp_path / "t.npy")
    with pytest.raises(InvkitError, match=r"its columns: theta1, theta2.*e\.g\. "
                                          r"x=theta1,theta2,obs1 y=obs3"):
        read_simulations(_table_csv(tmp_path))
    np.savez(tmp_path / "s.npz", theta=THETA, obs=OBS)
    with pytest.raises(InvkitError, match=r"name the arrays of x and y.*theta \(20, 2\)"):
        read_simulations(tmp_path / "s.npz")
    with pytest.raises(InvkitError, match="by array name, not by column index"):
        read_simulations(tmp_path / "s.npz", x="0:2", y="obs")


def test_npz_arrays_of_other_lengths_or_kinds(tmp_path):
    np.savez(tmp_path / "s.npz", x=THETA, y=OBS[:10])
    with pytest.raises(InvkitError, match=r"different numbers of rows \(x: 20, y: 10\)"):
        read_simulations(tmp_path / "s.npz")
    np.savez(tmp_path / "w.npz", x=np.array(["a", "b"]), y=OBS[:2])
    with pytest.raises(InvkitError, match="holds <U1 values; simulations must be numbers"):
        read_simulations(tmp_path / "w.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(InvkitError, match="not a readable .npz"):
        read_simulations(tmp_path / "bad.npz")


def test_the_layout_is_found_without_reading_the_data(tmp_path, monkeypatch):
    np.savez(tmp_path / "s.npz", theta=THETA, obs=OBS)
    path = _table_csv(tmp_path)
    monkeypatch.setattr(np, "loadtxt", lambda *a, **k: pytest.fail("data read"))
    layout = inspect_file(path, x="theta1,theta2", y="obs2")
    assert (layout.dim_x, layout.dim_y, layout.y_names) == (2, 1, ("obs2",))
    layout = inspect_file(tmp_path / "s.npz", x="theta", y="obs")
    assert (layout.dim_x, layout.dim_y) == (2, 3)
