"""A stateful schedule as a gradient transformation, and reading the learning rate."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from lrjax.stateful._core import ScheduleState, find_in_state


class AsTransformState(NamedTuple):
  """State of ``as_transform``: the wrapped schedule's state."""
  schedule_state: Any


def as_transform(schedule: Any) -> optax.GradientTransformationExtraArgs:
  r"""A stateful schedule as a transformation that scales updates by its value.

  ``update(updates, state, params=None, *, value)`` multiplies the updates by
  ``schedule(state)`` (the learning rate before seeing ``value``), then feeds
  ``value`` to the schedule. Chain it after an optimizer that already holds
  its learning rate with ``base=1.0``, so the value is the pure adaptive factor
  (as ``optax.contrib.reduce_on_plateau`` is used), or after a scale-free
  direction (``optax.scale_by_adam()``) with ``base`` the learning rate and a
  final ``optax.scale(-1.0)``.

  Args:
    schedule: an lrjax stateful schedule (or any ``optax.schedules.StatefulSchedule``).

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``value=`` is keyword-only
    and required.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.sgd(0.1), lrjax.as_transform(lrjax.reduce_on_plateau(1.0)))
    >>> params = jnp.zeros(2)
    >>> state = tx.init(params)
    >>> updates, state = tx.update(jnp.ones(2), state, params, value=jnp.float32(1.0))
    >>> print(updates)
    [-0.1 -0.1]
    >>> print(float(lrjax.current_lr(state)))
    1.0
  """

  def init_fn(params):
    del params
    return AsTransformState(schedule.init())

  def update_fn(updates, state, params=None, *, value, **extra_args):
    del params
    lr = schedule(state.schedule_state, **extra_args)
    new = schedule.update(state.schedule_state, value=value, **extra_args)
    updates = jax.tree.map(lambda u: (u * lr).astype(u.dtype), updates)
    return updates, AsTransformState(new)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _read_lr(node: Any) -> Optional[jax.Array]:
  if isinstance(node, ScheduleState):
    return node.lr
  if hasattr(node, "_fields") and "lr" in node._fields:
    return node.lr
  hyperparams = getattr(node, "hyperparams", None)
  if isinstance(hyperparams, dict):
    for key in ("learning_rate", "lr"):
      if key in hyperparams:
        return hyperparams[key]
  return None


def current_lr(opt_state: Any, replicated: bool = False) -> jax.Array:
  """The learning rate applied at the most recent update, read from an optimizer state.

  Finds, depth first, the first learning rate in ``opt_state``: an lrjax
  stateful schedule's state (``ScheduleState.lr``), any lrjax transform state
  with an ``lr`` field, or ``hyperparams["learning_rate"]`` of
  ``optax.inject_hyperparams`` — through ``optax.chain``, ``MultiSteps``,
  ``apply_if_finite``, ``masked`` and other nesting.

  Args:
    opt_state: an optimizer state.
    replicated: the state is replicated over devices (``pmap``): return
      replica 0's value rather than one per device.

  Returns:
    The learning rate (a scalar, or one per replica when ``replicated`` is False
    and the state has a device axis).

  Raises:
    ValueError: the state holds no learning rate.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.inject_hyperparams(optax.adam)(learning_rate=lrjax.cosine_decay(1.0, 10))
    >>> state = tx.init(jnp.zeros(2))
    >>> _, state = tx.update(jnp.ones(2), state)
    >>> float(lrjax.current_lr(state))
    1.0
  """
  lr = find_in_state(opt_state, _read_lr)
  if lr is None:
    raise ValueError(
        "lrjax.current_lr: the optimizer state holds no learning rate; build the optimizer "
        "with optax.inject_hyperparams(...)(learning_rate=...) or an lrjax stateful schedule")
  lr = jnp.asarray(lr)
  if replicated:
    if lr.ndim == 0:
      raise ValueError("lrjax.current_lr: replicated=True but the learning rate has no "
                       "device axis")
    return lr[0]
  return lr
