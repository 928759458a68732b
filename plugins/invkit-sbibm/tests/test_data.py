"""sbibm's data files: reading them, and checking our tasks against them (the official
observations reproduce from their seeds; constants equal sbibm's pickles; reference samples
match closed-form posteriors)."""

from __future__ import annotations

import math
import pickle
import types
from pathlib import Path

import pytest
import torch

from invkit_sbibm import data, tasks
from invkit_sbibm.tasks import TASKS, get_task
from sbibm_helpers import gen, requires_sbibm


# -- errors without sbibm ----------------------------------------------------------------------
def test_missing_sbibm_gives_the_install_command(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(data, "_distribution_package", lambda: [])
    data.tasks_dir.cache_clear()
    try:
        with pytest.raises(data.SbibmDataError, match=r"pip install --no-deps sbibm==1\.1\.0"):
            data.observations("two_moons")
        assert not data.is_installed()
    finally:
        data.tasks_dir.cache_clear()


def test_missing_file_names_the_file_and_the_fix(monkeypatch, tmp_path):
    spec = types.SimpleNamespace(submodule_search_locations=[str(tmp_path / "sbibm")])
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: spec)
    monkeypatch.setattr(data, "_distribution_package", lambda: [])
    data.tasks_dir.cache_clear()
    try:
        with pytest.raises(data.SbibmDataError, match="true_parameters.csv is missing.*"
                                                       "--force-reinstall"):
            data.true_parameters("slcp")
    finally:
        data.tasks_dir.cache_clear()


@requires_sbibm
def test_a_module_called_sbibm_on_the_path_does_not_hide_the_data(monkeypatch):
    """benchmarks/sbibm.py puts its folder on sys.path, where 'sbibm' is then that script."""
    script = types.SimpleNamespace(submodule_search_locations=None)
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: script)
    data.tasks_dir.cache_clear()
    try:
        assert (data.tasks_dir() / "two_moons").is_dir()
    finally:
        data.tasks_dir.cache_clear()


def test_observation_numbers_are_checked():
    with pytest.raises(data.SbibmDataError, match="1 to 10"):
        data.reference_samples("two_moons", 11)


# -- reading -----------------------------------------------------------------------------------
@requires_sbibm
@pytest.mark.parametrize("name", sorted(TASKS))
def test_shapes_and_dtypes(name):
    task = get_task(name)
    assert data.observations(name).shape == (10, task.dim_x)
    assert data.true_parameters(name).shape == (10, task.dim_theta)
    ref = data.reference_samples(name, 1)
    assert ref.shape == (10_000, task.dim_theta) and ref.dtype == torch.float32
    assert torch.isfinite(ref).all()
    assert torch.isfinite(task.prior.log_prob(ref)).all()  # reference inside the prior


@requires_sbibm
def test_cached_but_returned_as_fresh_tensors():
    a = data.reference_samples("two_moons", 2)
    a.zero_()
    assert data.reference_samples("two_moons", 2).abs().sum() > 0
    assert data._read_csv.cache_info().hits > 0


# -- the official observations reproduce from their seeds ---------------------------------------
# sbibm made observation k by seeding torch with observation_seed k, drawing theta from the prior
# and simulating once. Our tasks draw in the same order and shapes, so on CPU a generator with
# that seed gives the same numbers: an exact check of priors, scales and noise.
REPRODUCIBLE = ["two_moons", "slcp", "gaussian_linear", "gaussian_linear_uniform",
                "gaussian_mixture", "bernoulli_glm", "bernoulli_glm_raw"]


@requires_sbibm
@pytest.mark.parametrize("name", REPRODUCIBLE)
def test_official_observations_reproduce_from_their_seeds(name):
    task = get_task(name)
    thetas, xs = [], []
    for k in range(1, 11):
        g = gen(data.observation_seed(name, k))
        theta = task.sample_prior(1, g)
        thetas.append(theta)
        xs.append(task.simulate(theta, g))
    # the GLM prior's Cholesky factor is computed in float64 here, in float32 by sbibm
    torch.testing.assert_close(torch.cat(thetas), data.true_parameters(name), rtol=1e-5,
                               atol=1e-5)
    torch.testing.assert_close(torch.cat(xs), data.observations(name), rtol=1e-5, atol=1e-5)


@requires_sbibm
def test_slcp_distractor_observations_hold_the_slcp_observations():
    perm = tasks.slcp_distractor_constants()[2]
    informative = perm < 8
    torch.testing.assert_close(data.observations("slcp_distractors")[:, informative],
                               data.observations("slcp")[:, perm[informative]])


@requires_sbibm
def test_glm_observations_are_the_summaries_of_the_raw_ones():
    raw = data.observations("bernoulli_glm_raw")
    torch.testing.assert_close(tasks.glm_summary(raw), data.observations("bernoulli_glm"),
                               rtol=1e-5, atol=1e-4)


# -- constants against sbibm's own files ---------------------------------------------------------
def _files(folder: str) -> Path:
    return data.tasks_dir() / folder / "files"


@requires_sbibm
def test_glm_constants_equal_sbibms_files():
    files = _files("bernoulli_glm")
    design = torch.load(files / "design_matrix.pt", weights_only=True)
    stimulus = torch.load(files / "stimulus_I.pt", weights_only=True)
    assert torch.equal(tasks.glm_design_matrix(), design)
    assert torch.equal(tasks.glm_design_matrix()[:, 1], stimulus)


