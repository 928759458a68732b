"""invkit reference plugin: ABC baselines (rejection and quantile) for any registered problem.

Registered through the ``invkit`` entry-point group as ``abc``: the baseline ``abc``.
"""

from invkit_abc.abc import quantile_abc, rejection_abc

__all__ = ["quantile_abc", "rejection_abc"]
