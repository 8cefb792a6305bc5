"""The spike guard, written once for every stateful schedule and every LR-owning transform.

A learning rate far too high shows itself within a few updates: the loss shoots
up or turns NaN. A schedule that decides on a window or a plateau sees it too
late (it follows a loss that has already blown up). The guard catches it at
once. With :math:`v_t` the (finite) value of update :math:`t`, its smoothed
level :math:`e_t = \\beta e_{t-1} + (1 - \\beta) v_t` (:math:`e` starts at the
first value; :math:`\\beta = 0.9` for per-update losses, 0 for a metric fed by
``observe``, already an average) and the reference :math:`r_t = \\min e` since
the last trigger, a **spike** is

.. math::
  e_t > \\max\\left(k\\, r_t,\\ \\sqrt{r_t\\, e_0}\\right) \\qquad (r_t > 0)

or ``nonfinite`` non-finite values in a row, with :math:`e_0` the run's first
value (taken again after a reference of 0: a loss that sat at exactly 0). The
second bound matters only once the loss has fallen more than :math:`k^2`-fold:
then a spike must also undo half of the run's progress, in log. A loss trained
close to 0 (a small data set memorised, a loss of 1e-4 from 0.7) moves by
several times from batch to batch without any blow-up; a relative rule alone
took that for one, cut the rate 10x and stalled the run. On a spike the owner
multiplies its learning rate by ``cut`` and restarts its decision statistics;
the guard restarts its level and reference at the current value, so a loss
that keeps climbing (another factor :math:`k`) triggers again while one that
recovers does not. The guard also remembers: a spike at rate :math:`\\alpha`
lowers its **ceiling** to :math:`\\sqrt{\\text{cut}}\\,\\alpha` for the rest of the run
(the cut undone at most halfway, in log), so a schedule that raises its rate
(``greedy``, ``hypergradient``, the learned controller, a rising base) never
climbs back to a rate that blew up.
Smoothing makes one bad minibatch (even 10x the typical loss) move
:math:`e` by less than 2x, far below the default :math:`k = 4`.

Losses that are zero or negative, ``mode="max"`` metrics and a metric fed by
``observe`` (a held-out loss: one that climbs far above its best is
overfitting, not a blow-up) get only the non-finite rule. Everything is a few
scalar operations per update, in graph.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _validation as v
from lrjax._numerics import as_float, counter, increment_if

# The smoothing of per-update values (a time constant of 10 updates).
UPDATE_SMOOTHING = 0.9

GUARD_DEFAULTS = dict(guard=True, guard_factor=4.0, guard_cut=0.1, guard_nonfinite=3)


class GuardState(NamedTuple):
  """The spike guard's state (all scalars).

  Attributes:
    level: the smoothed value :math:`e_t` (0 before the first finite value).
    reference: the lowest level since the last trigger, :math:`r_t` (0 before).
    nonfinite_run: non-finite values in a row (saturating).
    num_spikes: triggers so far (saturating): the spikes caught.
    start: the first finite value, :math:`e_0` (0 before; taken again while the
      reference is not positive).
    ceiling: the highest learning rate allowed: ``inf`` (or the owner's
      ``max_value``) at first, lowered by each spike (``lower_ceiling``).
  """
  level: jax.Array  # shape=(), dtype=float32.
  reference: jax.Array  # shape=(), dtype=float32.
  nonfinite_run: jax.Array  # shape=(), dtype=int32.
  num_spikes: jax.Array  # shape=(), dtype=int32.
  ceiling: jax.Array  # shape=(), dtype=float32.
  start: jax.Array  # shape=(), dtype=float32.


def init_guard(ceiling: Any = None) -> GuardState:
  """The guard's state before any value; ``ceiling``: the highest rate (None: no bound)."""
  zero = as_float(0.0)
  return GuardState(level=zero, reference=jnp.zeros_like(zero), nonfinite_run=counter(),
                    num_spikes=counter(),
                    ceiling=as_float(jnp.inf if ceiling is None else ceiling),
                    start=jnp.zeros_like(zero))


