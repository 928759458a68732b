"""Simulations as scientists have them: any simulator, a budget, a cache, or a file.

* :func:`simulate`: ``n`` pairs (x, y) of a problem, reproducible from a seed whatever the
  number of worker processes, cached block by block, with NaN rows dropped or refused;
* :func:`external_program`: a forward process that runs a command (CSV in, CSV out);
* :func:`read_simulations` and :func:`file_problem`: pairs read from ``.npz`` / ``.npy`` /
  ``.csv`` files, and a problem made of such a file (:data:`FILE_PROBLEM_SPEC` registers it
  as the built-in problem ``file``).

The guide page ``docs/guide/simulators.md`` shows each kind of simulator.
"""

from invkit.simulation.blocks import (
    BLOCK_NUMPY,
    BLOCK_PER_SAMPLE,
    BLOCK_TORCH,
    block_seed,
    default_block_size,
)
from invkit.simulation.cache import BlockCache
from invkit.simulation.external import ExternalProgramError, external_program
from invkit.simulation.file_problem import FILE_PROBLEM_SPEC, file_problem
from invkit.simulation.files import FileSimulations, read_simulations
from invkit.simulation.policy import NAN_POLICIES
from invkit.simulation.stream import SimulationResult, cache_folder, simulate

__all__ = [
    "BLOCK_NUMPY", "BLOCK_PER_SAMPLE", "BLOCK_TORCH", "BlockCache", "ExternalProgramError",
    "FILE_PROBLEM_SPEC", "FileSimulations", "NAN_POLICIES", "SimulationResult", "block_seed",
    "cache_folder", "default_block_size", "external_program", "file_problem",
    "read_simulations", "simulate",
]
