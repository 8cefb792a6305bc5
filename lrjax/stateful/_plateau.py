"""Reduce on plateau, in graph: PyTorch's algorithm with its state in a pytree."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from lrjax import _validation as v
from lrjax._numerics import as_float, counter, increment_if
from lrjax.schedules._base import as_schedule, public, static
from lrjax.stateful._core import (SIGNALS, StatefulSchedule, guard_args, reduced_scale,
                                  stateful_class)


class PlateauStats(NamedTuple):
  """Decision statistics of ``reduce_on_plateau``.

  Attributes:
    best: the best (window-averaged) value seen; +inf (min mode) / -inf (max) at first.
    num_bad: decisions since the last improvement.
    cooldown_counter: decisions left in the cooldown after a reduction.
    window_sum: sum of the values in the current, unfinished window.
    window_count: values in the current window.
  """
  best: jax.Array  # shape=(), dtype=float32.
  num_bad: jax.Array  # shape=(), dtype=int32.
  cooldown_counter: jax.Array  # shape=(), dtype=int32.
  window_sum: jax.Array  # shape=(), dtype=float32.
  window_count: jax.Array  # shape=(), dtype=int32.


def improved(total, best, mode: str, threshold_mode: str, threshold, count):
  """PyTorch's ``is_better`` of the mean ``total / count``, compared as a sum (no divide), with
  ``|best|`` in rel mode so negative values work."""
  sign = 1.0 if mode == "min" else -1.0
  if threshold_mode == "rel":
    margin = jnp.where(jnp.isfinite(best), jnp.abs(best) * threshold, 0.0)
  else:
    margin = threshold
  return sign * total < (sign * best - margin) * count


@stateful_class("reduce_on_plateau")
class ReduceOnPlateau(StatefulSchedule):
  """The stateful schedule built by ``lrjax.reduce_on_plateau`` (see it for the rule).

  A pytree: ``base`` and the numeric settings are leaves; ``threshold_mode``,
  ``mode`` and ``axis_name`` are static. Build it with the public function,
  which validates; the class takes keywords only.
  """

  factor: Any = 0.1
  patience: Any = 10
  threshold: Any = 1e-4
  threshold_mode: str = static(default="rel")
  mode: str = static(default="min")
  cooldown: Any = 0
  min_value: Any = 0.0
  eps: Any = 1e-8
  window: Any = 1

  def _guard_spikes(self):
    return self.mode == "min"  # a metric to maximise has no loss spikes

  def _init_stats(self):
    inf = jnp.inf if self.mode == "min" else -jnp.inf
    return PlateauStats(best=as_float(inf), num_bad=counter(), cooldown_counter=counter(),
                        window_sum=as_float(0.0), window_count=counter())

  def _decide(self, stats, scale, lr, value, finite):
    del finite  # a skipped value's statistics are restored (``select_scalars``)
    total = stats.window_sum + value
    count = stats.window_count + 1
    full = count >= self.window
    a = total / count
    better = improved(total, stats.best, self.mode, self.threshold_mode, self.threshold,
                      count.astype(total.dtype))
    best = jnp.where(better, a, stats.best)
    num_bad = jnp.where(better, 0, increment_if(stats.num_bad))
    in_cooldown = stats.cooldown_counter > 0
    cooldown_counter = jnp.where(in_cooldown, stats.cooldown_counter - 1, stats.cooldown_counter)
    num_bad = jnp.where(in_cooldown, 0, num_bad)
    reduce = num_bad > self.patience
    new_scale = jnp.where(reduce, reduced_scale(scale, lr, self.factor, self.min_value,
                                                self.eps), scale)
    decided = PlateauStats(
        best=best, num_bad=jnp.where(reduce, 0, num_bad),
        cooldown_counter=jnp.where(reduce, self.cooldown, cooldown_counter).astype(jnp.int32),
        window_sum=as_float(0.0), window_count=counter())
    waiting = stats._replace(window_sum=total, window_count=count)
    return optax.tree.where(full, decided, waiting), jnp.where(full, new_scale, scale)


@public(preset=lambda steps, peak: dict(base=peak, factor=0.5, patience=2,
                                       window=max(steps // 20, 5)))
def reduce_on_plateau(base: Any, factor: float = 0.1, patience: int = 10,
                      threshold: float = 1e-4, threshold_mode: str = "rel",
                      mode: str = "min", cooldown: int = 0, min_value: float = 0.0,
                      eps: float = 1e-8, window: int = 1,
                      axis_name: Optional[str] = None,
                      signal: str = "update", guard: bool = True,
                      guard_factor: float = 4.0, guard_cut: float = 0.1,
                      guard_nonfinite: int = 3) -> ReduceOnPlateau:
  r"""Reduces the learning rate when a metric stops improving, inside ``jit``.

  The learning rate is ``max(base(count) * s, min_value)``, where the scale
  ``s`` starts at 1.
  Every ``window`` updates the average ``a`` of the values of that window is
  compared with the best so far (``min`` mode; ``max`` mirrors it):

  .. math::
    \text{better} \iff a < \text{best} - \begin{cases} |\text{best}|\,\theta & \text{rel} \\
    \theta & \text{abs} \end{cases}

  If better, best = a and the bad count resets, else it grows; during a
  cooldown the bad count is held at 0. When the bad count exceeds
  ``patience`` the learning rate ``\eta`` becomes ``max(\eta \cdot factor,
  min_value)`` if that lowers it by more than ``eps``, the cooldown starts and
  the bad count resets.

  With ``window=1`` and a constant base the learning-rate sequence equals
  PyTorch ``ReduceLROnPlateau`` (``min_lr`` is ``min_value``) for the same
  metric sequence. Intended difference: rel mode uses ``|best|``, so negative
  losses reduce as positive ones do (PyTorch compares with ``best * (1 -
  threshold)``, above a negative best; Optax's ``contrib.reduce_on_plateau``
  never reduces on them). A NaN or infinite value changes nothing but
  ``num_nonfinite``. The comparison is made on the window's sum of :math:`W` values,
  :math:`W a < (\text{best} - \text{margin})\,W`: the same bits at ``window=1``; with a
  longer window it can differ from comparing the mean only where the two sides are within a
  float32 rounding of each other (so the update's divide feeds ``best`` alone: one kernel
  fewer an update).

  Args:
    base: a float or a pure schedule (e.g. ``lrjax.warmup(...)``).
    factor: multiplier in (0, 1) applied on a plateau.
    patience: decisions (>= 0) without improvement tolerated.
    threshold: relative or absolute improvement margin, >= 0.
    threshold_mode: ``"rel"`` or ``"abs"``.
    mode: ``"min"`` (losses) or ``"max"`` (accuracies).
    cooldown: decisions (>= 0) to wait after a reduction.
    min_value: floor of the learning rate at every step (PyTorch's ``min_lr``), >= 0.
    eps: smallest change applied, >= 0.
    window: updates (>= 1) averaged per decision (1 = every update; the number
      of steps in an epoch reproduces the per-epoch habit).
    axis_name: average the value over this mapped axis so every replica decides alike.
    signal: ``"update"`` (decide on every update's ``value``) or ``"observe"`` (decide
      only on metrics fed by ``lrjax.observe``, e.g. a validation loss per epoch).
    guard, guard_factor, guard_cut, guard_nonfinite: the spike guard shared by
      every stateful schedule (``StatefulSchedule``; on by default, ``guard=False``
      for the bare rule).

  Returns:
    A stateful schedule for ``optax.inject_hyperparams`` (pass ``value=loss``
    to ``update``), or for ``lrjax.as_transform``.

  Example:
    >>> import jax.numpy as jnp, lrjax
    >>> s = lrjax.reduce_on_plateau(1.0, factor=0.5, patience=1)
    >>> state = s.init()
    >>> lrs = []
    >>> for loss in [3.0, 2.0, 2.0, 2.0, 2.0, 2.0]:
    ...   lrs.append(float(s(state)))
    ...   state = s.update(state, value=loss)
    >>> lrs
    [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]

  References:
    `torch.optim.lr_scheduler.ReduceLROnPlateau <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ReduceLROnPlateau.html>`_;
    `optax.contrib.reduce_on_plateau <https://optax.readthedocs.io/en/latest/api/contrib.html>`_.
  """
  fn = "reduce_on_plateau"
  v.one_of(fn, "signal", signal, SIGNALS)
  v.in_range(fn, "factor", factor, 0.0, 1.0)
  v.integer(fn, "patience", patience, minimum=0)
  v.non_negative(fn, "threshold", threshold)
  v.one_of(fn, "threshold_mode", threshold_mode, ("rel", "abs"))
  v.one_of(fn, "mode", mode, ("min", "max"))
  v.integer(fn, "cooldown", cooldown, minimum=0)
  v.non_negative(fn, "eps", eps)
  v.integer(fn, "window", window, minimum=1)
  guarded = guard_args(fn, guard, guard_factor, guard_cut, guard_nonfinite)
  return ReduceOnPlateau(**guarded, base=as_schedule(base, fn, "base"), axis_name=axis_name,
                         signal=signal, factor=factor, patience=int(patience),
                         threshold=threshold,
                         threshold_mode=threshold_mode, mode=mode, cooldown=int(cooldown),
                         min_value=min_value, eps=eps, window=int(window))
