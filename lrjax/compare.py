"""Deprecated: moved to ``lrjax.bench.runner`` (runs) and ``lrjax.bench.report`` (table, files)."""

from lrjax._deprecation import moved_module

moved_module("lrjax.compare", "lrjax.bench.runner and lrjax.bench.report")

from lrjax.bench.report import format_table  # noqa: E402,F401
from lrjax.bench.runner import (DEFAULT_SCHEDULES, optimizers, run,  # noqa: E402,F401
                                steps_to_target)
