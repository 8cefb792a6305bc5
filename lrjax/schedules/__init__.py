"""Pure schedules: ``step -> learning rate``, immutable JAX pytrees."""

from lrjax.schedules._base import (FunctionSchedule, Schedule, create, from_config,
                                   schedule_names)
from lrjax.schedules._combinators import clip, join, product, scale
from lrjax.schedules._cosine import (cosine_decay, cosine_restarts, cyclic, one_cycle,
                                     warmup_cosine_decay)
from lrjax.schedules._decay import (constant, exponential_decay, inverse_sqrt,
                                    inverse_time_decay, linear, multistep_decay,
                                    polynomial, step_decay)
from lrjax.schedules._piecewise import piecewise_constant, piecewise_linear
from lrjax.schedules._swa import swa_schedule
from lrjax.schedules._warmup import warmup, wsd

__all__ = [
    "FunctionSchedule", "Schedule", "clip", "constant", "cosine_decay",
    "cosine_restarts", "create", "cyclic", "exponential_decay", "from_config",
    "inverse_sqrt", "inverse_time_decay", "join", "linear", "multistep_decay",
    "one_cycle", "piecewise_constant", "piecewise_linear", "polynomial", "product",
    "scale", "schedule_names", "step_decay", "swa_schedule", "warmup", "warmup_cosine_decay", "wsd",
]
