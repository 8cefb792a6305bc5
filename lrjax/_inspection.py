"""Reading an optimizer state: the learning rate applied, the averaged parameters.

One walker (``collect``) goes through any optimizer state -- ``optax.chain``,
``inject_hyperparams``, ``MultiSteps``, ``apply_if_finite``, ``masked``, dicts
and any registered pytree node -- and every reader is built on it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _packed
from lrjax._numerics import as_float
from lrjax.schedules._base import as_schedule
from lrjax.transforms._as_transform import AsTransformState

# Readers find what they read by the field it is stored in, not by a list of state types:
# - the learning rate applied: a state's field ``lr`` (every lrjax stateful schedule's and
#   LR-owning transform's), or ``optax.inject_hyperparams``' ``hyperparams["learning_rate"]``;
#   an ``as_transform`` multiplier (``AsTransformState``) multiplies the rate it scales;
# - the values to log: a state's ``log_scalars()`` (a label and its scalars); a state with
#   ``averaged()`` holds averaged parameters.
# So a new transform needs no registration here: it names its fields.

# A visitor returns None (not recognised: walk on into every child) or
# ``(found, children)``: the items it found here and the children still to walk.
Visitor = Callable[[Any], Optional[tuple[list[Any], list[Any]]]]


def _children(node: Any) -> list[Any]:
  if isinstance(node, dict):
    return list(node.values())
  if isinstance(node, (list, tuple)):
    return list(node)
  leaves, _ = jax.tree_util.tree_flatten(node, is_leaf=lambda x: x is not node)
  return [] if len(leaves) == 1 and leaves[0] is node else leaves


def collect(node: Any, visit: Visitor) -> list[Any]:
  """Depth first through an optimizer state: every item ``visit`` finds, in order."""
  seen = visit(node)
  if seen is None:
    found, children = [], _children(node)
  else:
    found, children = list(seen[0]), list(seen[1])
  for child in children:
    found.extend(collect(child, visit))
  return found


def find_in_state(node: Any, read: Callable[[Any], Any]) -> Any:
  """The first ``read(node)`` that is not None, depth first, or None."""
  def visit(n):
    item = read(n)
    return None if item is None else ([item], [])

  found = collect(node, visit)
  return found[0] if found else None


def _fields(node: Any) -> tuple[str, ...]:
  """The field names of a ``NamedTuple`` or packed state (``()`` for anything else)."""
  return (getattr(node, "_fields", ()) if isinstance(node, (tuple, _packed.PackedState))
          else ())


def _lr_parts(node: Any):
  """Learning rates (``("rate", lr)``) and multipliers (``("mult", state)``) at ``node``."""
  if isinstance(node, AsTransformState):
    return [("mult", node.schedule_state)], []
  if "lr" in _fields(node):
    return [("rate", node.lr)], []
  hyperparams = getattr(node, "hyperparams", None)
  if isinstance(hyperparams, dict) and hasattr(node, "inner_state"):
    rates = [("rate", hyperparams[k]) for k in ("learning_rate", "lr") if k in hyperparams][:1]
    return rates, [node.inner_state]
  return None


def current_lr(opt_state: Any, replicated: bool = False, *, schedule: Any = None) -> jax.Array:
  """The learning rate applied at the most recent update, read from an optimizer state.

  The effective rate: the learning rate held in the state -- an lrjax
  stateful schedule's, ``optax.inject_hyperparams``'s
  ``hyperparams["learning_rate"]``, or an LR-owning transform's
  (``hypergradient``, ``window_search``) -- times the value of every
  ``lrjax.as_transform`` multiplier on the path, through ``optax.chain``,
  ``MultiSteps``, ``apply_if_finite``, ``masked`` and other nesting:

  .. math::
    \\eta_{\\text{eff}} = \\eta_{\\text{inner}} \\prod_k m_k

  A plain optimizer (``optax.adam(0.1)``) keeps its learning rate out of its
  state: pass it as ``schedule=`` (a number or a schedule, evaluated at the
  step of the most recent update), or build it with ``inject_hyperparams``.

  Args:
    opt_state: an optimizer state.
    replicated: the state is replicated over devices (``pmap``): return
      replica 0's value rather than one per device.
    schedule: the inner optimizer's learning rate (a number or a schedule of
      the step) when the state does not hold it.

  Returns:
    The learning rate (a scalar, or one per replica when ``replicated`` is False
    and the state has a device axis).

  Raises:
    ValueError: the state holds no learning rate; it holds an ``as_transform``
      multiplier but not the rate it multiplies (and no ``schedule=``); or it
      holds several learning rates, so "the" rate is ambiguous.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.inject_hyperparams(optax.adam)(learning_rate=lrjax.cosine_decay(1.0, 10))
    >>> state = tx.init(jnp.zeros(2))
    >>> _, state = tx.update(jnp.ones(2), state)
    >>> float(lrjax.current_lr(state))
    1.0
  """
  parts = collect(opt_state, _lr_parts)
  rates = [value for kind, value in parts if kind == "rate"]
  multipliers = [state for kind, state in parts if kind == "mult"]
  if len(rates) > 1:
    raise ValueError(
        f"lrjax.current_lr: the optimizer state holds {len(rates)} learning rates (e.g. "
        "optax.multi_transform groups or two inject_hyperparams), so the rate is ambiguous; "
        "call current_lr on the part of the state you mean")
  if rates:
    lr = as_float(rates[0])
  elif schedule is not None:
    count = multipliers[0].count if multipliers else None
    step = 0 if count is None else jnp.maximum(count - 1, 0)
    lr = as_float(as_schedule(schedule, "current_lr", "schedule")(step))
  elif multipliers:
    raise ValueError(
        "lrjax.current_lr: the state holds an lrjax.as_transform multiplier but not the "
        "learning rate it multiplies (a plain optimizer such as optax.adam(0.1) keeps its "
        "rate out of its state); pass schedule=<that rate or schedule>, build the optimizer "
        "with optax.inject_hyperparams, or use as_transform(..., multiplier=False) if the "
        "schedule's value is the rate itself")
  else:
    raise ValueError(
        "lrjax.current_lr: the optimizer state holds no learning rate; build the optimizer "
        "with optax.inject_hyperparams(...)(learning_rate=...) or an lrjax stateful schedule, "
        "or pass schedule=")
  for state in multipliers:
    lr = lr * as_float(state.lr)
  if replicated:
    if lr.ndim == 0:
      raise ValueError("lrjax.current_lr: replicated=True but the learning rate has no "
                       "device axis")
    return lr[0]
  return lr


def averaged_params(opt_state: Any) -> Any:
  """The averaged parameters held by an ``ema_params``, ``swa`` or ``lawa`` state.

  Found depth first anywhere in ``opt_state`` (``optax.chain``, ``MultiSteps``,
  ``masked`` ...).

  Args:
    opt_state: an optimizer state holding one of the averaging states.

  Returns:
    A pytree like the parameters.

  Raises:
    ValueError: the state holds no averaged parameters.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.sgd(1.0), lrjax.swa(start_step=0))
    >>> params = jnp.array([0.0])
    >>> state = tx.init(params)
    >>> updates, state = tx.update(jnp.array([-2.0]), state, params)
    >>> print(lrjax.averaged_params(state))
    [2.]
  """
  state = find_in_state(opt_state, lambda node: node if callable(
      getattr(type(node), "averaged", None)) else None)
  if state is None:
    raise ValueError("lrjax.averaged_params: the optimizer state holds no averaged parameters; "
                     "chain lrjax.ema_params, lrjax.swa or lrjax.lawa into the optimizer")
  return state.averaged()


def _logged_parts(node: Any):
  """``(label, {key: scalar})`` for each state at ``node`` that has values worth logging."""
  if callable(getattr(type(node), "log_scalars", None)):
    children = [node.inner_state] if "inner_state" in _fields(node) else []
    return [node.log_scalars()], children
  hyperparams = getattr(node, "hyperparams", None)
  if isinstance(hyperparams, dict) and hasattr(node, "inner_state"):
    scalars = {k: h for k, h in hyperparams.items()
               if k not in ("learning_rate", "lr") and jnp.ndim(h) <= 1}
    children = [node.inner_state, getattr(node, "hyperparams_states", None)]
    return ([("hyperparams", scalars)] if scalars else []), [c for c in children if c is not None]
  return None


def log_values(opt_state: Any, *, schedule: Any = None, prefix: str = "") -> dict[str, float]:
  """The values worth logging from any optimizer state, as ``{name: float}``.

  For TensorBoard, Weights & Biases or any ``log(dict)`` logger, between
  steps (it reads the values to the host once: do not call it inside ``jit``).
  Keys:

  - ``"lr"``: ``current_lr(opt_state, schedule=schedule)``, left out when the
    state does not hold its rate (a plain ``optax.adam(0.1)`` without ``schedule=``);
  - ``"<schedule name>/scale"``, ``"/num_nonfinite"``, ``"/num_spikes"`` (the spike
    guard's triggers), ``"/count"`` for each lrjax
    stateful schedule (``"reduce_on_plateau/scale"``; a second one of the same
    name gets ``"reduce_on_plateau_1/..."``);
  - ``"hypergradient/..."``, ``"window_search/..."`` and ``"learned_controller/..."`` (its
    rate, its ceiling after spikes, the non-finite and spike counts) for those transforms;
  - ``"hyperparams/<name>"`` for the other hyperparameters of
    ``optax.inject_hyperparams`` (``weight_decay``, ``b1`` ...).

  A replicated state (``pmap``) logs replica 0's values.

  Args:
    opt_state: an optimizer state.
    schedule: the rate of an optimizer whose state hides it (see ``current_lr``).
    prefix: put before every key (``"train/"``).

  Returns:
    ``{key: float}``.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.inject_hyperparams(optax.adamw)(
    ...     learning_rate=lrjax.reduce_on_plateau(0.1), weight_decay=1e-4)
    >>> state = tx.init(jnp.zeros(2))
    >>> values = lrjax.log_values(state, prefix="train/")
    >>> for key in ("train/lr", "train/reduce_on_plateau/scale",
    ...             "train/reduce_on_plateau/num_nonfinite", "train/hyperparams/weight_decay"):
    ...   print(key, round(values[key], 6))
    train/lr 0.1
    train/reduce_on_plateau/scale 1.0
    train/reduce_on_plateau/num_nonfinite 0.0
    train/hyperparams/weight_decay 0.0001
  """
  values: dict[str, Any] = {}
  try:
    values["lr"] = current_lr(opt_state, schedule=schedule)
  except ValueError:
    pass
  for label, scalars in collect(opt_state, _logged_parts):
    name, i = label, 0
    while any(k.startswith(name + "/") for k in values):
      i += 1
      name = f"{label}_{i}"
    values.update({f"{name}/{k}": v for k, v in scalars.items()})
  host = jax.device_get(values)
  return {prefix + k: float(np.asarray(v).reshape(-1)[0]) for k, v in host.items()}
