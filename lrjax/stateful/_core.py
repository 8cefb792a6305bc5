"""The one shared core of every stateful schedule.

Everything a stateful schedule shares lives here and nowhere else: the state
layout (``ScheduleState``), the object's shape (a registered pytree dataclass
like a pure ``Schedule``: numeric settings are leaves, modes static), skipping
non-finite values, saturating counters, float32 statistics, averaging the value
across devices (``axis_name``), the learning-rate bounds, the reduction and
increase rules, and the ``optax.schedules.StatefulSchedule`` protocol itself.
A concrete schedule only says how its decision statistics start
(``_init_stats``) and how one finite value moves them (``_decide``).

An update is two steps, kept apart so that a signal can also arrive on its own
(a validation metric between epochs): ``observe`` makes one decision on a
value; advancing the count is the rest of ``update``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional, TypeVar

import jax
import jax.numpy as jnp

from lrjax import _guard, _packed
from lrjax._guard import GuardState, guard_args, guard_step, init_guard  # noqa: F401
from lrjax._numerics import as_float, counter, float_dtype, increment_if, read_value
from lrjax.schedules._base import Configurable, dataclass_transform, schedule_class, static

_T = TypeVar("_T")

SIGNALS = ("update", "observe")


class ScheduleFields(NamedTuple):
  """The named fields of a :class:`ScheduleState` (its logical layout)."""

  count: jax.Array  # type: ignore[assignment]  # shape=(), dtype=int32 (shadows tuple.count)
  scale: jax.Array  # shape=(), dtype=float32.
  lr: jax.Array  # shape=(), dtype=float32.
  num_nonfinite: jax.Array  # shape=(), dtype=int32.
  guard: GuardState  # a few scalars.
  stats: Any
  schedule: Any  # the StatefulSchedule (a pytree; a few scalar leaves).


@_packed.register
class ScheduleState(_packed.PackedState):
  """State of an lrjax stateful schedule (its scalars stored packed: ``lrjax._packed``).

  The learning rate at update ``count`` is ``clip(base(count) * scale,
  min_value, max_value)``.

  Attributes:
    count: updates seen so far (saturating at 2**31 - 1); the base schedule
      is evaluated at it.
    scale: the adaptive multiplier of the base schedule (1 at first).
    lr: the learning rate used at the most recent update (the rate at count 0
      before any).
    num_nonfinite: values skipped because they were NaN or infinite (saturating).
    guard: the spike guard's state (``lrjax._guard``): its ``num_spikes``
      counts the spikes caught.
    stats: the schedule's own decision statistics (a ``NamedTuple``).
    schedule: the schedule itself, its settings as arrays: the state describes
      how it decides, so ``lrjax.observe`` can make a decision on it wherever it
      sits in an optimizer state (and a checkpoint records the settings).
  """
  _logical = ScheduleFields
  __slots__ = ()

  def log_scalars(self) -> tuple[str, dict[str, Any]]:
    """What ``lrjax.log_values`` logs of this state: a label and its scalars."""
    return getattr(self.schedule, "name", "schedule"), {
        "scale": self.scale,
        "num_nonfinite": self.num_nonfinite,
        "num_spikes": self.guard.num_spikes,
        "count": self.count,
    }


def _as_array(x: Any) -> jax.Array:
  """A setting as an array: int32 for integers, float32 (float64 under x64) otherwise."""
  x = jnp.asarray(x)
  return x.astype(jnp.int32 if jnp.issubdtype(x.dtype, jnp.integer) else float_dtype())


def select_scalars(cond: jax.Array, on_true: Any, otherwise: Any) -> Any:
  """``optax.tree.where(cond, on_true, otherwise)`` on the scalar leaves of decision
  statistics; a non-scalar leaf (a window of values) is ``otherwise``'s, always.

  A window is written and read where its counters say it holds values (``greedy``'s), so a
  skipped value (its slot left as it was) or a restart (its counters back to zero) needs its
  counters restored, not an O(window) select of the window every update.
  """
  return jax.tree.map(lambda a, b: jnp.where(cond, a, b) if jnp.ndim(b) == 0 else b,
                      on_true, otherwise)


def reduced_scale(scale, lr, multiplier, min_value, eps):
  """The scale after ``lr -> max(lr * multiplier, min_value)``, PyTorch's rule.

  The change applies only if it lowers the learning rate by more than ``eps``
  (``ReduceLROnPlateau._reduce_lr``); a zero learning rate has nothing to reduce.
  """
  new_lr = jnp.maximum(lr * multiplier, min_value)
  apply = (lr - new_lr > eps) & (lr > 0)
  return jnp.where(apply, scale * new_lr / jnp.where(lr > 0, lr, 1), scale)


def raised_scale(scale, lr, multiplier, max_value, eps):
  """The scale after ``lr -> min(lr / multiplier, max_value)``, if it rises by > eps."""
  new_lr = lr / multiplier
  if max_value is not None:
    new_lr = jnp.minimum(new_lr, max_value)
  apply = (new_lr - lr > eps) & (lr > 0)
  return jnp.where(apply, scale * new_lr / jnp.where(lr > 0, lr, 1), scale)


@dataclass_transform(frozen_default=True, kw_only_default=True,
                     field_specifiers=(dataclasses.field, static))
def stateful_class(name: str) -> Callable[[type[_T]], type[_T]]:
  """Makes ``cls`` a frozen, keyword-only dataclass pytree built by the public ``name``.

  ``schedule_class`` with ``kw_only``: fields marked ``static()`` (modes, buffer
  lengths, ``axis_name``) are pytree metadata; every other field (the base
  schedule, numeric settings) is a child, so ``jit`` takes the object as an
  argument without retracing when a value changes, ``vmap`` runs a stack of them
  and ``grad`` reaches a setting. Unflattening never re-validates, so traced and
  batched leaves are fine.
  """
  return schedule_class(name, kw_only=True)


@dataclasses.dataclass(frozen=True, eq=False, repr=False, kw_only=True)
class StatefulSchedule(Configurable):
  """Base of lrjax's stateful schedules: ``optax.schedules.StatefulSchedule``.

  ``init() -> state``, ``update(state, *, value) -> state`` and
  ``__call__(state) -> learning rate``, with ``lr = clip(base(count) * scale,
  min_value, max_value)``. The learning rate returned before
  ``update(state, value=v_t)`` is the one used at update ``t``.

  ``min_value`` and ``max_value`` bound the learning rate at every step, not
  only at a decision: a decaying base cannot take it below ``min_value``, as
  PyTorch's ``min_lr`` holds (a base that starts at 0, a warmup, starts at
  ``min_value``). Subclasses declare their settings as dataclass fields and
  implement ``_init_stats`` and ``_decide``.

  Two ways to feed it (``signal``, static):

  - ``"update"`` (the default): every ``update(state, value=loss)`` makes a
    decision on the value of that update (the training loss);
  - ``"observe"``: ``update`` only advances the count (the base schedule, e.g.
    a warmup, still moves per update) and decisions come from ``observe`` /
    ``lrjax.observe(opt_state, metric)`` whenever a metric is at hand, e.g. the
    validation loss at each epoch's end, as PyTorch's ``scheduler.step(val_loss)``.

  Every stateful schedule carries the spike guard (``lrjax._guard``, on by
  default): a value whose smoothed level rises above ``guard_factor`` times its
  lowest level since the last trigger, or ``guard_nonfinite`` non-finite values
  in a row, multiply the scale by ``guard_cut`` at once and restart the
  decision statistics. With ``signal="observe"`` only the non-finite rule runs:
  a validation metric that climbs far above its best is overfitting, not a
  blow-up, and PyTorch's ``ReduceLROnPlateau`` does not cut there either (so
  its sequence holds with the defaults on finite metrics). ``guard=False``
  turns it off (then the sequence is the reference algorithm's exactly, e.g.
  PyTorch's ``ReduceLROnPlateau``).

  Attributes:
    base: the pure schedule the adaptive scale multiplies.
    axis_name: average the value over this mapped axis so every replica
      decides alike (static).
    signal: ``"update"`` or ``"observe"`` (static), as above.
    guard: whether the spike guard runs (static).
    guard_factor: :math:`k` > 1 of the spike rule.
    guard_cut: the factor in [0, 1) on the scale at a spike.
    guard_nonfinite: non-finite values in a row that count as a spike.
  """

  base: Any
  axis_name: Optional[str] = static(default=None)
  signal: str = static(default="update")
  guard: bool = static(default=True)
  guard_factor: Any = _guard.GUARD_DEFAULTS["guard_factor"]
  guard_cut: Any = _guard.GUARD_DEFAULTS["guard_cut"]
  guard_nonfinite: Any = _guard.GUARD_DEFAULTS["guard_nonfinite"]

  def _bounds(self) -> tuple[Any, Any]:
    """``(min_value, max_value)`` of the learning rate; ``None`` for no bound."""
    return getattr(self, "min_value", None), getattr(self, "max_value", None)

  def _init_stats(self) -> Any:
    raise NotImplementedError

  def _guard_spikes(self) -> bool:
    """Whether the spike rule applies (a schedule of a metric to maximise says no)."""
    return True

  def _restart_stats(self, stats: Any) -> Any:
    """The statistics a spike restarts from (``_init_stats()``; a schedule may keep what
    does not depend on the values seen, computed once at ``init``)."""
    del stats
    return self._init_stats()

  def _decide(self, stats: Any, scale: jax.Array, lr: jax.Array, value: jax.Array,
              finite: jax.Array):
    """One value: returns the new ``(stats, scale)``. ``value`` is 0 where it was not
    ``finite``; then (a skipped value) and on a spike the scalar statistics are restored or
    restarted, but a non-scalar one (a window) is kept as written, so its counters must say
    which entries hold values (``select_scalars``)."""
    raise NotImplementedError

  def rate_at(self, count: jax.Array, scale: jax.Array,
              ceiling: Optional[jax.Array] = None) -> jax.Array:
    """The learning rate at update ``count`` with multiplier ``scale``:
    ``clip(base(count) * scale, min_value, max_value)``, and at most the guard's
    ``ceiling`` when given (what ``lrjax.keras`` evaluates between decisions)."""
    lr = as_float(self.base(count)) * scale
    low, high = self._bounds()
    if low is not None:
      lr = jnp.maximum(lr, as_float(low))
    if high is not None:
      lr = jnp.minimum(lr, as_float(high))
    if ceiling is not None:  # at least min_value: lower_ceiling never goes below it
      lr = jnp.minimum(lr, ceiling)
    return lr

  def init(self) -> ScheduleState:
    """The state before the first update."""
    count = counter()
    scale = jnp.ones([], as_float(0).dtype)
    return ScheduleState(count=count, scale=scale, lr=self.rate_at(count, scale),
                         num_nonfinite=counter(), guard=init_guard(), stats=self._init_stats(),
                         schedule=jax.tree.map(_as_array, self))

  def __call__(self, state: ScheduleState | ScheduleFields, **extra_args: Any) -> jax.Array:
    """The learning rate for the update at ``state.count``."""
    del extra_args
    return self.rate_at(state.count, state.scale, state.guard.ceiling)

  def observe(self, state: ScheduleState, value: Any) -> ScheduleState:
    """One decision on ``value``, made at the current learning rate; the count is kept.

    A NaN or infinite ``value`` leaves the decision statistics and the scale
    untouched and is counted in ``num_nonfinite``. Then the spike guard: on a
    spike the scale is multiplied by ``guard_cut`` and the statistics restart.
    """
    return ScheduleState(*self._observe_fields(state.view(), value))

  def _observe_fields(self, state: ScheduleFields, value: Any) -> ScheduleFields:
    """``observe`` on the unpacked fields (so an update packs its state once)."""
    v, finite = read_value(value, self.axis_name, f"lrjax.{self.name}")
    stats, scale = self._decide(state.stats, state.scale, self(state), jnp.where(finite, v, 0),
                                finite)
    stats, scale = select_scalars(~finite, (state.stats, state.scale), (stats, scale))
    guard = state.guard
    if self.guard:
      guard, spike = guard_step(
          state.guard, v, finite, factor=self.guard_factor, nonfinite=self.guard_nonfinite,
          smoothing=_guard.UPDATE_SMOOTHING if self.signal == "update" else 0.0,
          # An observed metric (a held-out loss) that rises is overfitting: no spike rule.
          spikes=self._guard_spikes() and self.signal == "update")
      stats = select_scalars(spike, self._restart_stats(stats), stats)
      scale = jnp.where(spike, scale * as_float(self.guard_cut), scale)
      # The rate may never climb back to where it spiked: the guard's ceiling bounds it, and
      # the scale too, so a rule that raises it (greedy) does not pile up a scale the
      # ceiling hides, to be undone one reduction at a time later.
      low = self._bounds()[0]
      # The rate that made a spiking loss is the previous update's (``state.lr``).
      guard = _guard.lower_ceiling(guard, spike, state.lr, self.guard_cut,
                                   0.0 if low is None else low)
      base = as_float(self.base(state.count))
      scale = jnp.where((base > 0) & (base * scale > guard.ceiling),
                        guard.ceiling / jnp.where(base > 0, base, 1.0), scale)
    return state._replace(scale=scale, stats=stats, guard=guard,
                          num_nonfinite=increment_if(state.num_nonfinite, ~finite))

  def update(self, state: ScheduleState, *, value: Any = None,
             **extra_args: Any) -> ScheduleState:
    """Advances one update; with ``signal="update"`` first decides on its ``value``.

    Args:
      state: the state before this update.
      value: the loss (or metric) of the update just made; required with
        ``signal="update"``, ignored with ``signal="observe"``.

    Returns:
      The next state: ``count + 1`` and ``lr`` the rate this update used.
    """
    del extra_args
    fields = state.view()
    observed = fields
    if self.signal == "update":
      if value is None:
        raise TypeError(
            f"lrjax.{self.name}: update() needs the keyword argument value= (the loss of this "
            "update: signal='update' decides on it), e.g. tx.update(grads, state, params, "
            "value=loss); build the schedule with signal='observe' to decide on a metric fed "
            "by lrjax.observe instead")
      observed = self._observe_fields(fields, value)
    return ScheduleState(*observed._replace(count=increment_if(fields.count), lr=self(fields)))
