"""Warmup wrappers and warmup-stable-decay."""

from __future__ import annotations

from typing import Any, Callable, Union

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _validation as v
from lrjax._numerics import as_float
from lrjax.schedules._base import (Schedule, as_schedule, fraction, lerp, public, schedule_class,
                                   static, warmup_steps_for)
from lrjax.schedules._cosine import cosine_between, half_cosine

ArrayLike = jax.typing.ArrayLike
ScheduleLike = Union[Schedule, Callable[[jax.Array], jax.Array], float]

_WARMUP_SHAPES = ("linear", "cosine", "exponential")


def ramp(init, target, frac, shape: str):
  """From ``init`` (frac 0) to ``target`` (frac 1) in the given shape."""
  if shape == "linear":
    return lerp(init, target, frac)
  if shape == "cosine":
    return cosine_between(init, target, frac)
  return init * (target / init) ** frac


@schedule_class("warmup")
class Warmup(Schedule):
  schedule: Schedule
  warmup_steps: Any
  init_value: Any = 0.0
  shape: str = static(default="linear")

  def _value(self, t):
    w = as_float(self.warmup_steps)
    target = self.schedule(0)
    frac = t / jnp.where(w > 0, w, 1)
    up = ramp(as_float(self.init_value), target, frac, self.shape)
    return jnp.where(t < w, up, self.schedule(jnp.maximum(t - w, 0)))


@public(preset=lambda steps, peak: dict(schedule=peak, warmup_steps=warmup_steps_for(steps)))
def warmup(schedule: ScheduleLike, warmup_steps: ArrayLike, init_value: ArrayLike = 0.0,
           shape: str = "linear") -> Schedule:
  r"""Prepends a warmup ramp to ``schedule``.

  With :math:`W` warmup steps, :math:`s` = ``schedule`` and :math:`q = t / W`:

  .. math::
    \eta_t = \begin{cases} \mathrm{ramp}(I, s(0), q) & t < W \\
    s(t - W) & t \ge W \end{cases}

  where the ramp is linear :math:`I + (s(0) - I) q`, cosine
  :math:`s(0) + (I - s(0))(1 + \cos \pi q)/2`, or exponential
  :math:`I (s(0)/I)^{q}` (needs :math:`I > 0` and :math:`s(0) > 0`).
  The joint is continuous: the ramp reaches :math:`s(0)` at :math:`t = W`.

  Args:
    schedule: the schedule after warmup (an lrjax or Optax schedule, or a float).
    warmup_steps: ``W`` >= 0 (0 means no warmup).
    init_value: value ``I`` at step 0.
    shape: ``"linear"``, ``"cosine"`` or ``"exponential"``.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.warmup(lrjax.constant(1.0), 10)
    >>> [round(float(s(t)), 2) for t in (0, 5, 10, 100)]
    [0.0, 0.5, 1.0, 1.0]

  References:
    Goyal et al., `Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour
    <https://arxiv.org/abs/1706.02677>`_, 2017.
  """
  fn = "warmup"
  schedule = as_schedule(schedule, fn, "schedule")
  v.non_negative(fn, "warmup_steps", warmup_steps)
  v.one_of(fn, "shape", shape, _WARMUP_SHAPES)
  if shape == "exponential":
    v.check(fn, "init_value", init_value, lambda a: a > 0, "> 0 for shape='exponential'")
    try:
      target = float(np.asarray(schedule(0)))
    except (TypeError, jax.errors.ConcretizationTypeError):
      target = None  # traced: unknown until run time
    if target is not None and not target > 0:
      raise ValueError(f"lrjax.warmup: schedule(0) must be > 0 for shape='exponential', "
                       f"got schedule(0)={target!r}")
  return Warmup(schedule, warmup_steps, init_value, shape)


_DECAY_SHAPES = ("1-sqrt", "linear", "cosine")


@schedule_class("wsd")
class WSD(Schedule):
  peak_value: Any
  warmup_steps: Any
  stable_steps: Any
  decay_steps: Any
  init_value: Any = 0.0
  end_value: Any = 0.0
  decay_shape: str = static(default="1-sqrt")

  def _value(self, t):
    peak, init, end = (as_float(x) for x in (self.peak_value, self.init_value,
                                             self.end_value))
    w = as_float(self.warmup_steps)
    up = lerp(init, peak, t / jnp.where(w > 0, w, 1))
    d = as_float(self.decay_steps)
    frac = fraction(t - w - self.stable_steps, d)
    if self.decay_shape == "1-sqrt":
      shape = 1 - jnp.sqrt(frac)
    elif self.decay_shape == "linear":
      shape = 1 - frac
    else:
      shape = half_cosine(frac)
    return jnp.where(t < w, up, lerp(end, peak, shape))


@public(preset=lambda steps, peak: dict(
    peak_value=peak, warmup_steps=warmup_steps_for(steps),
    stable_steps=max(steps - warmup_steps_for(steps) - steps // 5, 0),
    decay_steps=max(steps // 5, 1)))
def wsd(peak_value: ArrayLike, warmup_steps: ArrayLike, stable_steps: ArrayLike,
        decay_steps: ArrayLike, init_value: ArrayLike = 0.0, end_value: ArrayLike = 0.0,
        decay_shape: str = "1-sqrt") -> Schedule:
  r"""Warmup-stable-decay: linear warmup, a long constant stage, a short cooldown.

  With :math:`k = \min(\max(t - W - S, 0), D)`:

  .. math::
    \eta_t = \begin{cases} I + (P - I)\,t/W & t < W \\
    E + (P - E)\, f(k / D) & t \ge W \end{cases}

  with :math:`f(q) = 1 - \sqrt q` (``"1-sqrt"``, Hägele et al.), :math:`1 - q`
  (``"linear"``) or :math:`(1 + \cos \pi q)/2` (``"cosine"``); :math:`f = 1`
  through the stable stage. Hägele et al. find a 10–20% cooldown matches
  cosine decay, and the stable stage can be resumed to train longer.

  Args:
    peak_value: ``P``, held through the stable stage.
    warmup_steps: ``W`` >= 0.
    stable_steps: ``S`` >= 0.
    decay_steps: cooldown length ``D`` > 0.
    init_value: ``I``, the value at step 0.
    end_value: ``E``, reached at ``W + S + D`` and held.
    decay_shape: ``"1-sqrt"``, ``"linear"`` or ``"cosine"``.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.wsd(1.0, 10, 80, 10)
    >>> [round(float(s(t)), 3) for t in (0, 5, 10, 90, 95, 100)]
    [0.0, 0.5, 1.0, 1.0, 0.293, 0.0]

  References:
    Hu et al., `MiniCPM <https://arxiv.org/abs/2404.06395>`_, 2024;
    Hägele et al., `Scaling Laws and Compute-Optimal Training Beyond Fixed
    Training Durations <https://arxiv.org/abs/2405.18392>`_, 2024.
  """
  fn = "wsd"
  v.non_negative(fn, "warmup_steps", warmup_steps)
  v.non_negative(fn, "stable_steps", stable_steps)
  v.positive(fn, "decay_steps", decay_steps)
  v.one_of(fn, "decay_shape", decay_shape, _DECAY_SHAPES)
  return WSD(peak_value, warmup_steps, stable_steps, decay_steps, init_value, end_value,
             decay_shape)
