"""Gradient transformations: every ``optax.GradientTransformation`` lrjax builds.

Those that own a learning rate (``hypergradient``, ``window_search``,
``learned_controller``) share one
skeleton (``_lr_owner.LROwner``); ``as_transform`` turns a stateful schedule
into a transformation; the rest average the weights or decay them.
"""

from lrjax._deprecation import moved
from lrjax.transforms._as_transform import AsLearningRateState, AsTransformState, as_transform
from lrjax.transforms._averaging import (EmaParamsState, LawaState, SwaState, ema_params, lawa,
                                         swa)
from lrjax.transforms._hypergradient import HypergradientState, hypergradient
from lrjax.transforms._learned import LearnedControllerState, learned_controller
from lrjax.transforms._weight_decay import WeightDecayState, scheduled_weight_decay
from lrjax.transforms._window_search import WindowSearchState, window_search

__all__ = [
    "AsLearningRateState", "AsTransformState", "EmaParamsState", "HypergradientState",
    "LearnedControllerState", "learned_controller",
    "LawaState", "SwaState", "WeightDecayState", "WindowSearchState", "as_transform",
    "ema_params", "hypergradient", "lawa", "scheduled_weight_decay", "swa", "window_search",
]

__getattr__ = moved("lrjax.transforms", {"averaged_params": "lrjax"})
