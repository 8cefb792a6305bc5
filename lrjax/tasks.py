"""Deprecated: moved to ``lrjax.bench.tasks`` (tasks) and ``lrjax.bench.unroll`` (training)."""

from lrjax._deprecation import moved_module

moved_module("lrjax.tasks", "lrjax.bench.tasks and lrjax.bench.unroll")

from lrjax.bench.tasks import (CHARLM_MODULES, TASKS, Task, charlm_corpus,  # noqa: E402,F401
                               charlm_task, digits_task, get_task, regression_task)
from lrjax.bench.unroll import TrainResult, train  # noqa: E402,F401
