"""The oscillator in plain numpy: no invkit, no torch; its noise from the Generator it is given.

x = (log w, zeta): natural frequency (log) and damping ratio (0 < zeta < 1, underdamped);
y = the position at ``TIMES`` plus N(0, ``NOISE``^2) measurement noise.
"""

from __future__ import annotations

import numpy as np

TIMES = np.linspace(0.5, 6.0, 8)
"""Observation times."""
NOISE = 0.05
"""Standard deviation of the measurement noise."""
LOG_W = (0.0, 0.3)
"""Prior of log w: normal (mean, std)."""
ZETA = (0.05, 0.6)
"""Prior of zeta: uniform (low, high)."""


def positions(x: np.ndarray) -> np.ndarray:
    """Noise-free positions (n, len(TIMES)) for parameters x (n, 2)."""
    w = np.exp(x[:, :1])
    zeta = np.clip(x[:, 1:2], 1e-6, 1 - 1e-6)
    wd = w * np.sqrt(1 - zeta**2)
    t = TIMES[None, :]
    return np.exp(-zeta * w * t) * (np.cos(wd * t) + zeta * w / wd * np.sin(wd * t))


def simulate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noisy observations (n, len(TIMES)): what a lab's numpy simulator looks like."""
    return positions(x) + rng.normal(0.0, NOISE, size=(x.shape[0], TIMES.size))
