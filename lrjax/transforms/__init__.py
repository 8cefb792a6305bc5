"""Transformations around Optax optimizers: weight averaging and scheduled weight decay."""

from lrjax.transforms._averaging import (EmaParamsState, LawaState, SwaState, averaged_params,
                                         ema_params, lawa, swa)
from lrjax.transforms._hypergradient import HypergradientState, hypergradient
from lrjax.transforms._weight_decay import WeightDecayState, scheduled_weight_decay

__all__ = [
    "EmaParamsState", "HypergradientState", "hypergradient", "LawaState", "SwaState", "WeightDecayState", "averaged_params",
    "ema_params", "lawa", "scheduled_weight_decay", "swa",
]
