"""C2ST as sbibm computes it: chance level, separation, reproducibility, and agreement with sbibm's
own ``c2st`` (loaded from the installed sbibm wheel's file; skipped without it)."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from invkit.errors import InvkitError  # noqa: E402
from invkit.evaluation.c2st import c2st  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _sbibm_c2st():
    """sbibm 1.1.0's ``c2st`` function, imported from its file (the package itself cannot be
    imported without sbibm's dependencies); None when sbibm is not installed."""
    spec = importlib.util.find_spec("sbibm")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "metrics" / "c2st.py"
    if not path.is_file():
        return None
    mod_spec = importlib.util.spec_from_file_location("_sbibm_c2st_under_test", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.c2st


def draw(n: int, dim: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(n, dim, generator=g)
    out[:, 0] += shift
    return out


def test_identical_distributions_give_chance():
    assert abs(c2st(draw(2000, 2, 0), draw(2000, 2, 1)) - 0.5) < 0.04


def test_well_separated_distributions_give_one():
    assert c2st(draw(200, 3, 0), draw(200, 3, 1, shift=8.0)) > 0.99


def test_a_moderate_shift_lands_between():
    # N(0, 1) vs N(1, 1) in one coordinate: the Bayes classifier's accuracy is Phi(0.5) = 0.69
    value = c2st(draw(1500, 2, 2), draw(1500, 2, 3, shift=1.0))
    assert 0.66 < value < 0.72


@pytest.fixture
def short_training(monkeypatch):
    """Cap the classifier's epochs: for tests of the plumbing around it, which do not need the
    full training (small samples would train up to 10,000 epochs)."""
    from sklearn.neural_network import MLPClassifier

    def short(**kwargs):
        return MLPClassifier(**{**kwargs, "max_iter": 20})

    import invkit.evaluation.c2st as module

    original = module._classifier
    monkeypatch.setattr(module, "_classifier",
                        lambda dim, seed: short(**original(dim, seed).get_params()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield short


def test_seeded_and_reproducible(short_training):
    a, b = draw(400, 2, 4), draw(400, 2, 5, shift=0.5)
    assert c2st(a, b, seed=3) == c2st(a, b, seed=3)
    assert c2st(a, b, seed=3, noise_scale=0.1) == c2st(a, b, seed=3, noise_scale=0.1)
    assert c2st(a, b, seed=3, noise_scale=0.1) != c2st(a, b, seed=3)


def test_accepts_numpy_float64_and_one_dimensional_samples(short_training):
    a, b = draw(300, 1, 6), draw(300, 1, 7, shift=0.4)
    expected = c2st(a, b)
    assert c2st(a.double().numpy(), b.double().numpy()) == expected
    assert c2st(a[:, 0], b[:, 0]) == expected


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(InvkitError, match="different dimensions"):
        c2st(draw(50, 2, 0), draw(50, 3, 1))
    bad = draw(50, 2, 0)
    bad[3, 1] = float("nan")
    with pytest.raises(InvkitError, match="NaN"):
        c2st(bad, draw(50, 2, 1))
    const = draw(50, 2, 0)
    const[:, 1] = 1.0
    with pytest.raises(InvkitError, match="z_score=False"):
        c2st(const, draw(50, 2, 1))


# -- agreement with sbibm's own c2st --------------------------------------------------------------
@pytest.fixture
def sbibm_c2st():
    theirs = _sbibm_c2st()
    if theirs is None:
        pytest.skip("sbibm not installed (pip install --no-deps sbibm==1.1.0)")
    return theirs


def test_classifier_and_folds_are_sbibms(sbibm_c2st, monkeypatch):
    """The classifier and the cross-validation are built with exactly sbibm's arguments."""
    import invkit.evaluation.c2st as ours_module

    seen = {}

    def recorder(tag):
        class Stop(Exception):
            pass

        def fake_cross_val_score(clf, data, target, cv, scoring):
            seen[tag] = (clf.get_params(), type(cv).__name__, cv.n_splits, cv.shuffle,
                         cv.random_state, scoring, data.dtype, data.shape, target.tolist())
            raise Stop

        return Stop, fake_cross_val_score

    import sklearn.model_selection as ms

    a, b = draw(30, 4, 0), draw(20, 4, 1)
    for tag, call in (("sbibm", lambda: sbibm_c2st(a, b, seed=7)),
                      ("invkit", lambda: ours_module.c2st(a, b, seed=7))):
        stop, fake = recorder(tag)
        monkeypatch.setattr(ms, "cross_val_score", fake)
        monkeypatch.setitem(sbibm_c2st.__globals__, "cross_val_score", fake)
        with pytest.raises(stop):
            call()
    assert seen["invkit"] == seen["sbibm"]
    params = seen["invkit"][0]
    assert params["hidden_layer_sizes"] == (40, 40) and params["max_iter"] == 10000
    assert params["early_stopping"] is False and params["random_state"] == 7


def test_agrees_with_sbibms_c2st_with_full_training(sbibm_c2st):
    a, b = draw(1500, 2, 10), draw(1500, 2, 11, shift=0.5)
    # same algorithm, same float32 inputs, same seed: the same number (sbibm's own
    # run-to-run noise over seeds is about 0.01 here)
    assert abs(c2st(a, b) - float(sbibm_c2st(a.clone(), b.clone())[0])) < 1e-6


AGREEMENT_PAIRS = [
    ("same", lambda: (draw(500, 2, 10), draw(500, 2, 11))),
    ("shift", lambda: (draw(500, 3, 12) * 3 + 1, draw(500, 3, 13, shift=0.5))),
    ("uniform vs normal", lambda: (torch.rand(400, 5, generator=torch.Generator().manual_seed(14))
                                   * 3.4 - 1.7, draw(400, 5, 15))),
]


@pytest.mark.parametrize("name,make", AGREEMENT_PAIRS, ids=[p[0] for p in AGREEMENT_PAIRS])
def test_agrees_with_sbibms_c2st(name, make, sbibm_c2st, short_training, monkeypatch):
    # both sides with the same capped classifier: z-scoring, folds, seeds and scoring agree
    monkeypatch.setitem(sbibm_c2st.__globals__, "MLPClassifier", short_training)
    a, b = make()
    for seed in (1, 2):
        ours = c2st(a, b, seed=seed)
        assert abs(ours - float(sbibm_c2st(a.clone(), b.clone(), seed=seed)[0])) < 1e-6
    ours_auc = c2st(a, b, scoring="roc_auc")
    assert abs(ours_auc - float(sbibm_c2st(a.clone(), b.clone(), scoring="roc_auc")[0])) < 1e-6
