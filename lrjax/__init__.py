"""lrjax: learning-rate scheduling for JAX and Optax."""

from lrjax.finder import FindLRResult, find_lr
from lrjax.plotting import plot_schedules
from lrjax.schedules import (FunctionSchedule, Schedule, clip, constant, cosine_decay,
                             cosine_restarts, create, cyclic, exponential_decay,
                             from_config, inverse_sqrt, inverse_time_decay, join, linear,
                             multistep_decay, one_cycle, piecewise_constant,
                             piecewise_linear, polynomial, product, scale,
                             schedule_names, step_decay, swa_schedule, warmup,
                             warmup_cosine_decay, wsd)
from lrjax.stateful import (ScheduleState, StatefulSchedule, greedy, observe,
                            reduce_on_plateau, window_decay)
from lrjax.transforms import (as_transform, ema_params, hypergradient, lawa,
                              learned_controller, scheduled_weight_decay, swa, window_search)
from lrjax._inspection import averaged_params, current_lr, log_values
from lrjax._adapters import get_schedule

__version__ = "0.1.0"

__all__ = [
    "FunctionSchedule", "Schedule", "clip", "constant", "cosine_decay",
    "cosine_restarts", "create", "cyclic", "exponential_decay", "from_config",
    "inverse_sqrt", "inverse_time_decay", "join", "linear", "multistep_decay",
    "one_cycle", "piecewise_constant", "piecewise_linear", "plot_schedules",
    "polynomial", "product", "scale", "schedule_names", "step_decay", "warmup",
    "warmup_cosine_decay", "wsd", "__version__",
    "ScheduleState", "StatefulSchedule", "as_transform", "current_lr", "greedy", "observe",
    "reduce_on_plateau", "window_decay", "window_search", "averaged_params", "ema_params",
    "lawa", "scheduled_weight_decay", "hypergradient", "FindLRResult", "find_lr", "swa", "swa_schedule",
    "get_schedule", "log_values", "learned_controller",
]


def __getattr__(name):
  # ``lrjax.keras`` (the optional extra) loads on first use: ``import lrjax`` never imports Keras.
  if name == "meta":  # meta-training: loaded on first use
    import importlib
    return importlib.import_module("lrjax.meta")
  if name == "plan":  # loss-curve laws: loaded on first use
    import importlib
    return importlib.import_module("lrjax.plan")
  if name == "keras":
    import importlib
    return importlib.import_module("lrjax.keras")
  raise AttributeError(f"module 'lrjax' has no attribute {name!r}")
