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
  r"""Decision statistics of ``window_decay``: the current window's regression sums.

  The values of a window are carried as sums, not stored: with :math:`y_0` the window's first
  value and :math:`d_i = y_i - y_0` (shifted so the sums stay small against the loss level),
  ``first`` is :math:`y_0`, ``sum_y`` :math:`\sum d_i`, ``sum_xy`` :math:`\sum i\,d_i`,
  ``sum_yy`` :math:`\sum d_i^2`.

  Attributes:
    filled: values in the current window.
    first: the window's first value.
    sum_y: the shifted values' sum.
    sum_xy: the shifted values' sum weighted by their index in the window.
    sum_yy: the shifted values' sum of squares.
    t_value: the last test's statistic :math:`t = b / se(b)` (``+inf`` before any test; a
      perfect fit gives :math:`\pm\infty`); ``WindowDecay.p_value(state)`` turns it into
      the p-value.
    critical: the test's critical value, the ``significance`` quantile of Student's t with
      ``window - 2`` degrees of freedom (computed once, by ``init``).
    num_decays: how many windows ended in a decay.
  """
  filled: jax.Array  # shape=(), dtype=int32.
  first: jax.Array  # shape=(), dtype=float32.
  sum_y: jax.Array  # shape=(), dtype=float32.
  sum_xy: jax.Array  # shape=(), dtype=float32.
  sum_yy: jax.Array  # shape=(), dtype=float32.
  t_value: jax.Array  # shape=(), dtype=float32.
  critical: jax.Array  # shape=(), dtype=float32.
  num_decays: jax.Array  # shape=(), dtype=int32.


def student_t_cdf(t: jax.Array, df: Any) -> jax.Array:
  """CDF of Student's t distribution with ``df`` degrees of freedom."""
  x = df / (df + t ** 2)
  tail = 0.5 * betainc(df / 2.0, 0.5, x)
  return jnp.where(t < 0, tail, 1.0 - tail)


def student_t_quantile(q: jax.Array, df: Any, iterations: int = 64) -> jax.Array:
  """The ``q`` quantile of Student's t with ``df`` degrees of freedom, by bisection.

  Bisects :math:`u \\in (0, 1)` with :math:`t = \\tan(\\pi (u - 1/2))` (the Cauchy quantile,
  which maps (0, 1) onto the real line) until ``student_t_cdf(t, df) = q``: 64 halvings
  reach the float32 resolution of ``u``. A loop: computed once, by ``window_decay``'s ``init``.
  """
  q = jnp.asarray(q)
  t_of = lambda u: jnp.tan(jnp.pi * (u - 0.5))  # noqa: E731

  def halve(_, bounds):
    lo, hi = bounds
    mid = 0.5 * (lo + hi)
    below = student_t_cdf(t_of(mid), df) < q
    return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

  lo, hi = jax.lax.fori_loop(0, iterations, halve, (jnp.zeros_like(q), jnp.ones_like(q)))
  return t_of(0.5 * (lo + hi)).astype(q.dtype)


