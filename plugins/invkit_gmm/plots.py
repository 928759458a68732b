"""The mixture's figure: forward (test points coloured by predicted label) and inverse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from invkit_gmm.mixture import MODES  # noqa: E402

N_POINTS = 4000


def plots(ctx: Any) -> list[Path]:
    post = ctx.posterior
    n_colours = ctx.problem.dim_y
    cmap = plt.get_cmap("tab10")
    x = ctx.x_test[:N_POINTS]
    learns_forward = getattr(post, "learns_forward", True)
    # a cINN learns no forward process: then the panel shows the true labels
    pred = (post.predict(x) if learns_forward else ctx.y_test[:N_POINTS]).argmax(dim=1).cpu()
    x = x.cpu()
    samples = post.sample(torch.eye(n_colours, device=ctx.device), 1000,
                          generator=ctx.generator).cpu()
    fig, (ax_f, ax_i) = plt.subplots(1, 2, figsize=(10, 5), constrained_layout=True)
    ax_f.scatter(x[:, 0], x[:, 1], c=[cmap(int(c)) for c in pred], s=2)
    ax_f.set_title("forward: test points coloured by predicted label" if learns_forward
                   else "test points coloured by true label (the model learns no forward)")
    for c in range(n_colours):
        ax_i.scatter(samples[c, :, 0], samples[c, :, 1], s=2, color=cmap(c), alpha=0.5,
                     label=f"colour {c}")
    ax_i.scatter(MODES[:, 0], MODES[:, 1], marker="x", color="k", s=60, label="true modes")
    ax_i.set_title("inverse: posterior samples for each colour")
    for ax in (ax_f, ax_i):
        ax.set_aspect("equal")
        ax.set_xlim(-3.8, 3.8)
        ax.set_ylim(-3.8, 3.8)
    ax_i.legend(fontsize=7, markerscale=3, loc="center")
    path = Path(ctx.plot_dir) / "gmm_forward_inverse.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
