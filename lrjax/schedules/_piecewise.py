"""Piecewise schedules, selected by binary search so compile time stays flat."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from lrjax import _validation as v
from lrjax._numerics import as_float
from lrjax.schedules._base import (Schedule, fraction, lerp, public, schedule_class,
                                   warmup_steps_for)
from lrjax.schedules._decay import _as_1d

ArrayLike = jax.typing.ArrayLike


def _check_breakpoints(fn: str, boundaries: Any, values: Any, extra: int) -> None:
  """``len(values) == len(boundaries) + extra``; boundaries >= 0 and strictly increasing."""
  if values.shape[0] != boundaries.shape[0] + extra:
    want = "len(boundaries)" + (f" + {extra}" if extra else "")
    raise ValueError(f"lrjax.{fn}: values must have {want} = {boundaries.shape[0] + extra} "
                     f"entries, got {values.shape[0]}")
  v.non_negative(fn, "boundaries", boundaries)
  v.increasing(fn, "boundaries", boundaries)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class _Breakpoints(Schedule):
  """Values at boundaries, written to a config as plain lists."""
  boundaries: Any
  values: Any

  def config_args(self):
    return {"boundaries": self.boundaries, "values": self.values}


@schedule_class("piecewise_constant")
class PiecewiseConstant(_Breakpoints):
  def _value(self, t):
    values = as_float(self.values)
    if jnp.size(self.boundaries) == 0:
      return jnp.broadcast_to(values[0], t.shape)
    idx = jnp.searchsorted(jnp.asarray(self.boundaries), t, side="right")
    return values[idx]


@public(preset=lambda steps, peak: dict(boundaries=[steps // 2, 3 * steps // 4],
                                       values=[peak, peak / 10, peak / 100]))
def piecewise_constant(boundaries: Sequence[ArrayLike],
                       values: Sequence[ArrayLike]) -> Schedule:
  r"""Constant pieces: ``values[i]`` on ``[boundaries[i-1], boundaries[i])``.

  .. math::
    \eta_t = v_{k(t)}, \qquad k(t) = \#\{i : b_i \le t\}

  so at a boundary step the next value applies (as PyTorch's ``MultiStepLR`` at a
  milestone). Keras' ``PiecewiseConstantDecay`` keeps the earlier value through the
  boundary step and switches one step later; elsewhere the two are equal. The piece is
  found by binary
  search (``jnp.searchsorted``): compile time and program size do not grow
  with the number of pieces (Optax's ``piecewise_constant_schedule`` unrolls a
  loop over them).

  Args:
    boundaries: strictly increasing steps >= 0.
    values: ``len(boundaries) + 1`` values.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.piecewise_constant([100, 200], [1.0, 0.1, 0.01])
    >>> [round(float(s(t)), 3) for t in (0, 99, 100, 250)]
    [1.0, 1.0, 0.1, 0.01]

  References:
    `keras.optimizers.schedules.PiecewiseConstantDecay <https://keras.io/api/optimizers/learning_rate_schedules/piecewise_constant_decay/>`_.
  """
  fn = "piecewise_constant"
  bounds, vals = _as_1d(fn, "boundaries", boundaries), _as_1d(fn, "values", values)
  _check_breakpoints(fn, bounds, vals, extra=1)
  return PiecewiseConstant(bounds, vals)


@schedule_class("piecewise_linear")
class PiecewiseLinear(_Breakpoints):
  def _value(self, t):
    xs, ys = as_float(self.boundaries), as_float(self.values)
    n = xs.shape[0]
    idx = jnp.searchsorted(xs, t, side="right")
    i0 = jnp.clip(idx - 1, 0, n - 1)
    i1 = jnp.clip(idx, 0, n - 1)
    x0, x1, y0, y1 = xs[i0], xs[i1], ys[i0], ys[i1]
    gap = x1 - x0
    return lerp(y0, y1, jnp.where(gap > 0, fraction(t - x0, gap), 0.0))


@public(preset=lambda steps, peak: dict(
    boundaries=[0, warmup_steps_for(steps), steps], values=[0.0, peak, 0.0]))
def piecewise_linear(boundaries: Sequence[ArrayLike],
                     values: Sequence[ArrayLike]) -> Schedule:
  r"""Linear interpolation through the points ``(boundaries[i], values[i])``.

  .. math::
    \eta_t = v_i + (v_{i+1} - v_i)\frac{t - b_i}{b_{i+1} - b_i}, \quad
    b_i \le t < b_{i+1}

  and constant outside: ``values[0]`` before ``boundaries[0]``, ``values[-1]``
  after the last point. Binary search finds the segment.

  Args:
    boundaries: strictly increasing steps >= 0, at least one.
    values: one value per boundary.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.piecewise_linear([0, 10, 110], [0.0, 1.0, 0.0])
    >>> [round(float(s(t)), 2) for t in (0, 5, 10, 60, 200)]
    [0.0, 0.5, 1.0, 0.5, 0.0]

  References:
    `torch.optim.lr_scheduler.SequentialLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.SequentialLR.html>`_
    of ``LinearLR`` pieces gives the same curve.
  """
  fn = "piecewise_linear"
  bounds, vals = _as_1d(fn, "boundaries", boundaries), _as_1d(fn, "values", values)
  if bounds.shape[0] == 0:
    raise ValueError(f"lrjax.{fn}: boundaries must have at least one point, got []")
  _check_breakpoints(fn, bounds, vals, extra=0)
  return PiecewiseLinear(bounds, vals)
