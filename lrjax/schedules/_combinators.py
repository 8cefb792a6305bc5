"""Combinators: join schedules in time, scale, clip and multiply them."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _validation as v
from lrjax._numerics import as_float
from lrjax.schedules._base import (Schedule, as_schedule, public, schedule_class, warmup_steps_for,
                                   create)
from lrjax.schedules._decay import _as_1d

ArrayLike = jax.typing.ArrayLike


def _traced(leaves: list[Any]) -> bool:
  return any(isinstance(x, jax.core.Tracer) for x in leaves)


def _stack(leaves: list[Any]) -> Any:
  if _traced(leaves):
    return jnp.stack([jnp.asarray(x) for x in leaves])
  return jnp.asarray(np.stack([np.asarray(x) for x in leaves]))


def _group_pieces(pieces: Sequence[Schedule]):
  """Groups pieces by pytree structure and stacks each group's leaves.

  Returns the stacked groups (one schedule per structure whose leaves carry a
  leading piece axis) and, per piece, its group and its row in the group.
  """
  order: dict[Any, int] = {}
  members: list[list[list[Any]]] = []
  treedefs = []
  piece_group, piece_row = [], []
  for piece in pieces:
    leaves, treedef = jax.tree.flatten(piece)
    shapes = tuple(np.shape(x) for x in leaves)
    key = (treedef, shapes)
    if key not in order:
      order[key] = len(members)
      members.append([])
      treedefs.append(treedef)
    g = order[key]
    piece_group.append(g)
    piece_row.append(len(members[g]))
    members[g].append(leaves)
  groups = []
  for treedef, rows in zip(treedefs, members):
    columns = [_stack(list(col)) for col in zip(*rows)] if rows[0] else []
    groups.append(jax.tree.unflatten(treedef, columns))
  return (tuple(groups), jnp.asarray(piece_group, jnp.int32),
          jnp.asarray(piece_row, jnp.int32))


@schedule_class("join")
class Join(Schedule):
  boundaries: Any
  groups: tuple
  piece_group: Any
  piece_row: Any

  @property
  def schedules(self) -> list[Schedule]:
    """The joined pieces, in order.

    Outside a trace each group's stacked leaves are read to the host once and a piece's
    leaves are NumPy values (indexing device arrays would run one small program per leaf and
    piece: seconds for 10,000 pieces, which ``repr`` and ``jax.jit(join)`` pay)."""
    rows = np.asarray(self.piece_row).tolist()
    groups = np.asarray(self.piece_group).tolist()
    traced = _traced(jax.tree.leaves(self.groups))
    stacked = self.groups if traced else jax.tree.map(np.asarray, self.groups)
    return [jax.tree.map(lambda x, r=r: x[r], stacked[g]) for g, r in zip(groups, rows)]

  def config_args(self):
    return {"schedules": self.schedules,
            "boundaries": self.boundaries}

  def _piece_value(self, t):
    bounds = as_float(self.boundaries)
    idx = jnp.searchsorted(bounds, t, side="right")
    start = jnp.where(idx > 0, bounds[jnp.maximum(idx - 1, 0)], 0.0)
    local = t - start
    row = jnp.asarray(self.piece_row)[idx]

    def branch(group):
      return lambda local, row: jax.tree.map(lambda x: x[row], group)(local)

    branches = [branch(g) for g in self.groups]
    if len(branches) == 1:
      return branches[0](local, row)
    return jax.lax.switch(jnp.asarray(self.piece_group)[idx], branches, local, row)

  def _value(self, t):
    if t.ndim == 0:
      return self._piece_value(t)
    return jax.vmap(self._piece_value)(t.reshape(-1)).reshape(t.shape)


@public(preset=lambda steps, peak: dict(
    schedules=[create("linear", init_value=0.0, end_value=peak,
                      transition_steps=warmup_steps_for(steps)),
               create("cosine_decay", init_value=peak,
                      decay_steps=max(steps - warmup_steps_for(steps), 1))],
    boundaries=[warmup_steps_for(steps)]))
def join(schedules: Sequence[Any], boundaries: Sequence[ArrayLike]) -> Schedule:
  r"""Runs ``schedules`` one after another (``optax.join_schedules`` semantics).

  With boundaries :math:`b_1 \le \dots \le b_{n-1}` and :math:`b_0 = 0`, piece
  :math:`k(t) = \#\{i \ge 1 : b_i \le t\}` applies and sees the step relative to
  its own start:

  .. math::
    \eta_t = s_{k(t)}(t - b_{k(t)})

  Cost does not grow with the number of pieces: pieces of one structure (e.g.
  10,000 ``cosine_decay`` pieces with different values) are stacked into one
  schedule whose leaves carry a piece axis, the piece is found by binary search
  and its parameters gathered; pieces of different structures are dispatched
  by ``lax.switch`` over the distinct structures only.

  Args:
    schedules: ``n`` schedules (lrjax or Optax schedules, or floats).
    boundaries: ``n - 1`` non-decreasing steps >= 0.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.join([lrjax.linear(0.0, 1.0, 10), lrjax.cosine_decay(1.0, 100)], [10])
    >>> [round(float(s(t)), 2) for t in (0, 5, 10, 60, 110)]
    [0.0, 0.5, 1.0, 0.5, 0.0]

  References:
    `optax.join_schedules <https://optax.readthedocs.io/en/latest/api/optimizer_schedules.html>`_.
  """
  fn = "join"
  if isinstance(schedules, (Schedule, dict)) or not hasattr(schedules, "__len__"):
    raise ValueError(f"lrjax.{fn}: schedules must be a sequence of schedules, "
                     f"got schedules={schedules!r}")
  pieces = [as_schedule(s, fn, f"schedules[{i}]") for i, s in enumerate(schedules)]
  if not pieces:
    raise ValueError(f"lrjax.{fn}: schedules must hold at least one schedule, got []")
  bounds = _as_1d(fn, "boundaries", boundaries)
  if bounds.shape[0] != len(pieces) - 1:
    raise ValueError(
        f"lrjax.{fn}: boundaries must have len(schedules) - 1 = {len(pieces) - 1} "
        f"entries, got {bounds.shape[0]}")
  v.non_negative(fn, "boundaries", bounds)
  v.increasing(fn, "boundaries", bounds, strict=False)
  groups, piece_group, piece_row = _group_pieces(pieces)
  return Join(bounds, groups, piece_group, piece_row)


@schedule_class("scale")
class Scale(Schedule):
  schedule: Schedule
  factor: Any

  def _value(self, t):
    return as_float(self.factor) * self.schedule(t)


@public(preset=lambda steps, peak: dict(
    schedule=create("cosine_decay", init_value=1.0, decay_steps=steps), factor=peak))
def scale(schedule: Any, factor: ArrayLike) -> Schedule:
  r"""Multiplies a schedule by a constant: :math:`\eta_t = c\, s(t)`.

  Args:
    schedule: the schedule ``s``.
    factor: the constant ``c``.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> print(float(lrjax.scale(lrjax.linear(1.0, 0.0, 10), 0.5)(0)))
    0.5
  """
  return Scale(as_schedule(schedule, "scale", "schedule"), factor)


@schedule_class("clip")
class Clip(Schedule):
  schedule: Schedule
  min_value: Any = None
  max_value: Any = None

  def _value(self, t):
    value = self.schedule(t)
    if self.min_value is not None:
      value = jnp.maximum(value, as_float(self.min_value))
    if self.max_value is not None:
      value = jnp.minimum(value, as_float(self.max_value))
    return value


@public(preset=lambda steps, peak: dict(
    schedule=create("cosine_decay", init_value=peak, decay_steps=steps), min_value=peak / 100))
def clip(schedule: Any, min_value: Optional[ArrayLike] = None,
         max_value: Optional[ArrayLike] = None) -> Schedule:
  r"""Clips a schedule: :math:`\eta_t = \min(\max(s(t), a), b)`.

  Args:
    schedule: the schedule ``s``.
    min_value: the floor ``a`` (none when ``None``).
    max_value: the ceiling ``b`` (none when ``None``); ``a <= b``.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.clip(lrjax.linear(1.0, 0.0, 10), min_value=0.2)
    >>> [round(float(s(t)), 2) for t in (0, 5, 10)]
    [1.0, 0.5, 0.2]
  """
  lo, hi = v.concrete(min_value), v.concrete(max_value)
  if lo is not None and hi is not None and not lo <= hi:
    v.fail("clip", "max_value", f">= min_value={lo.item()!r}", max_value)
  return Clip(as_schedule(schedule, "clip", "schedule"), min_value, max_value)


@schedule_class("product")
class Product(Schedule):
  schedules: tuple

  def config_args(self):
    return {"schedules": list(self.schedules)}

  def __repr__(self):
    return f"lrjax.product({', '.join(repr(s) for s in self.schedules)})"

  def _value(self, t):
    value = jnp.ones_like(t)
    for s in self.schedules:
      value = value * s(t)
    return value


@public(preset=lambda steps, peak: dict(schedules=[
    create("warmup", schedule=1.0, warmup_steps=warmup_steps_for(steps)),
    create("cosine_decay", init_value=peak, decay_steps=steps)]))
def product(*schedules: Any) -> Schedule:
  r"""Multiplies schedules pointwise: :math:`\eta_t = \prod_i s_i(t)`.

  Args:
    *schedules: one or more schedules (or floats).

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.product(lrjax.constant(2.0), lrjax.step_decay(1.0, 10, 0.5))
    >>> [float(s(t)) for t in (0, 10)]
    [2.0, 1.0]
  """
  if not schedules:
    raise ValueError("lrjax.product: needs at least one schedule, got none")
  return Product(tuple(as_schedule(s, "product", f"schedules[{i}]")
                       for i, s in enumerate(schedules)))
