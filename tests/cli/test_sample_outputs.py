"""Observations in, results out: ``invkit sample --y-file`` (.csv, .npy, .npz) with its errors,
the summary table and ``--summary`` (.csv, .json) checked against numpy, ``--plot`` (one corner
plot per observation) and ``Posterior.summary``, end to end on tiny runs of gmm, the example
plugin linear_gaussian and a file of simulations with named columns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from invkit.cli.main import main
from invkit.errors import InvkitError
from invkit.observation_files import read_observations
from invkit.summary import PosteriorSummary, check_quantiles, quantile_key, summarise

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--preset", "quick", "--quiet", "--threads", "1", "--no-eval",
        "--set", "data.simulations=500", "--set", "data.n_test=32",
        "--set", "train.batch_size=32", "--set", "model.subnet_width=8",
        "--set", "model.n_blocks=2", "--set", "train.steps=20", "--set", "train.log_every=5"]
NAMES = ["y1", "y2", "y3"]


def _err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def gmm(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gmm") / "run"
    assert main(["run", "gmm", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def lg(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lg") / "run"
    assert main(["run", "linear_gaussian", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def named(tmp_path_factory) -> Path:
    """A run on a file of simulations whose columns are named: mass, radius -> flux, colour."""
    folder = tmp_path_factory.mktemp("named")
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(600, 2))
    obs = np.stack([theta.sum(1), theta[:, 0] - theta[:, 1]], 1)
    np.savetxt(folder / "sims.csv", np.hstack([theta, obs]), delimiter=",",
               header="mass,radius,flux,colour", comments="")
    out = folder / "run"
    assert main(["run", str(folder / "sims.csv"), "--set", "x=mass,radius",
                 "--set", "y=flux,colour", *TINY, "--out", str(out)]) == 0
    return out


# -- reading files of observations -----------------------------------------------------------
def test_a_csv_header_may_name_the_observations_in_any_order(tmp_path):
    f = read_observations(_write(tmp_path / "o.csv", "y3,y1,y2\n3,1,2\n 30 , 10 ,20\n"), NAMES)
    assert f.header and f.lines == (2, 3)
    np.testing.assert_array_equal(f.y, [[1, 2, 3], [10, 20, 30]])


def test_a_csv_without_header_is_in_the_problems_order(tmp_path):
    f = read_observations(_write(tmp_path / "o.csv", "1,2,3\n\n-4e-1,+5,.5\n"), NAMES)
    assert not f.header and f.lines == (1, 3)  # blank lines are skipped, lines still counted
    np.testing.assert_array_equal(f.y, [[1, 2, 3], [-0.4, 5, 0.5]])


def test_numpy_savetxts_commented_header_is_a_header(tmp_path):
    path = tmp_path / "o.csv"
    np.savetxt(path, [[3.0, 1.0, 2.0]], delimiter=",", header="y3,y1,y2")  # "# y3,y1,y2"
    np.testing.assert_array_equal(read_observations(path, NAMES).y, [[1, 2, 3]])


def test_numeric_observation_names_are_a_header_only_when_they_are_all_there(tmp_path):
    names = ["1", "2"]
    assert read_observations(_write(tmp_path / "a.csv", "2,1\n5,6\n"), names).y.tolist() \
        == [[6, 5]]
    assert read_observations(_write(tmp_path / "b.csv", "1,3\n5,6\n"), names).y.tolist() \
        == [[1, 3], [5, 6]]


def test_npy_and_npz_files(tmp_path):
    y = np.arange(6.0).reshape(2, 3)
    np.save(tmp_path / "o.npy", y)
    np.savez(tmp_path / "o.npz", observations=y.astype(np.float32))
    np.save(tmp_path / "one.npy", y[0])
    np.save(tmp_path / "ints.npy", y.astype(int))
    for name in ("o.npy", "o.npz", "ints.npy"):
        np.testing.assert_array_equal(read_observations(tmp_path / name, NAMES).y, y)
    assert read_observations(tmp_path / "one.npy", NAMES).y.shape == (1, 3)  # one observation
    np.save(tmp_path / "col.npy", np.arange(4.0))  # dim_y = 1: one observation per value
    assert read_observations(tmp_path / "col.npy", ["flux"]).y.shape == (4, 1)


def _npy(path: Path, a: np.ndarray) -> Path:
    np.save(path, a)
    return path


BAD_FILES = [
    # name, contents (text, bytes, or an array for np.save), fragments of the message
    ("obz.csv", None, ["does not exist", "Did you mean 'obs.csv'"]),
    ("o.txt", "1,2,3\n", ["are .csv, .npy, .npz", "'.txt'"]),
    ("wide.csv", "1,2,3,4\n", ["line 1: 4 value(s)", "dim_y=3 (y1, y2, y3)"]),
    ("narrow.csv", "1,2,3\n1,2\n", ["line 2: 2 value(s)", "dim_y=3 (y1, y2, y3)"]),
    ("trail.csv", "1,2,3,\n", ["a comma at the end of the line"]),
    ("semi.csv", "1;2;3\n", ["separated by commas, not semicolons"]),
    ("unknown.csv", "y1,y2,yy3\n1,2,3\n", ["'yy3' (did you mean 'y3'", "dim_y=3 (y1, y2, y3)"]),
    ("twice.csv", "y1,y1,y2\n1,2,3\n", ["names y1 more than once"]),
    ("short.csv", "y1,y2\n1,2\n", ["no column 'y3'"]),
    ("text.csv", "1,2,3\n4,five,6\n", ["line 2, column 2 (y2)", "'five' is not a number"]),
    ("hdrtext.csv", "y2,y1,y3\n1,2,x\n", ["line 2, column 3 (y3)", "'x' is not a number"]),
    ("sep.csv", "1_000,2,3\n", ["line 1, column 1", "'1_000' is not a number"]),
    ("blank.csv", "1,,3\n", ["line 1, column 2", "is empty"]),
    ("nan.csv", "1,2,3\n4,5,6\nnan,1,1\n1,inf,1\n", ["line 3 and 1 more row(s)",
                                                    "NaN or infinite"]),
    ("huge.csv", "1,2,3e38\n4e38,0,0\n", ["line 2", "beyond float32's range"]),
    ("empty.csv", "", ["is empty", "dim_y=3"]),
    ("spaces.csv", "\n  \n", ["is empty"]),
    ("header.csv", "y1,y2,y3\n", ["has a header but no observations"]),
    ("latin1.csv", b"y1,y2,y3\n1,2,3\xe9\n", ["is not UTF-8 text"]),
    ("wide.npy", np.zeros((4, 5)), ["shape (4, 5)", "dim_y=3 (y1, y2, y3)"]),
    ("cube.npy", np.zeros((2, 3, 1)), ["shape (2, 3, 1)"]),
    ("none.npy", np.zeros((0, 3)), ["holds no observations"]),
    ("inf.npy", np.array([[1, 2, 3], [0, np.inf, 0]]), ["row 1 (counting from 0)",
                                                       "NaN or infinite"]),
    ("words.npy", np.array(["a", "b", "c"]), ["holds <U1 values"]),
    ("zero.npy", b"", ["not a readable .npy file", "the file is empty"]),
    ("two.npz", "npz2", ["holds 2 arrays", "exactly one"]),
    ("broken.npz", b"not a zip", ["not a readable .npz file"]),
]


@pytest.mark.parametrize("name,contents,fragments", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_of_observations_get_a_clear_error(tmp_path, name, contents, fragments):
    (tmp_path / "obs.csv").write_text("1,2,3\n")
    path = tmp_path / name
    if isinstance(contents, str) and contents == "npz2":
        np.savez(path, a=np.zeros((2, 3)), b=np.ones(3))
    elif isinstance(contents, str):
        path.write_text(contents)
    elif isinstance(contents, bytes):
        path.write_bytes(contents)
    elif contents is not None:
        np.save(path, contents)
    with pytest.raises(InvkitError) as info:
        read_observations(path, NAMES)
    message = " ".join(str(info.value).split())
    for fragment in fragments:
        assert fragment in message, message


def test_a_folder_is_not_a_file_of_observations(tmp_path):
    (tmp_path / "obs.csv").mkdir()
    with pytest.raises(InvkitError, match="is a folder"):
        read_observations(tmp_path / "obs.csv", NAMES)


# -- the summary, against numpy -------------------------------------------------------------
def _known() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    samples = rng.normal(size=(4, 501, 2)) * [1.0, 5.0] + [[[0.0, 10.0]]]
    return samples.astype(np.float32), rng.normal(size=(4, 3))


def test_statistics_are_numpys():
    samples, y = _known()
    s = summarise(samples, y, ["a", "b"], NAMES)
    x = samples.astype(np.float64)
    np.testing.assert_allclose(s.mean, x.mean(1), rtol=1e-12)
    np.testing.assert_allclose(s.std, x.std(1, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(s.quantile_values,
                               np.quantile(x, [0.05, 0.5, 0.95], axis=1).transpose(1, 0, 2),
                               rtol=1e-12)
    np.testing.assert_array_equal(s.y, y)
    assert s.statistics == ["mean", "std", "q5", "q50", "q95"] and s.n_samples == 501
    first = s[0]["parameters"]["b"]
    assert first["q50"] == pytest.approx(float(np.median(x[0, :, 1])), rel=1e-12)


def test_torch_input_one_observation_and_other_quantiles():
    x = torch.arange(101.0)[:, None]  # one observation, samples 0..100
    s = summarise(x, torch.tensor([7.0]), ["x1"], ["y1"], quantiles=(0.025, 0.5, 0.975))
    assert len(s) == 1 and s.statistics == ["mean", "std", "q2.5", "q50", "q97.5"]
    assert s[0]["parameters"]["x1"] == pytest.approx(
        {"mean": 50.0, "std": float(np.std(np.arange(101.0), ddof=1)), "q2.5": 2.5,
         "q50": 50.0, "q97.5": 97.5})
    assert s[-1]["y"] == {"y1": 7.0}


def test_rows_json_and_files_hold_the_same_numbers(tmp_path):
    samples, y = _known()
    s = summarise(samples, y, ["a", "b"], NAMES)
    rows = s.to_rows()
    assert len(rows) == 4 * 2
    assert list(rows[0]) == ["observation", "parameter", "mean", "std", "q5", "q50", "q95",
                             "y1", "y2", "y3"]
    assert [(r["observation"], r["parameter"]) for r in rows[:3]] == [(0, "a"), (0, "b"),
                                                                      (1, "a")]
    with open(s.write(tmp_path / "s.csv"), newline="") as fh:
        back = list(csv.DictReader(fh))
    assert len(back) == len(rows)
    for got, want in zip(back, rows):
        assert got["parameter"] == want["parameter"]
        assert int(got["observation"]) == want["observation"]
        for key in ("mean", "std", "q5", "q50", "q95", "y2"):
            assert float(got[key]) == want[key]  # written with every digit
    data = json.loads(s.write(tmp_path / "s.json").read_text())
    assert data == s.to_json() and len(data) == 4
    assert data[2]["y"] == dict(zip(NAMES, y[2].tolist()))
    assert data[2]["parameters"]["b"]["std"] == s.std[2, 1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_one_sample_has_no_std_and_json_says_null(tmp_path):
    s = summarise(np.ones((1, 1, 2)), np.zeros((1, 1)), ["a", "b"], ["y1"])
    assert np.isnan(s.std).all()
    assert json.loads(s.write(tmp_path / "s.json").read_text())[0]["parameters"]["a"]["std"] \
        is None


def test_an_observation_name_that_clashes_with_a_column_is_prefixed():
    s = summarise(np.zeros((1, 3, 1)), np.zeros((1, 2)), ["x1"], ["mean", "flux"])
    assert list(s.to_rows()[0])[-2:] == ["y:mean", "flux"]


def test_the_table_fits_80_columns_however_long_the_names():
    samples, y = _known()
    s = summarise(samples * 1e-7, y * 1e9, ["a" * 60, "b"], [f"observable_{k}" for k in
                                                              range(3)])
    text = s.table(width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "observation 3: observable_0=" in text and "5%" in text and "95%" in text
    short = s.table(max_observations=2)
    assert "observation 2" not in short and "... and 2 more observation(s)" in short


@pytest.mark.parametrize("bad", [(), (0.5, 1.5), (0.5, 0.5), ("a",), (float("nan"),)])
def test_bad_quantiles_are_refused(bad):
    with pytest.raises(InvkitError, match="quantiles"):
        check_quantiles(bad)


def test_quantile_keys():
    assert [quantile_key(q) for q in (0.05, 0.5, 0.95, 0.025, 0.001)] == \
        ["q5", "q50", "q95", "q2.5", "q0.1"]


# -- the Python API ----------------------------------------------------------------------------
def test_posterior_summary_is_the_summary_of_its_samples(lg):
    import invkit

    post = invkit.load(lg)
    y = torch.tensor([[0.5, -0.2], [1.0, 1.0]])
    s = post.summary(y, n=300, seed=5)
    assert isinstance(s, PosteriorSummary) and len(s) == 2
    assert s.x_names == ["x1", "x2", "x3"] and s.y_names == ["y1", "y2"]
    x = post.sample(y, 300, seed=5).double().numpy()
    np.testing.assert_allclose(s.mean, x.mean(1), rtol=1e-6)
    np.testing.assert_allclose(s.quantile_values[:, 1], np.median(x, 1), rtol=1e-6)
    one = post.summary([0.5, -0.2], n=300, seed=5, quantiles=(0.1, 0.9))
    assert len(one) == 1 and one.statistics == ["mean", "std", "q10", "q90"]
    alone = post.sample([0.5, -0.2], 300, seed=5).double().numpy()
    np.testing.assert_allclose(one.mean[0], alone.mean(0), rtol=1e-6)
    with pytest.raises(InvkitError, match="dim_y=2"):
        post.summary([1.0, 2.0, 3.0])


# -- the command line, end to end ------------------------------------------------------------
def test_gmm_y_file_and_y_together_out_summary_and_plots(gmm, tmp_path, capsys):
    np.savetxt(tmp_path / "obs.csv", np.eye(8)[2:5], delimiter=",")  # no header
    out, summ, plots = tmp_path / "s.npy", tmp_path / "sum.csv", tmp_path / "plots"
    assert main(["sample", str(gmm), "--y", "1,0,0,0,0,0,0,0", "--y-file",
                 str(tmp_path / "obs.csv"), "-n", "200", "--out", str(out), "--summary",
                 str(summ), "--plot", str(plots)]) == 0
    printed = capsys.readouterr().out
    x = np.load(out)
    assert x.shape == (4, 200, 2)  # the --y first, then the file's three rows
    with open(summ, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * 2 and rows[0]["y1"] == "1.0" and rows[2]["y3"] == "1.0"
    means = np.array([float(r["mean"]) for r in rows]).reshape(4, 2)
    np.testing.assert_allclose(means, x.astype(np.float64).mean(1), rtol=1e-9)
    q95 = np.array([float(r["q95"]) for r in rows]).reshape(4, 2)
    np.testing.assert_allclose(q95, np.quantile(x.astype(np.float64), 0.95, axis=1))
    names = sorted(p.name for p in plots.iterdir())
    assert names == [f"observation_00{i}.png" for i in range(4)]
    assert all((plots / n).stat().st_size > 1000 for n in names)
    table = printed.split("wrote")[0].splitlines()
    assert len(table) == 2 + 4 * 3 and max(len(line) for line in table) <= 80
    assert "observation 3: y1=0, y2=0, y3=0, y4=0, y5=1" in printed and "95%" in printed
    assert "wrote 4 pair plot(s)" in printed


def test_linear_gaussian_npy_npz_and_json(lg, tmp_path, capsys):
    y = np.array([[0.5, -0.2], [1.0, 1.0], [0.0, 0.0]])
    np.save(tmp_path / "o.npy", y)
    np.savez(tmp_path / "o.npz", y=y)
    summaries = []
    for name in ("o.npy", "o.npz"):
        target = tmp_path / f"{name}.json"
        assert main(["sample", str(lg), "--y-file", str(tmp_path / name), "-n", "100",
                     "--seed", "3", "--summary", str(target)]) == 0
        summaries.append(json.loads(target.read_text()))
    assert summaries[0] == summaries[1]  # same rows, same seed: same numbers
    first = summaries[0][1]
    assert first["observation"] == 1 and first["y"] == {"y1": 1.0, "y2": 1.0}
    assert set(first["parameters"]) == {"x1", "x2", "x3"}
    assert set(first["parameters"]["x2"]) == {"mean", "std", "q5", "q50", "q95"}
    assert "x3" in capsys.readouterr().out


def test_names_come_from_the_problem(named, tmp_path, capsys):
    _write(tmp_path / "o.csv", "colour,flux\n0.5,1\n-1,0\n")
    assert main(["sample", str(named), "--y-file", str(tmp_path / "o.csv"), "-n", "50",
                 "--out", str(tmp_path / "s.csv"), "--summary", str(tmp_path / "m.json"),
                 "--plot", str(tmp_path / "p")]) == 0
    printed = capsys.readouterr().out
    assert "observation 0: flux=1, colour=0.5" in printed and "  radius " in printed
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "observation,mass,radius"
    data = json.loads((tmp_path / "m.json").read_text())
    assert data[1]["y"] == {"flux": 0.0, "colour": -1.0}
    assert list(data[1]["parameters"]) == ["mass", "radius"]
    assert len(list((tmp_path / "p").glob("observation_*.png"))) == 2
    _write(tmp_path / "bad.csv", "flux,color\n1,2\n")
    assert main(["sample", str(named), "--y-file", str(tmp_path / "bad.csv")]) == 2
    assert "'color' (did you mean 'colour'?)" in _err(capsys)


def test_many_observations_print_the_first_twenty(gmm, tmp_path, capsys):
    np.save(tmp_path / "o.npy", np.tile(np.eye(8), (3, 1)))  # 24 observations
    assert main(["sample", str(gmm), "--y-file", str(tmp_path / "o.npy"), "-n", "20"]) == 0
    printed = capsys.readouterr().out
    assert "observation 19:" in printed and "observation 20:" not in printed
    assert "... and 4 more observation(s)" in printed and "--summary" in printed


def test_the_same_seed_gives_the_same_summary(gmm, tmp_path):
    for k in (1, 2):
        assert main(["sample", str(gmm), "--y", "0,1,0,0,0,0,0,0", "-n", "50", "--seed", "9",
                     "--summary", str(tmp_path / f"{k}.csv")]) == 0
    assert (tmp_path / "1.csv").read_text() == (tmp_path / "2.csv").read_text()


def test_plots_and_summaries_need_force_to_be_replaced(gmm, tmp_path, capsys):
    plots, summ = tmp_path / "p", tmp_path / "s.json"
    argv = ["sample", str(gmm), "--y", "1,0,0,0,0,0,0,0", "--y", "0,1,0,0,0,0,0,0", "-n", "30",
            "--plot", str(plots)]
    assert main(argv) == 0
    stamp = (plots / "observation_000.png").stat().st_mtime_ns
    assert main(argv) == 2
    assert "already holds 2 of the plots" in _err(capsys)
    assert (plots / "observation_000.png").stat().st_mtime_ns == stamp
    summ.write_text("keep")
    assert main([*argv[:-2], "--summary", str(summ)]) == 2
    assert "exists; add --force" in _err(capsys) and summ.read_text() == "keep"
    one = ["sample", str(gmm), "--y", "0,0,1,0,0,0,0,0", "-n", "30", "--force",
           "--plot", str(plots), "--summary", str(summ)]
    assert main(one) == 0
    assert json.loads(summ.read_text())[0]["y"]["y3"] == 1.0
    assert (plots / "observation_000.png").stat().st_mtime_ns != stamp
    err = _err(capsys)
    assert "also holds 1 plot(s) from an earlier call (observation_001.png" in err


CLI_ERRORS = [
    ([], ["Give the observations: --y", "dim_y=8 (y1, y2, y3, y4, y5, y6, y7, y8)"]),
    (["--y", "1,0"], ["--y has 2 value(s)", "dim_y=8"]),
    (["--y-file", "nowhere.csv"], ["'nowhere.csv' does not exist"]),
    (["--y-file", "wide.csv"], ["line 1: 9 value(s)", "dim_y=8 (y1, y2,"]),
    (["--y", "1,0,0,0,0,0,0,0", "--summary", "s.txt"], ["--summary must end in .csv or .json"]),
    (["--y", "1,0,0,0,0,0,0,0", "--summary", "no/such/s.csv"], ["a folder in it does not "
                                                                "exist"]),
    (["--y", "1,0,0,0,0,0,0,0", "--out", "s.csv", "--summary", "s.csv"], ["the same file"]),
    (["--y", "1,0,0,0,0,0,0,0", "--plot", "f.txt"], ["is a file; name a folder"]),
    (["--y", "1,0,0,0,0,0,0,0", "--summary", "folder.json"], ["is a folder; name a file"]),
]


@pytest.mark.parametrize("extra,fragments", CLI_ERRORS)
def test_bad_sample_options_write_nothing(gmm, tmp_path, monkeypatch, capsys, extra,
                                          fragments):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "wide.csv", "1,0,0,0,0,0,0,0,0\n")
    _write(tmp_path / "f.txt", "x")
    (tmp_path / "folder.json").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["sample", str(gmm), "-n", "5", *extra]) == 2
    err = _err(capsys)
    for fragment in fragments:
        assert fragment in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_empty_path_is_refused_not_taken_as_the_current_folder(gmm, capsys):
    with pytest.raises(SystemExit) as info:
        main(["sample", str(gmm), "--y", "1,0,0,0,0,0,0,0", "--plot", ""])
    assert info.value.code == 2 and "expected a path" in capsys.readouterr().err


def test_the_getting_started_example_runs(gmm, tmp_path, monkeypatch):
    """The doctest of docs/getting-started.md's section on summaries, on the tiny gmm run (the
    docs build runs it on the quick one; no printed value depends on the training)."""
    import doctest
    import re

    import invkit

    page = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"
    section = page.read_text().split("## Many observations, summaries and pair plots")[1]
    source = re.findall(r"```\{doctest\}\n(.*?)```", section.split("\n## ")[0], flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    globs = {"torch": torch, "posterior": invkit.load(gmm)}
    test = doctest.DocTestParser().get_doctest(source, globs, page.name, str(page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    runner.run(test, out=out.append)
    assert not runner.failures, "".join(out)
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "colour-2.png").is_file()
