"""Pair (corner) plots: written whole, to the path asked, for any dimension, without pyplot's
global state; the generic evaluation figure ``plots/posterior.png`` is made of them."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from invkit.evaluation.pairplot import draw_pairplot, new_figure, pairplot, save_figure

PNG = b"\x89PNG\r\n\x1a\n"


def _samples(n: int = 400, d: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("d", [1, 2, 4])
def test_a_corner_plot_is_written_for_any_dimension(tmp_path, d):
    path = pairplot(_samples(d=d), [f"p{k}" for k in range(d)], tmp_path / f"c{d}.png",
                    title="observation 0: y1=1")
    assert path == tmp_path / f"c{d}.png"
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 1000
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_the_grid_is_a_lower_triangle_labelled_with_the_names():
    fig = new_figure(figsize=(6, 6))
    axes = draw_pairplot(fig, _samples(d=3), ["mass", "radius", "spin"], truth=[0, 0, 0])
    visible = [[ax.get_visible() for ax in row] for row in axes]
    assert visible == [[True, False, False], [True, True, False], [True, True, True]]
    assert [axes[2][j].get_xlabel() for j in range(3)] == ["mass", "radius", "spin"]
    assert [axes[i][0].get_ylabel() for i in (1, 2)] == ["radius", "spin"]
    assert len(axes[0][0].patches) >= 1  # the diagonal is a histogram
    assert len(axes[1][0].collections) == 1  # below it, a 2-D histogram


def test_torch_input_and_no_path_give_a_figure_and_touch_no_pyplot():
    import matplotlib.figure

    before = "matplotlib.pyplot" in sys.modules and len(
        sys.modules["matplotlib.pyplot"].get_fignums())
    fig = pairplot(torch.randn(300, 2), ["a", "b"])
    assert isinstance(fig, matplotlib.figure.Figure)
    after = "matplotlib.pyplot" in sys.modules and len(
        sys.modules["matplotlib.pyplot"].get_fignums())
    assert before == after  # no figure registered with pyplot, nothing to close


def test_names_default_and_a_wrong_count_is_refused(tmp_path):
    fig = new_figure()
    axes = draw_pairplot(fig, _samples(d=2), None)
    assert axes[1][0].get_xlabel() == "x1" and axes[1][0].get_ylabel() == "x2"
    with pytest.raises(ValueError, match="2 names for 3 dimensions"):
        pairplot(_samples(d=3), ["a", "b"], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_stray_non_finite_samples_and_constant_dimensions_still_plot(tmp_path):
    s = _samples(d=2)
    s[0] = np.inf
    s[1, 0] = np.nan
    s[:, 1] = 3.0  # a parameter the posterior pins exactly
    assert pairplot(s, ["a", "b"], tmp_path / "odd.png").stat().st_size > 1000


def test_a_long_title_is_cut_to_two_lines():
    from invkit.evaluation.pairplot import title_lines

    title = "observation 0: " + ", ".join(f"y{k}=0.{k}" for k in range(200))
    lines = title_lines(title, new_figure(figsize=(4, 4))).splitlines()
    assert len(lines) == 2 and lines[-1].endswith("...")


def test_save_is_atomic_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "p.png"
    path.write_bytes(b"old")
    fig = new_figure()
    fig.subplots().plot([0, 1])

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(OSError):
        save_figure(fig, path)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["p.png"]


def test_the_generic_evaluation_figure_is_one_corner_per_target(tmp_path):
    from invkit.evaluation.plots import plot_posterior_pairs

    class Posterior:
        def sample(self, y, n, generator=None):
            return torch.randn(y.shape[0], n, 3, generator=generator)

    ctx = SimpleNamespace(problem=SimpleNamespace(dim_x=3, x_names=["a", "b", "c"]),
                          y_test=torch.zeros(5, 2), x_test=torch.zeros(5, 3),
                          posterior=Posterior(), generator=torch.Generator().manual_seed(0))
    path = plot_posterior_pairs(ctx, Path(tmp_path / "posterior.png"), n_targets=2, n=200)
    assert path.read_bytes().startswith(PNG)