# Compiled once per degrees of freedom: ``init`` outside ``jit`` reuses it.
_critical_value = jax.jit(student_t_quantile, static_argnames=("df", "iterations"))


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
  test's length) and ``axis_name`` are static. Build it with the public
  function, which validates; the class takes keywords only.
  """

  window: int = static(default=100)
  factor: Any = 0.5
  significance: Any = 0.05
  min_value: Any = 0.0

  def _init_stats(self, critical=None):
    zero = as_float(0.0)
    if critical is None:
      critical = _critical_value(as_float(self.significance), df=self.window - 2.0)
    return WindowStats(filled=counter(), first=zero, sum_y=jnp.zeros_like(zero),
                       sum_xy=jnp.zeros_like(zero), sum_yy=jnp.zeros_like(zero),
                       t_value=as_float(jnp.inf), critical=critical, num_decays=counter())

  def _restart_stats(self, stats):
    return self._init_stats(critical=stats.critical)  # the quantile's search is not redone

  def _decide(self, stats, scale, lr, value, finite):
    del finite  # a skipped value's statistics are restored (``select_scalars``)
    # The window's regression is carried as sums of d = y - y0 (no window stored, no divide
    # and no conditional an update); the test at a window's end is scalar arithmetic on
    # them. With W values at x = 0..W-1, Sxx = W (W^2 - 1) / 12 and C = Sxy - (W - 1)/2 Sy:
    #   slope b = C / Sxx,  W * (residual sum of squares) * Sxx = R = D Sxx - W C^2,
    #   with D = W Syy - Sy^2,  and  t = b / se(b) = C sqrt(W (W - 2) / R).
    x = stats.filled.astype(stats.first.dtype)
    first = jnp.where(stats.filled == 0, value, stats.first)
    d = value - first
    sum_y, sum_xy, sum_yy = stats.sum_y + d, stats.sum_xy + x * d, stats.sum_yy + d * d
    filled = stats.filled + 1
    full = filled >= self.window
    w = float(self.window)
    sxx = w * (w * w - 1.0) / 12.0
    c = sum_xy - 0.5 * (w - 1.0) * sum_y
    r = jnp.maximum((w * sum_yy - sum_y * sum_y) * sxx - w * c * c, 0.0)
    # p = P(T <= t) > significance  <=>  t > critical (the t CDF increases), decided without a
    # square root or a divide (so XLA computes it in both packed vectors' kernels instead of
    # one of its own): t > q  <=>  C > q sqrt(R / (W (W - 2))), squared by the signs. A
    # perfect fit (R = 0) has t = -inf, or +inf for C >= 0 (p = 0 or 1, as before).
    q = stats.critical
    lhs, rhs = w * (w - 2.0) * c * c, q * q * r
    stalled = full & jnp.where(q < 0, (c >= 0) | (lhs < rhs), (c >= 0) & ((r == 0) | (lhs > rhs)))
    t = jnp.where(r > 0, c * jnp.sqrt(w * (w - 2.0) / jnp.where(r > 0, r, 1.0)),
                  jnp.where(c >= 0, jnp.inf, -jnp.inf))
    new_scale = jnp.where(stalled, reduced_scale(scale, lr, self.factor, self.min_value, 0.0),
                          scale)
    zero = jnp.zeros_like(sum_y)
    return WindowStats(filled=jnp.where(full, 0, filled), first=first,
                       sum_y=jnp.where(full, zero, sum_y), sum_xy=jnp.where(full, zero, sum_xy),
                       sum_yy=jnp.where(full, zero, sum_yy),
                       t_value=jnp.where(full, t.astype(zero.dtype), stats.t_value),
                       critical=stats.critical,
                       num_decays=stats.num_decays + stalled.astype(jnp.int32)), new_scale

  def p_value(self, state) -> jax.Array:
    """The last test's one-sided p-value for "the loss is decreasing" (1 before any test):
    :math:`P(T \\le t)` for Student's t with ``window - 2`` degrees of freedom. Computed here,
    on demand, not by an update (which compares ``t`` with the critical value)."""
    stats: Any = getattr(state, "stats", None)
    if not hasattr(stats, "t_value"):
      raise TypeError(
          "lrjax.window_decay.p_value: state must be a window_decay state (from its init or "
          f"update), got {type(state).__name__}; in an optimizer's state it is "
          "opt_state.hyperparams_states['learning_rate'] under optax.inject_hyperparams, "
          "or the schedule_state of lrjax.as_transform's state")
    return student_t_cdf(stats.t_value, self.window - 2.0)


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
  stationarity statistic of gradients and updates.

  The state is a few scalars whatever the window: its values are carried as
  regression sums (``WindowStats``), and the test compares :math:`t` with the
  critical value :math:`t_{\text{significance}}` (:math:`p > \text{significance}
  \iff t > t_{\text{significance}}`), found once by ``init``; an update runs no
  loop and no conditional. ``state.stats.t_value`` is the last window's
  statistic and ``schedule.p_value(state)`` its p-value. Intended difference from
  summing a stored window (lrjax before 0.1.0's fifth stop): the decisions can
  differ only where :math:`t` is within a float32 rounding of the critical value.

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
    >>> round(float(s.p_value(state)), 3)  # the flat window's: no evidence of a decrease
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
