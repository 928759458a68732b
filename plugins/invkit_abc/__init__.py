"""invkit reference plugin: ABC baselines (rejection and quantile) for any registered problem.

Registered through the ``invkit`` entry-point group as ``abc``: the baseline ``abc``. Both
samplers use only ``problem.sample_prior`` and ``problem.simulate``. They stream one shared
pool of simulations past all targets at once, chunk by chunk (:mod:`invkit_abc.stream`), so
memory is bounded by the chunk size and the number of kept samples, never by the budget; a
conservative prefilter (:mod:`invkit_abc.prefilter`) keeps the exact distance computations
to the few candidates.
"""

from invkit_abc.quantile import quantile_abc
from invkit_abc.rejection import rejection_abc

__all__ = ["quantile_abc", "rejection_abc"]
