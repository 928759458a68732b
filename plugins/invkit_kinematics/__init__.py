"""invkit reference plugin: the 4-DoF planar arm (inverse kinematics benchmark of Kruse et al.).

Registered through the ``invkit`` entry-point group as ``kinematics``: the prior
``kinematics_prior``, the forward process ``kinematics_arm`` and the problem ``kinematics``.
"""

from invkit_kinematics.arm import LENGTHS, SIGMA, arm_points, forward, prior_log_prob, sample_prior

__all__ = ["LENGTHS", "SIGMA", "arm_points", "forward", "prior_log_prob", "sample_prior"]