class _Stub:
    """Stands in for pyro / torch.distributions classes while reading sbibm's pickle."""

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        self.state = state


class _StubUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.startswith(("pyro", "torch.distributions")):
            return type(name, (_Stub,), {})
        return super().find_class(module, name)


@requires_sbibm
def test_slcp_distractor_constants_equal_sbibms_pickles():
    files = _files("slcp")
    perm = torch.load(files / "permutation_idx.torch", weights_only=True)
    loc, scale_tril, ours = tasks.slcp_distractor_constants()
    assert torch.equal(ours, perm)
    stub_pickle = types.SimpleNamespace(Unpickler=_StubUnpickler, load=pickle.load,
                                        __name__="pickle")
    gmm = torch.load(files / "gmm.torch", pickle_module=stub_pickle, weights_only=False)
    mixture = gmm.state["_mixture_distribution"].state
    student = gmm.state["_component_distribution"].state["base_dist"].state
    torch.testing.assert_close(mixture["probs"], torch.full((20,), 0.05))
    assert torch.equal(student["df"], torch.full((20,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(student["loc"], loc, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(student["_unbroadcasted_scale_tril"], scale_tril, rtol=1e-12,
                               atol=1e-12)


# -- reference posterior samples against what they should be --------------------------------------
@requires_sbibm
def test_gaussian_linear_reference_matches_the_analytic_posterior():
    # prior N(0, 0.1 I), noise N(0, 0.1 I): posterior N(x / 2, 0.05 I)
    xs = data.observations("gaussian_linear").double()
    for k in range(1, 11):
        ref = data.reference_samples("gaussian_linear", k).double()
        n = ref.shape[0]
        assert (ref.mean(0) - xs[k - 1] / 2).abs().max() < 5 * math.sqrt(0.05 / n)
        cov = torch.cov(ref.T)
        tol = 5 * 0.05 * math.sqrt(2 / n)
        assert (cov - 0.05 * torch.eye(10, dtype=torch.float64)).abs().max() < tol


@requires_sbibm
def test_gaussian_linear_uniform_reference_matches_truncated_normals():
    # posterior: independent N(x_i, 0.1) truncated to [-1, 1]; compare the marginal means
    xs = data.observations("gaussian_linear_uniform").double()
    s = math.sqrt(0.1)
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    for k in (1, 5, 10):
        mu = xs[k - 1]
        a, b = (-1 - mu) / s, (1 - mu) / s
        z = normal.cdf(b) - normal.cdf(a)
        pdf = lambda t: normal.log_prob(t).exp()  # noqa: E731
        mean = mu + s * (pdf(a) - pdf(b)) / z
        ref = data.reference_samples("gaussian_linear_uniform", k).double()
        assert (ref.mean(0) - mean).abs().max() < 5 * s / math.sqrt(ref.shape[0])


@requires_sbibm
def test_two_moons_reference_samples_lie_on_the_crescent():
    # every reference theta must be able to produce the observation: x_o minus theta's shift
    # is a point of the half circle, radius ~ N(0.1, 0.01^2), u >= 0
    xs = data.observations("two_moons").double()
    for k in range(1, 11):
        ref = data.reference_samples("two_moons", k).double()
        z0 = (ref[:, 0] + ref[:, 1]) / math.sqrt(2)
        z1 = (ref[:, 1] - ref[:, 0]) / math.sqrt(2)
        u = xs[k - 1, 0] + z0.abs() - 0.25
        v = xs[k - 1, 1] - z1
        r = torch.hypot(u, v)
        assert (u >= -1e-6).all()
        assert abs(r.mean() - 0.1) < 0.002 and abs(r.std() - 0.01) < 0.002
        # and both moons are present (the mirror images have z0 of both signs)
        assert 0.3 < (z0 > 0).double().mean() < 0.7 or (z0.abs() < 0.2).all()


@requires_sbibm
def test_gaussian_mixture_reference_matches_the_truncated_mixture():
    # posterior: 0.5 N(x, I) + 0.5 N(x, 0.01 I) restricted to the prior box [-10, 10]^2; the
    # share of samples within 0.5 of x (in both coordinates) follows in closed form
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)

    def box_mass(lo, hi, loc, scale):  # P(lo < N(loc, scale^2) < hi), both coordinates
        return (normal.cdf((hi - loc) / scale) - normal.cdf((lo - loc) / scale)).prod()

    xs = data.observations("gaussian_mixture").double()
    for k in range(1, 11):
        x = xs[k - 1]
        inner = [box_mass(torch.clamp(x - 0.5, min=-10), torch.clamp(x + 0.5, max=10), x, s)
                 for s in (1.0, 0.1)]
        total = [box_mass(-10, 10, x, s) for s in (1.0, 0.1)]
        expected = float(sum(inner) / sum(total))
        ref = data.reference_samples("gaussian_mixture", k).double()
        share = float(((ref - x).abs().max(1).values < 0.5).double().mean())
        assert abs(share - expected) < 5 * math.sqrt(expected * (1 - expected) / ref.shape[0])
