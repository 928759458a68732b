"""Classifier two-sample test (C2ST) exactly as sbibm 1.1.0 computes it.

C2ST is the accuracy of a classifier trained to tell two samples apart: 0.5 when they come from
the same distribution, 1.0 when they do not overlap. sbibm's recipe, which the published
benchmark figures use and which this module follows step by step so that its numbers can be
set beside them:

1. z-score both samples with the *first* sample's mean and (unbiased) standard deviation;
2. an MLP classifier (scikit-learn ``MLPClassifier``): ReLU, two hidden layers of ``10 * dim``
   units, Adam, ``max_iter=10000``, ``random_state=seed``, everything else scikit-learn's
   defaults (so no early stopping on a validation split: training stops when the training loss
   has not improved by 1e-4 for 10 epochs);
3. 5-fold cross-validation over the pooled samples, folds shuffled with ``random_state=seed``;
4. the mean of the 5 held-out accuracies.

Inputs are cast to float32 first, as sbibm's are. Given the same float32 samples and seed,
:func:`c2st` returns the same number as sbibm's ``c2st`` (the tests check it). The test is
meant for equal sample sizes (the benchmark uses 10,000 against 10,000); with unequal sizes
chance accuracy is not 0.5.

Cost: one call trains 5 MLPs on CPU with scikit-learn until their training loss stalls, so it
depends on how hard the pair is to separate as well as on the dimension. Measured with
``benchmarks/c2st_check.py`` (10,000 vs 10,000 samples, one pinned core of a 2-core machine
under a load of 3 to 4): Gaussian pairs 2.6 to 3.7 s in 2-D, 37 to 70 s in 5-D, 140 to 230 s in
10-D; two_moons reference samples against a noisy copy 2 s (noise 0.01 std) to 50 s (0.05 std).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from invkit.errors import InvkitError


def _as_float32(samples: Any, what: str) -> Tensor:
    t = torch.as_tensor(samples).detach().to(device="cpu", dtype=torch.float32)
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2 or t.shape[0] < 2:
        raise InvkitError(f"C2ST: {what} must be an (n, dim) array of samples with n >= 2, "
                          f"got shape {tuple(t.shape)}.")
    if not torch.isfinite(t).all():
        raise InvkitError(f"C2ST: {what} contains NaN or infinite values.")
    return t


def _sklearn() -> Any:
    """scikit-learn's modules, or an error that says how to get them."""
    try:
        import sklearn.model_selection
        import sklearn.neural_network
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InvkitError("C2ST needs scikit-learn: pip install scikit-learn") from exc
    return sklearn


def _classifier(dim: int, seed: int) -> Any:
    """sbibm's classifier: everything not named here is scikit-learn's default."""
    return _sklearn().neural_network.MLPClassifier(
        activation="relu",
        hidden_layer_sizes=(10 * dim, 10 * dim),
        max_iter=10000,
        solver="adam",
        random_state=seed,
    )


def c2st(
    x: Any,
    y: Any,
    *,
    seed: int = 1,
    n_folds: int = 5,
    z_score: bool = True,
    noise_scale: float | None = None,
    scoring: str = "accuracy",
) -> float:
    """Mean cross-validated accuracy of an MLP telling ``x`` from ``y`` (both ``(n, dim)``).

    ~0.5: indistinguishable; 1.0: fully separated. Deterministic for a given ``seed``
    (which seeds the classifier's initialisation and batches and the fold split, as in sbibm).
    ``noise_scale`` adds Gaussian noise of that std to both samples after z-scoring; unlike
    sbibm (which draws it from torch's global RNG) the noise comes from a generator seeded with
    ``seed``. ``scoring="roc_auc"`` gives sbibm's ``c2st_auc``.
    """
    model_selection = _sklearn().model_selection
    a, b = _as_float32(x, "the first sample"), _as_float32(y, "the second sample")
    if a.shape[1] != b.shape[1]:
        raise InvkitError(f"C2ST: the samples have different dimensions ({a.shape[1]} and "
                          f"{b.shape[1]}).")
    if n_folds < 2 or a.shape[0] + b.shape[0] < n_folds:
        raise InvkitError(f"C2ST: n_folds must be at least 2 and at most the number of "
                          f"samples, got {n_folds}.")
    if z_score:
        mean, std = a.mean(0), a.std(0)
        if not bool((std > 0).all()):
            raise InvkitError("C2ST: the first sample is constant in some coordinate, so it "
                              "cannot be z-scored; pass z_score=False.")
        a, b = (a - mean) / std, (b - mean) / std
    if noise_scale is not None:
        gen = torch.Generator().manual_seed(seed)
        a = a + noise_scale * torch.randn(a.shape, generator=gen)
        b = b + noise_scale * torch.randn(b.shape, generator=gen)

    data = np.concatenate((a.numpy(), b.numpy()))
    target = np.concatenate((np.zeros((a.shape[0],)), np.ones((b.shape[0],))))
    folds = model_selection.KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    classifier = _classifier(a.shape[1], seed)
    scores = model_selection.cross_val_score(classifier, data, target, cv=folds, scoring=scoring)
    return float(np.asarray(np.mean(scores)).astype(np.float32))
