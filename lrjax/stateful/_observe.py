"""Feeding a metric to the stateful schedules inside any optimizer state."""

from __future__ import annotations

from typing import Any, Optional, Union

import jax

from lrjax.stateful._core import ScheduleState


def _is_variable(x: Any) -> bool:
  """A flax.nnx Variable (e.g. the ``OptArray`` leaves of an ``nnx.Optimizer``'s state)."""
  return type(x).__module__.startswith("flax.") and hasattr(x, "get_value")


def raw_values(tree: Any) -> Any:
  """``tree`` with every flax.nnx Variable replaced by the array it holds."""
  return jax.tree.map(lambda x: x.get_value() if _is_variable(x) else x, tree,
                      is_leaf=_is_variable)


def _schedule_states(tree: Any) -> list[ScheduleState]:
  is_state = lambda x: isinstance(x, ScheduleState)  # noqa: E731
  return [x for x in jax.tree.leaves(tree, is_leaf=is_state) if is_state(x)]


def has_observer(opt_state: Any) -> bool:
  """Whether ``opt_state`` holds a stateful schedule built with ``signal="observe"``."""
  return any(n.schedule.signal == "observe" for n in _schedule_states(opt_state))


def _describe(i: int, node: ScheduleState) -> str:
  return f"[{i}] lrjax.{node.schedule.name}(signal={node.schedule.signal!r})"


def observe(opt_state: Any, value: Any, *, which: Optional[Union[int, str]] = None) -> Any:
  r"""Makes one decision of a stateful schedule inside an optimizer state, on ``value``.

  Finds the lrjax stateful schedule states in ``opt_state`` -- through
  ``optax.inject_hyperparams``, ``lrjax.as_transform``, ``optax.chain``,
  ``MultiSteps``, ``apply_if_finite``, ``masked``, any pytree -- and lets the
  chosen one decide on ``value`` (e.g. the validation loss at an epoch's end):
  its decision statistics and scale move exactly as one ``update(value=...)``
  would move them, but its count does not (the count advances per update, so a
  warmup underneath still moves per step). Works inside ``jit`` (at the end of
  a compiled chunk of steps, or under ``lax.cond`` every N steps) and eagerly
  between epochs. A NaN or infinite value changes nothing but
  ``num_nonfinite``; ``mode="max"`` schedules take accuracy-like metrics; a
  schedule with ``axis_name`` averages the value over that axis (call it
  inside the mapped function).

  Which schedule: the only one built with ``signal="observe"``; or ``which``,
  its index among the stateful schedule states in depth-first order or its
  name (``"reduce_on_plateau"``). Several candidates without ``which`` is an
  error, never a guess.

  ``hypergradient`` and ``window_search`` are not fed this way: the first
  follows the gradient of the training loss w.r.t. the rate at every step, the
  second scores its probes by the training losses they produce from one
  snapshot; a held-out metric measured once per epoch carries neither signal.

  Args:
    opt_state: an optimizer state, or a ``flax.nnx.Optimizer`` (updated in place).
    value: the scalar metric.
    which: an index or a schedule name, when the choice is not unique.

  Returns:
    The optimizer state with the chosen schedule's state after the decision
    (the same ``nnx.Optimizer``, updated, when one was passed).

  Raises:
    ValueError: no stateful schedule in the state, no unique choice, or a bad ``which``.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> s = lrjax.reduce_on_plateau(0.1, factor=0.5, patience=0, signal="observe")
    >>> tx = optax.inject_hyperparams(optax.sgd)(learning_rate=s)
    >>> state = tx.init(jnp.zeros(2))
    >>> for val_loss in [1.0, 1.0]:   # two epochs, the held-out loss flat
    ...   # ... the epoch's tx.update(grads, state, params) calls go here ...
    ...   state = lrjax.observe(state, val_loss)
    >>> _, state = tx.update(jnp.ones(2), state)
    >>> round(float(lrjax.current_lr(state)), 6)
    0.05
  """
  nnx_optimizer = opt_state if hasattr(opt_state, "opt_state") and hasattr(
      opt_state, "tx") else None
  tree = nnx_optimizer.opt_state if nnx_optimizer is not None else opt_state
  nodes = _schedule_states(tree)
  if not nodes:
    raise ValueError("lrjax.observe: the optimizer state holds no lrjax stateful schedule "
                     "(reduce_on_plateau, greedy, window_decay)")
  if which is None:
    chosen = [i for i, n in enumerate(nodes) if n.schedule.signal == "observe"]
    if len(chosen) != 1:
      found = ", ".join(_describe(i, n) for i, n in enumerate(nodes))
      why = ("none was built with signal='observe'" if not chosen else
             "several were built with signal='observe'")
      raise ValueError(f"lrjax.observe: which schedule? {why}; found {found}: pass which= "
                       "(an index or a name)")
    index = chosen[0]
  elif isinstance(which, str):
    named = [i for i, n in enumerate(nodes) if n.schedule.name == which]
    if len(named) != 1:
      found = ", ".join(_describe(i, n) for i, n in enumerate(nodes))
      raise ValueError(f"lrjax.observe: which={which!r} names {len(named)} of the stateful "
                       f"schedules found ({found}); pass an index")
    index = named[0]
  elif isinstance(which, int) and not isinstance(which, bool) and 0 <= which < len(nodes):
    index = which
  else:
    raise ValueError(f"lrjax.observe: which must be None, a schedule name or an index in "
                     f"[0, {len(nodes)}), got which={which!r}")
  target = nodes[index]
  raw = raw_values(target)
  decided = raw.schedule.observe(raw, value)
  if nnx_optimizer is not None:
    for var, new in zip(jax.tree.leaves(target, is_leaf=_is_variable), jax.tree.leaves(decided)):
      var.set_value(new)
    return nnx_optimizer
  return jax.tree.map(lambda x: decided if x is target else x, tree,
                      is_leaf=lambda x: isinstance(x, ScheduleState))
