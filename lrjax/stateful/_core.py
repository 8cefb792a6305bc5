"""The one shared core of every stateful schedule.

Everything a stateful schedule shares lives here and nowhere else: the state
layout (``ScheduleState``), skipping non-finite values, saturating int32
counters, float32 statistics, averaging the value across devices
(``axis_name``), the learning-rate bounds of a reduction or an increase, and
the ``optax.schedules.StatefulSchedule`` protocol itself. A concrete schedule
only says how its decision statistics start (``_init_stats``) and how one
finite value moves them (``_decide``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from lrjax.schedules._base import Schedule, as_schedule, float_dtype

_INT32_MAX = jnp.iinfo(jnp.int32).max


class ScheduleState(NamedTuple):
  """State of an lrjax stateful schedule.

  Attributes:
    count: updates seen so far (int32, saturating at 2**31 - 1); the base
      schedule is evaluated at ``count``.
    factor: the adaptive multiplier: the learning rate is ``base(count) * factor``.
    lr: the learning rate used at the most recent update (``base(0)`` before any).
    num_nonfinite: values skipped because they were NaN or infinite (saturating).
    stats: the schedule's own decision statistics (a ``NamedTuple``).
  """
  count: jax.Array
  factor: jax.Array
  lr: jax.Array
  num_nonfinite: jax.Array
  stats: Any


def counter() -> jax.Array:
  """A fresh int32 zero. Each field gets its own buffer, so a state can be donated
  (``jit(..., donate_argnums=...)`` refuses one buffer passed twice)."""
  return jnp.zeros([], jnp.int32)


def saturating_increment(x: jax.Array, by: Any = 1) -> jax.Array:
  """``x + by`` for int32 counters, holding at 2**31 - 1 instead of wrapping."""
  by = jnp.asarray(by, jnp.int32)
  return jnp.where(x > _INT32_MAX - by, _INT32_MAX, x + by).astype(jnp.int32)


def as_stat(value: Any) -> jax.Array:
  """A statistic in float32 (float64 under x64), whatever the value's dtype."""
  return jnp.asarray(value).astype(float_dtype())


def device_mean(value: jax.Array, axis_name: Optional[str]) -> jax.Array:
  """The value averaged over ``axis_name`` (pmap / shard_map), or as is."""
  if axis_name is None:
    return value
  return jax.lax.pmean(value, axis_name)


def select_tree(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
  """Leafwise ``where(pred, on_true, on_false)`` for two trees of one structure."""
  return jax.tree.map(lambda a, b: jnp.where(pred, a, b).astype(jnp.asarray(b).dtype),
                      on_true, on_false)


def read_value(value: Any, axis_name: Optional[str]) -> tuple[jax.Array, jax.Array]:
  """The scalar statistic a schedule decides on, and whether it is finite."""
  v = as_stat(value)
  if v.ndim != 0:
    raise ValueError(f"lrjax: value must be a scalar loss or metric, got shape {v.shape}")
  v = device_mean(v, axis_name)
  return v, jnp.isfinite(v)


def reduced_factor(factor, lr, multiplier, min_value, eps):
  """The factor after ``lr -> max(lr * multiplier, min_value)``, PyTorch's rule.

  The change applies only if it lowers the learning rate by more than ``eps``
  (``ReduceLROnPlateau._reduce_lr``); a zero learning rate has nothing to reduce.
  """
  new_lr = jnp.maximum(lr * multiplier, min_value)
  apply = (lr - new_lr > eps) & (lr > 0)
  return jnp.where(apply, factor * new_lr / jnp.where(lr > 0, lr, 1), factor)


def raised_factor(factor, lr, multiplier, max_value, eps):
  """The factor after ``lr -> min(lr / multiplier, max_value)``, if it rises by > eps."""
  new_lr = lr / multiplier
  if max_value is not None:
    new_lr = jnp.minimum(new_lr, max_value)
  apply = (new_lr - lr > eps) & (lr > 0)
  return jnp.where(apply, factor * new_lr / jnp.where(lr > 0, lr, 1), factor)


@dataclasses.dataclass(frozen=True)
class StatefulSchedule:
  """Base of lrjax's stateful schedules: ``optax.schedules.StatefulSchedule``.

  ``init() -> state``, ``update(state, *, value) -> state`` and
  ``__call__(state) -> learning rate``, with ``lr = base(count) * factor``.
  The learning rate returned before ``update(state, value=v_t)`` is the one
  used at update ``t``. Subclasses implement ``_init_stats`` and ``_decide``.
  """

  base: Schedule
  axis_name: Optional[str]

  def _init_stats(self) -> Any:
    raise NotImplementedError

  def _decide(self, stats: Any, factor: jax.Array, lr: jax.Array, value: jax.Array):
    """One finite value: returns the new ``(stats, factor)``."""
    raise NotImplementedError

  def _lr(self, count: jax.Array, factor: jax.Array) -> jax.Array:
    return as_stat(self.base(count)) * factor

  def init(self) -> ScheduleState:
    count = counter()
    factor = jnp.ones([], float_dtype())
    return ScheduleState(count=count, factor=factor, lr=self._lr(count, factor),
                         num_nonfinite=counter(), stats=self._init_stats())

  def __call__(self, state: ScheduleState, **extra_args: Any) -> jax.Array:
    del extra_args
    return self._lr(state.count, state.factor)

  def update(self, state: ScheduleState, *, value: Any, **extra_args: Any) -> ScheduleState:
    """Feeds the loss (or metric) of the update just made; returns the next state.

    A NaN or infinite ``value`` leaves the decision statistics and the factor
    untouched and is counted in ``num_nonfinite``.
    """
    del extra_args
    v, finite = read_value(value, self.axis_name)
    lr = self(state)
    stats, factor = self._decide(state.stats, state.factor, lr, jnp.where(finite, v, 0))
    stats, factor = select_tree(finite, (stats, factor), (state.stats, state.factor))
    return ScheduleState(count=saturating_increment(state.count), factor=factor, lr=lr,
                         num_nonfinite=saturating_increment(state.num_nonfinite,
                                                            (~finite).astype(jnp.int32)),
                         stats=stats)


def _children(node: Any) -> list[Any]:
  if isinstance(node, dict):
    return list(node.values())
  if isinstance(node, (list, tuple)):
    return list(node)
  leaves, _ = jax.tree_util.tree_flatten(node, is_leaf=lambda x: x is not node)
  return [] if len(leaves) == 1 and leaves[0] is node else leaves


def find_in_state(node: Any, read: Any) -> Any:
  """Depth first through an optimizer state: the first ``read(node)`` that is not None.

  The one walker behind ``current_lr`` and ``averaged_params``: it sees through
  ``optax.chain``, ``MultiSteps``, ``apply_if_finite``, ``masked``, dicts and any
  registered pytree node.
  """
  found = read(node)
  if found is not None:
    return found
  for child in _children(node):
    found = find_in_state(child, read)
    if found is not None:
      return found
  return None


def base_schedule(base: Any, fn: str) -> Schedule:
  """The ``base`` argument: a float or any lrjax / Optax pure schedule."""
  return as_schedule(base, fn, "base")