def lower_ceiling(state: GuardState, spike: jax.Array, rate: jax.Array, cut: Any,
                  floor: Any = 0.0) -> GuardState:
  """After a spike at ``rate``: the ceiling :math:`\\min(c, \\sqrt{\\text{cut}}\\,\\alpha)`,
  never below ``floor`` (the owner's ``min_value``); unchanged without a spike."""
  lowered = jnp.maximum(jnp.minimum(state.ceiling, as_float(rate) * jnp.sqrt(as_float(cut))),
                        as_float(floor))
  return state._replace(ceiling=jnp.where(spike, lowered, state.ceiling))


def check_settings(fn: str, factor: Any, cut: Any, nonfinite: Any) -> None:
  """The guard's settings, checked once for every owner."""
  v.check(fn, "guard_factor", factor, lambda a: a > 1, "> 1")
  v.in_range(fn, "guard_cut", cut, 0.0, 1.0, lo_open=False, hi_open=True)
  v.integer(fn, "guard_nonfinite", nonfinite, 1)


def guard_step(state: GuardState, value: jax.Array, finite: jax.Array, *, factor: Any,
               nonfinite: Any, smoothing: float, spikes: bool = True
               ) -> tuple[GuardState, jax.Array]:
  """One value through the guard: ``(next state, triggered)``.

  Args:
    state: the guard's state.
    value: the value (ignored where not ``finite``).
    finite: whether ``value`` is finite.
    factor: :math:`k`, the spike threshold over the reference.
    nonfinite: this many non-finite values in a row trigger.
    smoothing: :math:`\\beta` of the level.
    spikes: apply the spike rule (False: only the non-finite rule, e.g. for
      a metric where higher is better).
  """
  value = as_float(value)
  started = state.reference > 0
  level = jnp.where(started, smoothing * state.level + (1 - smoothing) * value, value)
  level = jnp.where(finite, level, state.level)
  run = jnp.where(finite, jnp.zeros_like(state.nonfinite_run),
                  increment_if(state.nonfinite_run))
  start = jnp.where(started, state.start, jnp.where(finite, value, state.start))
  # level > sqrt(r e0) as level^2 > r e0 (both sides >= 0): no square root to compute.
  spike = (finite & started & (level > as_float(factor) * state.reference)
           & (level * level > state.reference * start)) if spikes else False
  blowup = run >= nonfinite
  triggered = jnp.logical_or(spike, blowup)
  reference = jnp.where(finite, jnp.where(started, jnp.minimum(state.reference, level), level),
                        state.reference)
  # At a trigger both restart at the raw value: the loss seen next still reflects the old
  # rate (one update of lag), and a level smoothed over the blow-up would keep rising.
  level = jnp.where(triggered & finite, value, level)
  reference = jnp.where(triggered, jnp.where(finite, value, state.reference), reference)
  return state._replace(level=level, reference=reference, start=start,
                        nonfinite_run=jnp.where(blowup, jnp.zeros_like(run), run),
                        num_spikes=increment_if(state.num_spikes, triggered)), triggered


def flag(fn: str, name: str, value: Any) -> bool:
  """A True/False argument (``guard``, ``guard_skip``), checked."""
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"lrjax.{fn}: {name} must be True or False, got {name}={value!r}")
  return bool(value)


def guard_args(fn: str, guard: bool, guard_factor: Any, guard_cut: Any,
               guard_nonfinite: Any) -> dict[str, Any]:
  """The spike guard's arguments of a public constructor, checked: one place for all."""
  flag(fn, "guard", guard)
  check_settings(fn, guard_factor, guard_cut, guard_nonfinite)
  return dict(guard=bool(guard), guard_factor=guard_factor, guard_cut=guard_cut,
              guard_nonfinite=int(guard_nonfinite))
