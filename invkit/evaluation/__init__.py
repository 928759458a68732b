"""Evaluation: the benchmark metrics (Err_post, Err_resim, MMD), calibration diagnostics (SBC
ranks, expected coverage), the reference posterior, and what a run reports.

The metrics and diagnostics are public API for plugins and scripts::

    from invkit.evaluation import err_post, mmd
"""

from invkit.evaluation.calibration import expected_coverage, rank_uniformity, sbc_ranks
from invkit.evaluation.metrics import err_post, err_resim, mmd, mmd_batched

__all__ = ["err_post", "err_resim", "expected_coverage", "mmd", "mmd_batched",
           "rank_uniformity", "sbc_ranks"]
