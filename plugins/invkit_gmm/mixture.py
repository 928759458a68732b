"""The mixture itself: 8 modes on an octagon, std 0.2, equal weights, colour label maps."""

from __future__ import annotations

import math

import torch
from torch import Tensor

_A = 1.0 + math.sqrt(2.0)  # 2.4142...
# Counter-clockwise around the octagon, starting at 22.5 degrees.
MODES = torch.tensor([
    [_A, 1.0], [1.0, _A], [-1.0, _A], [-_A, 1.0],
    [-_A, -1.0], [-1.0, -_A], [1.0, -_A], [_A, -1.0],
])
STD = 0.2
LABEL_MAPS = {
    "all": (0, 1, 2, 3, 4, 5, 6, 7),  # 8 colours, one per mode
    "some": (0, 0, 0, 0, 1, 1, 2, 3),  # 4 colours: colour 0 has four modes
}


def sample_mixture(n: int, gen: torch.Generator) -> Tensor:
    """Draw the mixture index per sample (not once per batch), then the Gaussian around it."""
    dev = gen.device
    idx = torch.randint(len(MODES), (n,), generator=gen, device=dev)
    return MODES.to(dev)[idx] + STD * torch.randn(n, 2, generator=gen, device=dev)


def log_prob(x: Tensor) -> Tensor:
    modes = MODES.to(x.device, x.dtype)
    d2 = ((x[:, None, :] - modes[None]) ** 2).sum(-1)
    log_comp = -0.5 * d2 / STD**2 - math.log(2 * math.pi * STD**2)
    return torch.logsumexp(log_comp, dim=1) - math.log(len(MODES))


def nearest_mode(x: Tensor) -> Tensor:
    """Index of the nearest mode; equal weights and std make this the most probable one."""
    return torch.cdist(x, MODES.to(x.device, x.dtype)).argmin(dim=1)


def colour_of_modes(labels: str) -> Tensor:
    return torch.tensor(LABEL_MAPS[labels])


def make_forward(labels: str):
    """One-hot colour of the mode each point belongs to (the nearest; modes barely overlap)."""
    colours = colour_of_modes(labels)
    n_colours = int(colours.max()) + 1

    def forward(x: Tensor) -> Tensor:
        c = colours.to(x.device)[nearest_mode(x)]
        return torch.nn.functional.one_hot(c, n_colours).to(x.dtype)

    return forward, n_colours


def make_reference_posterior(labels: str):
    """Exact posterior: the mixture restricted to the modes of the observed colour."""
    colours = colour_of_modes(labels)
    n_colours = int(colours.max()) + 1
    # members[c] lists the modes of colour c, padded by repetition for vectorised choice
    members = [torch.nonzero(colours == c).flatten() for c in range(n_colours)]
    width = max(len(m) for m in members)
    table = torch.stack([m.repeat(width)[:width] for m in members])
    counts = torch.tensor([len(m) for m in members])

    def reference(y: Tensor, n: int, gen: torch.Generator) -> Tensor:
        dev = y.device
        c = y.argmax(dim=1).to(dev)
        k = counts.to(dev)[c]
        u = torch.rand(y.shape[0], n, generator=gen, device=dev)
        pick = (u * k[:, None]).long().clamp_max(width - 1)
        idx = table.to(dev)[c[:, None], pick]
        noise = torch.randn(y.shape[0], n, 2, generator=gen, device=dev)
        return MODES.to(dev)[idx] + STD * noise

    return reference
