"""Stateful schedules: the learning rate follows the training signal, state in a pytree."""

from lrjax.stateful._core import ScheduleState, StatefulSchedule
from lrjax.stateful._greedy import Greedy, GreedyStats, greedy
from lrjax.stateful._plateau import PlateauStats, ReduceOnPlateau, reduce_on_plateau
from lrjax.stateful._search import WindowSearchState, window_search
from lrjax.stateful._transform import AsTransformState, as_transform, current_lr
from lrjax.stateful._window import WindowDecay, WindowStats, window_decay

__all__ = [
    "AsTransformState", "Greedy", "GreedyStats", "PlateauStats", "ReduceOnPlateau",
    "ScheduleState", "StatefulSchedule", "WindowDecay", "WindowStats", "as_transform",
    "current_lr", "greedy", "reduce_on_plateau", "window_decay", "WindowSearchState",
    "window_search",
]
