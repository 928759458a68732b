"""The sbibm 1.1.0 benchmark tasks for invkit.

``tasks``: priors and simulators in batched torch (sbibm's names: ``theta`` parameters,
``x`` data). ``data``: the official observations and reference posterior samples, read from
``pip install --no-deps sbibm==1.1.0``. ``plugin``: registers each task as the invkit problem
``sbibm_<task>``.
"""

from invkit_sbibm.tasks import TASKS, Task, get_task

__version__ = "0.1.0"
__all__ = ["TASKS", "Task", "get_task", "__version__"]
