"""Windowed plateau detection: a t-test on the slope of each window's losses."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.scipy.special import betainc

from lrjax import _validation as v
from lrjax._numerics import as_float, counter
from lrjax.schedules._base import as_schedule, public, static
from lrjax.stateful._core import (SIGNALS, StatefulSchedule, guard_args, reduced_scale,
                                  stateful_class)


class WindowStats(NamedTuple):
  """Decision statistics of ``window_decay``.

  Attributes:
    losses: the current window's values (a buffer of ``window`` entries; those past
      ``filled`` are stale, from the previous window).
    filled: values in the current window.
    p_value: the last test's one-sided p-value for "the loss is decreasing" (1 before any).
    num_decays: how many windows ended in a decay.
  """
  losses: jax.Array  # shape=(window,), dtype=float32.
  filled: jax.Array  # shape=(), dtype=int32.
  p_value: jax.Array  # shape=(), dtype=float32.
  num_decays: jax.Array  # shape=(), dtype=int32.


def student_t_cdf(t: jax.Array, df: Any) -> jax.Array:
  """CDF of Student's t distribution with ``df`` degrees of freedom."""
  x = df / (df + t ** 2)
  tail = 0.5 * betainc(df / 2.0, 0.5, x)
  return jnp.where(t < 0, tail, 1.0 - tail)


def slope_p_value(y: jax.Array) -> jax.Array:
  """One-sided p-value of H0 "slope >= 0" against "slope < 0" for ``y`` vs its index.

  Ordinary least squares on ``x = 0..n-1``; ``t = b / se(b)`` with ``n - 2``
  degrees of freedom; ``p = P(T <= t)``. A perfect fit (zero residual) gives
  p = 0 for a negative slope and p = 1 otherwise.
  """
  n = y.shape[0]
  x = jnp.arange(n, dtype=y.dtype)
  xc = x - jnp.mean(x)
  sxx = jnp.sum(xc ** 2)
  b = jnp.sum(xc * (y - jnp.mean(y))) / sxx
  resid = y - jnp.mean(y) - b * xc
  s2 = jnp.sum(resid ** 2) / (n - 2)
  se = jnp.sqrt(s2 / sxx)
  exact = se <= 1e-12 * (jnp.abs(b) + jnp.abs(jnp.mean(y)) + 1e-30)
  t = b / jnp.where(exact, 1.0, se)
  p = student_t_cdf(t, n - 2.0)
  return jnp.where(exact, jnp.where(b < 0, 0.0, 1.0), p)


@stateful_class("window_decay")
class WindowDecay(StatefulSchedule):
  """The stateful schedule built by ``lrjax.window_decay`` (see it for the rule).

  A pytree: ``base`` and the numeric settings are leaves; ``window`` (the
  buffer's length) and ``axis_name`` are static. Build it with the public
  function, which validates; the class takes keywords only.
  """

  window: int = static(default=100)
  factor: Any = 0.5
  significance: Any = 0.05
  min_value: Any = 0.0

  def _init_stats(self):
    return WindowStats(losses=jnp.zeros([self.window], as_float(0.0).dtype),
                       filled=counter(), p_value=as_float(1.0), num_decays=counter())

  def _decide(self, stats, scale, lr, value, finite):
    del finite  # a skipped value's statistics are restored (the window: its slot rewritten)
    losses = stats.losses.at[stats.filled].set(value)
    filled = stats.filled + 1
    full = filled >= self.window

    # The test (a regression and betainc's iterative evaluation, a loop on the device) runs
    # only at a window's end: between decisions an update is a store and a compare. Only the
    # p-value is computed under the cond, its one operand the window (each operand of a
    # conditional is a buffer of its own: a kernel each); the decision is scalar arithmetic.
    tested = jax.lax.cond(full, slope_p_value, lambda w: jnp.ones((), w.dtype), losses)
    p = jnp.where(full, tested.astype(stats.p_value.dtype), stats.p_value)
    stalled = full & (p > self.significance)
    new_scale = jnp.where(stalled, reduced_scale(scale, lr, self.factor, self.min_value, 0.0),
                          scale)
    # Entries past ``filled`` are stale (the previous window's, a skipped value's, or from
    # before a restart), overwritten before the next test reads them.
    return WindowStats(losses=losses, filled=jnp.where(full, 0, filled),
                       p_value=p,
                       num_decays=stats.num_decays + stalled.astype(jnp.int32)), new_scale


