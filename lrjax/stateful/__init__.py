"""Stateful schedules: the learning rate follows the training signal, state in a pytree.

This package holds the ``StatefulSchedule``s and their shared core only; the
transformations built around optimizers live in ``lrjax.transforms`` and the
state readers (``current_lr``) in ``lrjax`` itself.
"""

from lrjax._deprecation import moved
from lrjax.stateful._core import ScheduleState, StatefulSchedule
from lrjax.stateful._greedy import Greedy, GreedyStats, greedy
from lrjax.stateful._observe import observe
from lrjax.stateful._plateau import PlateauStats, ReduceOnPlateau, reduce_on_plateau
from lrjax.stateful._window import WindowDecay, WindowStats, window_decay

__all__ = [
    "Greedy", "GreedyStats", "PlateauStats", "ReduceOnPlateau", "ScheduleState",
    "StatefulSchedule", "WindowDecay", "WindowStats", "greedy", "observe", "reduce_on_plateau",
    "window_decay",
]

__getattr__ = moved("lrjax.stateful", {
    "as_transform": "lrjax.transforms", "AsTransformState": "lrjax.transforms",
    "window_search": "lrjax.transforms", "WindowSearchState": "lrjax.transforms",
    "current_lr": "lrjax",
})
