"""The small numeric toolbox every lrjax object shares (private, kind-neutral).

Schedules, stateful schedules and transforms all import from here, so none of
them reaches into another's private module for a helper: float32 statistics
(``as_float``), fresh and saturating int32 counters, the device mean behind
``axis_name``, reading the scalar a schedule decides on, and the finiteness
test of a tree. Where Optax has a public helper (``optax.safe_increment``,
``optax.tree.where``, ``optax.tree.vdot``) it is used rather than rewritten.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax


def float_dtype() -> jnp.dtype:
  """float32, or float64 when ``jax_enable_x64`` is on."""
  return jnp.dtype(jnp.result_type(float))


def as_float(x: Any) -> jax.Array:
  """``x`` in float32 (float64 under x64), whatever its dtype: learning rates, statistics and
  steps.

  An integer that is not yet a JAX array (a Python int, a NumPy integer or integer array) goes
  through float64 on the host, never through int32, so a step or a setting of any size works
  (``jnp.asarray(10**10)`` overflows int32): past the end of a schedule, its held value.
  """
  if isinstance(x, int) and not isinstance(x, bool):
    x = float(min(max(x, -sys.float_info.max), sys.float_info.max))
  elif isinstance(x, (np.integer, np.ndarray)) and np.asarray(x).dtype.kind in "iu":
    x = np.asarray(x, np.float64)
  return jnp.asarray(x).astype(float_dtype())


def counter() -> jax.Array:
  """A fresh int32 zero.

  Each field gets its own buffer, so a state can be donated
  (``jit(..., donate_argnums=...)`` refuses one buffer passed twice).
  """
  return jnp.zeros([], jnp.int32)


def strong_types(tree: Any) -> Any:
  """``tree`` with every weakly typed leaf made strong (same dtype): a jitted step that takes
  and returns it then sees one input type, not a weak one first (``optax.lbfgs``'s initial
  state holds weakly typed scalars, so its first step compiled twice)."""
  return jax.tree.map(lambda x: jnp.asarray(x, jnp.result_type(x)), tree)


def increment_if(count: jax.Array, condition: Any = True) -> jax.Array:
  """``count + 1`` where ``condition`` holds, saturating at the dtype's maximum."""
  return jnp.where(condition, optax.safe_increment(count), count)


def ring_next(position: jax.Array, size: int) -> jax.Array:
  """``(position + 1) % size`` for a ``position`` in ``[0, size)``, without the remainder: an
  integer remainder (or quotient) is a kernel of its own on XLA's CPU backend for each kernel
  that reads it, where a compare and a select fuse into their reader."""
  return jnp.where(position + 1 == size, 0, position + 1).astype(position.dtype)


def two_sum(total: jax.Array, x: Any, error: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``total + x`` rounded, and ``error`` plus the rounding error of that sum, exactly.

  Knuth's TwoSum, branch-free (six additions): with ``s = fl(total + x)``, ``total + x =
  s + e`` holds exactly for the ``e`` it computes, in round-to-nearest arithmetic without
  reassociation (XLA does not reassociate floating point). A running sum kept as
  ``(total, error)`` stays within a few ulps of the exact sum of what entered and left it,
  where a plain running sum drifts by an ulp of the largest value it ever held at every step.
  """
  x = jnp.asarray(x, jnp.result_type(total))
  s = total + x
  x_part = s - total
  total_part = s - x_part
  e = (total - total_part) + (x - x_part)
  return s, error + e


def device_mean(value: jax.Array, axis_name: Optional[str]) -> jax.Array:
  """The value averaged over ``axis_name`` (pmap / shard_map), or as is."""
  if axis_name is None:
    return value
  return jax.lax.pmean(value, axis_name)


def read_value(value: Any, axis_name: Optional[str], fn: str = "lrjax") -> tuple[jax.Array,
                                                                              jax.Array]:
  """The scalar statistic a schedule decides on (float32, device mean), and whether it is finite."""
  v = as_float(value)
  if v.ndim != 0:
    raise ValueError(f"{fn}: value must be a scalar loss or metric, got shape {v.shape}")
  v = device_mean(v, axis_name)
  return v, jnp.isfinite(v)


def all_finite(tree: Any) -> jax.Array:
  """True when every element of every leaf of ``tree`` is finite (a scalar bool)."""
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.asarray(True)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


_BITS = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}


def choose_bits(take_new: jax.Array, new: Any, old: Any) -> Any:
  """``new`` where the scalar ``take_new`` holds, else ``old``, leaf by leaf, with no select.

  Each element is ``(new & m) | (old & ~m)`` on its bits, ``m`` all ones or all zeros: exact
  for every value (NaN and inf included) and elementwise, so XLA fuses it into a pass it
  already makes. A ``jnp.where`` over parameter-sized leaves is an O(params) select, and a
  ``lax.cond`` copies the buffer it passes through.
  """
  def one(n, o):
    unsigned = _BITS[jnp.dtype(n.dtype).itemsize]
    mask = jnp.where(take_new, jnp.array(jnp.iinfo(unsigned).max, unsigned),
                     jnp.array(0, unsigned))
    bits = ((jax.lax.bitcast_convert_type(n, unsigned) & mask)
            | (jax.lax.bitcast_convert_type(o, unsigned) & ~mask))
    return jax.lax.bitcast_convert_type(bits, n.dtype)
  return jax.tree.map(one, new, old)


def scale_tree(tree: Any, factor: jax.Array) -> Any:
  """Every leaf times the scalar ``factor``, each leaf keeping its dtype."""
  return jax.tree.map(lambda x: (x * factor).astype(x.dtype), tree)


def vdot(a: Any, b: Any) -> jax.Array:
  """The float32 inner product of two trees of one structure (bf16 leaves upcast first)."""
  return optax.tree.vdot(jax.tree.map(as_float, a), jax.tree.map(as_float, b))
