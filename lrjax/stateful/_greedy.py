"""GreedyLR: raise the learning rate while the smoothed loss improves, lower it on a plateau."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from lrjax import _validation as v
from lrjax._numerics import as_float, counter, increment_if, ring_next, two_sum
from lrjax.schedules._base import as_schedule, public, static
from lrjax.stateful._core import (SIGNALS, StatefulSchedule, guard_args, raised_scale,
                                  reduced_scale, stateful_class)


class GreedyStats(NamedTuple):
  """Decision statistics of ``greedy``.

  Attributes:
    losses: ring buffer of the last ``window`` values.
    filled: how many entries of the buffer hold values (<= window).
    position: where the next value goes.
    total: the sum of the values in the buffer, kept as they enter and leave it (a
      compensated sum: ``total + total_error`` is that sum to about float32's precision
      squared, however long the run).
    total_error: the rounding error ``total`` has left out.
    best: best smoothed loss so far (+inf at first).
    num_good: consecutive improvements.
    num_bad: consecutive non-improvements.
    cooldown_counter: counts up to ``cooldown`` after an increase (improvements ignored meanwhile).
    warmup_counter: counts up to ``warmup`` after a reduction (plateaus ignored meanwhile).
  """
  losses: jax.Array  # shape=(window,), dtype=float32.
  filled: jax.Array  # shape=(), dtype=int32.
  position: jax.Array  # shape=(), dtype=int32.
  total: jax.Array  # shape=(), dtype=float32.
  total_error: jax.Array  # shape=(), dtype=float32.
  best: jax.Array  # shape=(), dtype=float32.
  num_good: jax.Array  # shape=(), dtype=int32.
  num_bad: jax.Array  # shape=(), dtype=int32.
  cooldown_counter: jax.Array  # shape=(), dtype=int32.
  warmup_counter: jax.Array  # shape=(), dtype=int32.


@stateful_class("greedy")
class Greedy(StatefulSchedule):
  """The stateful schedule built by ``lrjax.greedy`` (see it for the rule).

  A pytree: ``base`` and the numeric settings are leaves; ``window`` (the
  buffer's length) and ``axis_name`` are static. Build it with the public
  function, which validates; the class takes keywords only.
  """

  factor: Any = 0.95
  patience: Any = 10
  cooldown: Any = 0
  min_value: Any = 0.0
  max_value: Any = None
  window: int = static(default=50)
  warmup: Any = 0
  threshold: Any = 1e-4
  eps: Any = 1e-8

  def _init_stats(self):
    return GreedyStats(losses=jnp.zeros([self.window], as_float(0.0).dtype), filled=counter(),
                       position=counter(), total=as_float(0.0), total_error=as_float(0.0),
                       best=as_float(jnp.inf), num_good=counter(),
                       num_bad=counter(), cooldown_counter=counter(), warmup_counter=counter())

  def _decide(self, stats, scale, lr, value, finite):
    filled = jnp.minimum(stats.filled + 1, self.window)
    # One elementwise write: the value at ``position``, the entries written since the start or
    # the last restart kept, the rest (stale after a restart, ``select_scalars``) zeroed. The
    # first ``filled`` hold values, the whole ring once full; unfilled entries are 0. A
    # skipped (non-finite) value leaves its slot as it was: the running sum reads it next.
    index = jnp.arange(self.window)
    slot = stats.losses[stats.position]
    leaving = jnp.where(stats.filled >= self.window, slot, 0)
    entering = jnp.where(finite, value, slot)
    losses = jnp.where(index == stats.position, entering,
                       jnp.where(index < filled, stats.losses, 0)).astype(stats.losses.dtype)
    # The window's sum is carried, not summed again (a reduction is two kernels an update on
    # XLA's CPU backend, which fuses no reduction into two consumers): the value enters it and
    # the one it displaces leaves it, each rounding error kept in ``total_error`` (TwoSum).
    total, error = two_sum(stats.total, value, stats.total_error)
    total, error = two_sum(total, -leaving, error)
    # Compared as sums, ``W * mean < (best - threshold) * W`` (``reduce_on_plateau``'s way):
    # the divide then feeds only the float32 vector, and XLA fuses it there instead of
    # computing it in a kernel of its own for both vectors.
    window_sum = total + error
    count = filled.astype(window_sum.dtype)
    better = window_sum < (stats.best - self.threshold) * count
    smoothed = window_sum / count
    best = jnp.where(better, smoothed, stats.best)
    num_good = jnp.where(better, increment_if(stats.num_good), 0)
    num_bad = jnp.where(better, 0, increment_if(stats.num_bad))
    in_cooldown = stats.cooldown_counter < self.cooldown
    cooldown_counter = jnp.where(in_cooldown, stats.cooldown_counter + 1, stats.cooldown_counter)
    num_good = jnp.where(in_cooldown, 0, num_good)
    in_warmup = stats.warmup_counter < self.warmup
    warmup_counter = jnp.where(in_warmup, stats.warmup_counter + 1, stats.warmup_counter)
    num_bad = jnp.where(in_warmup, 0, num_bad)
    increase = num_good > self.patience
    scale = jnp.where(increase, raised_scale(scale, lr, self.factor, self.max_value,
                                             self.eps), scale)
    cooldown_counter = jnp.where(increase, 0, cooldown_counter)
    reduce = num_bad > self.patience  # never together with an increase
    scale = jnp.where(reduce, reduced_scale(scale, lr, self.factor, self.min_value,
                                            self.eps), scale)
    warmup_counter = jnp.where(reduce, 0, warmup_counter)
    return GreedyStats(losses=losses, filled=filled,
                       position=ring_next(stats.position, self.window), total=total,
                       total_error=error, best=best,
                       num_good=num_good, num_bad=num_bad, cooldown_counter=cooldown_counter,
                       warmup_counter=warmup_counter), scale


@public(preset=lambda steps, peak: dict(base=peak, patience=max(steps // 20, 5),
                                       window=max(steps // 20, 5), max_value=10 * peak))
def greedy(base: Any, factor: float = 0.95, patience: int = 10, cooldown: int = 0,
           min_value: float = 0.0, max_value: Optional[float] = None, window: int = 50,
           warmup: int = 0, axis_name: Optional[str] = None, threshold: float = 1e-4,
           eps: float = 1e-8, signal: str = "update", guard: bool = True,
           guard_factor: float = 4.0, guard_cut: float = 0.1,
           guard_nonfinite: int = 3) -> Greedy:
  r"""GreedyLR: follow the smoothed loss up on improvement, down on a plateau.

  Each update the value enters a rolling window of ``window`` values; their
  mean :math:`\bar L` is compared with the best so far: improved iff
  :math:`\bar L < \text{best} - \theta`. Consecutive improvements count up
  ``num_good``, consecutive non-improvements ``num_bad``. When
  ``num_good > patience`` the learning rate :math:`\eta` becomes
  :math:`\min(\eta / \text{factor}, \text{max\_value})`; when
  ``num_bad > patience`` it becomes :math:`\max(\eta\cdot\text{factor},
  \text{min\_value})` (each applied only if it changes :math:`\eta` by more
  than ``eps``). After an increase, improvements are ignored for ``cooldown``
  updates; after a reduction, plateaus are ignored for ``warmup`` updates.
  The counters are not reset by a change, as in the reference implementation:
  a sustained trend keeps moving the rate every update once past ``patience``.

  The window's sum :math:`S` is carried from update to update (the new value
  added, the one it displaces subtracted, each rounding error kept: TwoSum), not
  summed again, and the comparison is made on it,
  :math:`S < (\text{best} - \theta)\,n` over the :math:`n` values held (as in
  ``reduce_on_plateau``). Both can differ from summing the window and comparing
  its mean only where the two sides are within a float32 rounding of each other;
  they save the update two kernels (the window's reduction, made in two stages,
  the divide for the mean fused into the second and read by both packed vectors).

  Args:
    base: a float or a pure schedule; the learning rate is
      ``clip(base(count) * scale, min_value, max_value)``.
    factor: in (0, 1): the multiplier for a reduction, its inverse for an increase.
    patience: consecutive decisions (>= 0) before a change.
    cooldown: updates (>= 0) ignoring improvements after an increase.
    min_value: floor of the learning rate at every step, >= 0.
    max_value: ceiling of the learning rate at every step (none when ``None``).
    window: values (>= 1) in the smoothing window.
    warmup: updates (>= 0) ignoring plateaus after a reduction (and at the start).
    axis_name: average the value over this mapped axis.
    signal: ``"update"`` (decide on every update's ``value``) or ``"observe"`` (decide
      only on metrics fed by ``lrjax.observe``, e.g. a validation loss per epoch).
    guard, guard_factor, guard_cut, guard_nonfinite: the spike guard shared by
      every stateful schedule (``StatefulSchedule``; on by default, ``guard=False``
      for the bare rule). A spike also caps the rate for the rest of the run at
      :math:`\sqrt{\text{guard\_cut}}` times the rate that made the spiking loss,
      so greedy's raises never climb back to a rate that blew up.
    threshold: absolute improvement margin, >= 0.
    eps: smallest change applied, >= 0.

  Returns:
    A stateful schedule (``optax.schedules.StatefulSchedule``).

  Example:
    >>> import lrjax
    >>> s = lrjax.greedy(1.0, factor=0.5, patience=1, window=1, threshold=0.0)
    >>> state = s.init()
    >>> lrs = []
    >>> for loss in [5.0, 4.0, 3.0, 2.0, 2.0, 2.0, 2.0]:
    ...   lrs.append(float(s(state)))
    ...   state = s.update(state, value=loss)
    >>> lrs
    [1.0, 1.0, 2.0, 4.0, 8.0, 8.0, 4.0]

  References:
    Subramanian & Ganapathiraman, `Zeroth Order GreedyLR: An Adaptive Learning Rate
    Scheduler for Deep Neural Network Training <https://www.amazon.science/publications/zeroth-order-greedylr-an-adaptive-learning-rate-scheduler-for-deep-neural-network-training>`_, 2023;
    Subramanian et al., `Dynamic Learning Rate Scheduling based on Loss Changes Leads to
    Faster Convergence <https://arxiv.org/abs/2512.14527>`_, 2025.
  """
  fn = "greedy"
  v.one_of(fn, "signal", signal, SIGNALS)
  v.in_range(fn, "factor", factor, 0.0, 1.0)
  v.integer(fn, "patience", patience, minimum=0)
  v.integer(fn, "cooldown", cooldown, minimum=0)
  v.upper_bound(fn, "max_value", max_value, "min_value", min_value)
  v.integer(fn, "window", window, minimum=1)
  v.integer(fn, "warmup", warmup, minimum=0)
  v.non_negative(fn, "threshold", threshold)
  v.non_negative(fn, "eps", eps)
  guarded = guard_args(fn, guard, guard_factor, guard_cut, guard_nonfinite)
  return Greedy(**guarded, base=as_schedule(base, fn, "base"), axis_name=axis_name, signal=signal,
                factor=factor, patience=int(patience), cooldown=int(cooldown),
                min_value=min_value, max_value=max_value, window=int(window),
                warmup=int(warmup), threshold=threshold, eps=eps)
