import pytest
import torch

from invkit import get_problem
from invkit_gmm.evaluation import exact_mode_masses, mode_masses
from invkit_gmm.mixture import MODES, nearest_mode


def test_mixture_index_is_drawn_per_sample():
    # sbibm's GMM once drew one index per batch; one batch must cover every mode evenly
    p = get_problem("gmm")
    x = p.sample_prior(80_000, torch.Generator().manual_seed(0))
    counts = torch.bincount(nearest_mode(x), minlength=8).float() / x.shape[0]
    assert torch.allclose(counts, torch.full((8,), 1 / 8), atol=0.01)
    spread = (x - MODES[nearest_mode(x)]).std(0)
    assert torch.allclose(spread, torch.full((2,), 0.2), atol=0.01)


@pytest.mark.parametrize("labels,dim_y", [("all", 8), ("some", 4)])
def test_forward_is_the_colour(labels, dim_y):
    p = get_problem("gmm", labels=labels)
    assert p.dim_y == dim_y
    y = p.simulate(MODES)
    assert torch.all(y.sum(1) == 1)
    expected = [0, 1, 2, 3, 4, 5, 6, 7] if labels == "all" else [0, 0, 0, 0, 1, 1, 2, 3]
    assert y.argmax(1).tolist() == expected


def test_reference_posterior_is_the_restricted_mixture():
    p = get_problem("gmm", labels="some")
    gen = torch.Generator().manual_seed(1)
    ref = p.reference_posterior(torch.eye(4), 20_000, gen)
    assert ref.shape == (4, 20_000, 2)
    for c in range(4):
        q = mode_masses(ref[c])
        assert (q - exact_mode_masses("some", c)).abs().max() < 0.02


def test_bad_label_map():
    with pytest.raises(Exception, match="labels must be one of"):
        get_problem("gmm", labels="few")
