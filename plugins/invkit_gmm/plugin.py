"""Registers the prior, the forward processes and the ``gmm`` problem."""

from __future__ import annotations

import invkit
from invkit import ForwardProcess, InvkitError, Prior, Problem, ProblemSpec
from invkit_gmm import mixture

# "default" is tuned on the hard case (labels=some: one colour has four modes) for a 2-core
# CPU; docs/performance.md has the measurements behind it. Small batches and many steps pay: MMD
# costs grow with the square of the batch, its gradient quality much more slowly.
# The INN's own training (Ardizzone et al.): invkit's defaults for a new problem are the cINN
# recipe (docs/guide/plugin.md), so the INN and the optimiser it was tuned with are named here.
INN = {"model.kind": "inn", "train.lr": 1e-3, "train.betas": [0.8, 0.9],
       "data.validation": 0.0, "train.patience": 0, "train.keep_best": False, "train.ema": 0.0}
DEFAULT = {
    **INN, "model.n_blocks": 6, "model.subnet_width": 128, "model.subnet_depth": 2,
    "train.batch_size": 256, "train.steps": 4000, "train.lambda_y": 30.0,
    "train.y_noise": 0.02,
}
PRESETS = {
    "quick": {**DEFAULT, "train.steps": 300, "model.n_blocks": 4},
    "default": DEFAULT,
    # The authors' notebook: 8 GLOW blocks, width 512, 50 epochs x 8 iterations x batch 1600.
    "paper": {**INN, "model.n_blocks": 8, "model.subnet_width": 512, "model.subnet_depth": 1,
              "model.dim_total": 16, "model.dim_z": 2, "train.steps": 400,
              "train.batch_size": 1600, "train.lr_final": 1e-3, "train.lambda_y": 3.0,
              "train.y_noise": 0.1, "data.simulations": 8 * 1600 * 50},
}


@invkit.hookimpl
def invkit_register_priors(register):
    register(Prior(name="gmm_prior", dim=2, sample_fn=mixture.sample_mixture,
                   log_prob_fn=mixture.log_prob,
                   description="8 Gaussians on an octagon, std 0.2, equal weights"))


@invkit.hookimpl
def invkit_register_forward_processes(register):
    for labels in mixture.LABEL_MAPS:
        fn, n_colours = mixture.make_forward(labels)
        register(ForwardProcess(name=f"gmm_colour_{labels}", dim_x=2, dim_y=n_colours, fn=fn,
                                description=f"one-hot colour of the nearest mode ({labels})"))


def build(labels: str = "all") -> Problem:
    from invkit_gmm.evaluation import metrics
    from invkit_gmm.plots import plots

    if labels not in mixture.LABEL_MAPS:
        raise InvkitError(f"gmm: option labels must be one of {', '.join(mixture.LABEL_MAPS)}, "
                          f"got {labels!r} (e.g. --set labels=some).")
    return Problem(
        name="gmm", prior="gmm_prior", forward=f"gmm_colour_{labels}",
        description="8-mode Gaussian mixture; y is the one-hot colour of the mode",
        reference_posterior=mixture.make_reference_posterior(labels),
        metrics=metrics, plots=plots,
    )


@invkit.hookimpl
def invkit_register_problems(register):
    register(ProblemSpec(name="gmm", build=build, options={"labels": "all"}, presets=PRESETS,
                         description="8-mode Gaussian mixture of Ardizzone et al. "
                                     "(labels: all|some)"))
