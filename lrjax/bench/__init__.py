"""The bench wing: real tasks, a pure training unroll, the ``lrjax compare`` runner and report.

- ``Task`` and ``compare``: your own model under every schedule (``lrjax compare --task
  module:function`` on the command line).
- ``tasks``: data and models (digits, regression, charlm); the ``tasks`` extra.
- ``unroll``: ``unroll`` (pure, ``vmap``-able), ``population`` (every seed and peak of a
  schedule in one compiled program) and ``train`` (compiled chunks, host callbacks).
- ``runner``: the optimizers ``compare`` knows, the runs, the best peak, steps-to-target.
- ``report``: the table, JSON, CSV and curves.
"""

from lrjax.bench.report import Report
from lrjax.bench.runner import compare
from lrjax.bench.tasks import Task

__all__ = ["Report", "Task", "compare"]
