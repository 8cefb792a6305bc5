"""A stateful schedule as a gradient transformation that scales updates."""

from __future__ import annotations

from typing import Any, NamedTuple

import optax

from lrjax._numerics import scale_tree


class AsTransformState(NamedTuple):
  """State of ``as_transform``: the wrapped schedule's state; its value multiplies the rate."""
  schedule_state: Any


class AsLearningRateState(NamedTuple):
  """State of ``as_transform(..., multiplier=False)``: its value is the learning rate itself."""
  schedule_state: Any


def as_transform(schedule: Any, *, multiplier: bool = True
                 ) -> optax.GradientTransformationExtraArgs:
  r"""A stateful schedule as a transformation that scales updates by its value.

  ``update(updates, state, params=None, *, value)`` multiplies the updates by
  ``schedule(state)`` (the learning rate before seeing ``value``), then feeds
  ``value`` to the schedule. Two ways to chain it:

  - after an optimizer that holds its learning rate, with ``base=1.0``, so the
    value is a pure adaptive multiplier (as ``optax.contrib.reduce_on_plateau``
    is used): ``optax.chain(optax.adam(1e-3), as_transform(reduce_on_plateau(1.0)))``;
  - after a scale-free direction, with ``base`` the learning rate and
    ``multiplier=False``: ``optax.chain(optax.scale_by_adam(),
    as_transform(reduce_on_plateau(1e-3), multiplier=False), optax.scale(-1.0))``.

  ``multiplier`` changes nothing in the update; it tells ``lrjax.current_lr``
  whether the value multiplies a learning rate held elsewhere in the state
  (the effective rate is their product) or is the rate itself.

  Args:
    schedule: an lrjax stateful schedule (or any ``optax.schedules.StatefulSchedule``).
    multiplier: the schedule's value multiplies the learning rate of the
      optimizer before it (``True``) or is the learning rate (``False``).

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``value=`` is keyword-only,
    required by a schedule with ``signal="update"`` (a clear ``TypeError``
    without it) and not by one with ``signal="observe"``.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> inner = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    >>> tx = optax.chain(inner, lrjax.as_transform(lrjax.reduce_on_plateau(1.0)))
    >>> params = jnp.zeros(2)
    >>> state = tx.init(params)
    >>> updates, state = tx.update(jnp.ones(2), state, params, value=jnp.float32(1.0))
    >>> print(updates)
    [-0.1 -0.1]
    >>> print(round(float(lrjax.current_lr(state)), 6))  # 0.1 (inner) x 1.0 (multiplier)
    0.1
  """
  state_type = AsTransformState if multiplier else AsLearningRateState

  def init_fn(params):
    del params
    return state_type(schedule.init())

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del params
    lr = schedule(state.schedule_state, **extra_args)
    new = schedule.update(state.schedule_state, value=value, **extra_args)
    return scale_tree(updates, lr), state_type(new)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
