"""The bench wing: real tasks, a pure training unroll, the ``lrjax compare`` runner and report.

- ``tasks``: data and models (digits, regression, charlm); the ``tasks`` extra.
- ``unroll``: ``unroll`` (pure, ``vmap``-able) and ``train`` (compiled chunks, evaluations).
- ``runner``: the optimizers ``compare`` knows, the runs, steps-to-target.
- ``report``: the table, JSON, CSV and curves.
"""