@public(preset=lambda steps, peak: dict(base=peak, window=max(steps // 10, 3)))
def window_decay(base: Any, window: int = 100, factor: float = 0.5, significance: float = 0.05,
                 min_value: float = 0.0, axis_name: Optional[str] = None,
                 signal: str = "update", guard: bool = True,
                 guard_factor: float = 4.0, guard_cut: float = 0.1,
                 guard_nonfinite: int = 3) -> WindowDecay:
  r"""Decays the learning rate when a window's losses show no significant decrease.

  Training runs in windows of ``window`` updates. At the end of each, the
  losses :math:`y_0..y_{W-1}` are regressed on their index by least squares;
  with slope :math:`b` and its standard error :math:`se(b)`, the statistic
  :math:`t = b / se(b)` has a Student t distribution with :math:`W - 2`
  degrees of freedom under "no trend". The one-sided p-value
  :math:`p = P(T \le t)` tests "the loss is decreasing"; when
  :math:`p > \text{significance}` progress has stalled and the learning rate
  is multiplied by ``factor`` (floored at ``min_value``). Otherwise it is
  left alone: unlike a fixed decay, the rate drops only when the data say so.
  This is the statistical-plateau idea of SASA (Lang et al. 2019) and SASA+
  (Zhang et al. 2020) applied to the loss trend rather than to their
  stationarity statistic of gradients and updates. The window is a buffer in
  the state: O(window) memory, independent of the model size.

  Args:
    base: a float or a pure schedule.
    window: updates per window, >= 3.
    factor: multiplier in (0, 1) on a stalled window.
    significance: the test's level in (0, 1).
    min_value: floor of the learning rate at every step, >= 0.
    axis_name: average the value over this mapped axis.
    signal: ``"update"`` (decide on every update's ``value``) or ``"observe"`` (decide
      only on metrics fed by ``lrjax.observe``, e.g. a validation loss per epoch).
    guard, guard_factor, guard_cut, guard_nonfinite: the spike guard shared by
      every stateful schedule (``StatefulSchedule``; on by default, ``guard=False``
      for the bare rule).

  Returns:
    A stateful schedule (``optax.schedules.StatefulSchedule``).

  Example:
    >>> import lrjax
    >>> s = lrjax.window_decay(1.0, window=5, factor=0.5)
    >>> state = s.init()
    >>> for loss in [5.0, 4.0, 3.0, 2.0, 1.0] + [1.0, 1.1, 0.9, 1.0, 1.05]:
    ...   state = s.update(state, value=loss)
    >>> float(s(state))
    0.5

  References:
    Lang, Xiao & Zhang, `Using Statistics to Automate Stochastic Optimization
    <https://arxiv.org/abs/1909.09785>`_, NeurIPS 2019;
    Zhang, Lang, Liu & Xiao, `Statistical Adaptive Stochastic Gradient Methods
    <https://arxiv.org/abs/2002.10597>`_, 2020.
  """
  fn = "window_decay"
  v.one_of(fn, "signal", signal, SIGNALS)
  v.integer(fn, "window", window, minimum=3)
  v.in_range(fn, "factor", factor, 0.0, 1.0)
  v.in_range(fn, "significance", significance, 0.0, 1.0)
  guarded = guard_args(fn, guard, guard_factor, guard_cut, guard_nonfinite)
  return WindowDecay(**guarded, base=as_schedule(base, fn, "base"), axis_name=axis_name, signal=signal,
                     window=int(window), factor=factor, significance=significance,
                     min_value=min_value)
