"""A state whose scalar leaves are stored in one vector per dtype (private, kind-neutral).

A stateful schedule keeps a dozen scalars (its count, scale, rate, guard and decision
statistics). Stored as separate leaves, each is a separate output of the compiled update, and
XLA computes each in its own small kernel (its CPU backend fuses no two outputs; on a GPU each is
a launch): ``reduce_on_plateau`` added 15 kernels to plain SGD's update. Stored as one float32
and one int32 vector, the new scalars of an update fuse into the kernel that writes their
vector: 4 more than SGD.

How a vector is written decides that. Each value is padded to its lane and the lanes are chosen
by a select over an iota: a pad reads its operand for its own lane only, so XLA fuses even an
expensive producer (a divide) into the vector's kernel. ``jnp.stack`` fuses nothing on the CPU
beyond a few operands (a kernel per scalar, then the concatenate), and a plain select over an
iota broadcasts each value to every lane, which XLA will not do to a divide (a kernel each).
Selects and pads move bits: the stored values are exact, and ``grad`` flows through them.

``PackedState`` keeps the ``NamedTuple`` interface of a logical state class: fields by name
(``state.count``, ``state.guard.num_spikes``), ``_replace``, ``_fields``, ``_asdict``,
``view()`` for the whole logical tuple; reading a field slices its vector (``[..., i]``, so a
state batched by ``vmap`` reads one value per member). The pytree children are the vectors
(key ``scalars_<dtype>``) and every non-scalar leaf (keyed by its logical path), so orbax,
``jit``, ``vmap`` and sharding see a fixed structure; the layout (the logical tree and where
each leaf sits) is static. Tools that find a field by its path see the vectors:
:func:`unpacked` gives them the logical tree.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple, TypeVar

import jax
import jax.numpy as jnp

_REST = "rest"


class _Layout(NamedTuple):
  """Where each leaf of the logical tree is stored (static: the pytree's aux data)."""
  slots: tuple[tuple[str, int], ...]  # per leaf: (vector dtype, index) or ("rest", index)
  dtypes: tuple[str, ...]            # the vectors' dtypes, in child order
  rest_keys: tuple[str, ...]         # the logical path of each non-scalar leaf
  fields: tuple[tuple[Any, int, int], ...]  # per field: (its treedef, first leaf, end)


def _is_scalar(leaf: Any) -> bool:
  return getattr(leaf, "ndim", None) == 0 or isinstance(leaf, (bool, int, float))


def stack_scalars(values: list[Any], dtype: Any) -> jax.Array:
  """``jnp.stack(values)`` (scalars of ``dtype``) written so XLA fuses it with the scalars'
  producers into one kernel (see the module docstring): each value padded to its lane, the
  lanes chosen by a select over an iota."""
  dtype = jnp.dtype(dtype)
  values = [jnp.asarray(v, dtype) for v in values]
  n = len(values)
  if n == 1:
    return jnp.reshape(values[0], (1,))
  index = jnp.arange(n)
  zero = jnp.zeros((), dtype)
  out = jax.lax.pad(jnp.reshape(values[0], (1,)), zero, [(0, n - 1, 0)])
  for i in range(1, n):
    lane = jax.lax.pad(jnp.reshape(values[i], (1,)), zero, [(i, n - 1 - i, 0)])
    out = jnp.where(index == i, lane, out)
  return out


#: XLA's CPU backend fuses a concatenate with its operands' producers only up to about this
#: many operands; beyond, each operand is a kernel of its own.
_FUSED_CONCAT = 7


def join_scalars(values: list[Any]) -> jax.Array:
  """``jnp.stack(values)`` (float32 scalars) in one kernel with their producers, for a vector
  that a reduction reads next (the learned controller's inputs): stacks of at most
  ``_FUSED_CONCAT``, joined by pads and a select (a concatenate of stacks is merged back into
  one concatenate of all of them). ``stack_scalars`` places each value in its own lane, which
  fuses any number of them, but there each of the inputs' producers kept a kernel of its own:
  44 and 50 kernels an update against 34 and 38 (4k parameters, a rate given or not)."""
  n = len(values)
  zero = jnp.zeros((), jnp.float32)
  parts = [jnp.stack(values[start:start + _FUSED_CONCAT]).astype(jnp.float32)
           for start in range(0, n, _FUSED_CONCAT)]
  out = jax.lax.pad(parts[0], zero, [(0, n - parts[0].shape[0], 0)])
  for k, part in enumerate(parts[1:], 1):
    start = k * _FUSED_CONCAT
    placed = jax.lax.pad(part, zero, [(start, n - start - part.shape[0], 0)])
    out = jnp.where(jnp.arange(n) < start, out, placed)
  return out


def pack(logical: Any) -> tuple[tuple[jax.Array, ...], tuple[Any, ...], _Layout]:
  """The vectors, the non-scalar leaves and the layout of a logical state (one flatten per
  field: each field's leaves are a run of the slots, read back alone by ``_field``)."""
  groups: dict[str, list[Any]] = {}
  slots: list[tuple[str, int]] = []
  rest: list[Any] = []
  rest_keys: list[str] = []
  fields: list[tuple[Any, int, int]] = []
  for field_name, field in zip(logical._fields, logical):
    with_paths, structure = jax.tree_util.tree_flatten_with_path(field)
    first = len(slots)
    for path, leaf in with_paths:
      if _is_scalar(leaf):
        name = jnp.result_type(leaf).name
        group = groups.setdefault(name, [])
        slots.append((name, len(group)))
        group.append(leaf)
      else:
        slots.append((_REST, len(rest)))
        rest.append(leaf)
        rest_keys.append(jax.tree_util.keystr((jax.tree_util.GetAttrKey(field_name), *path),
                                              simple=True, separator="."))
    fields.append((structure, first, len(slots)))
  dtypes = tuple(sorted(groups))
  vectors = tuple(stack_scalars(groups[name], name) for name in dtypes)
  return vectors, tuple(rest), _Layout(tuple(slots), dtypes, tuple(rest_keys), tuple(fields))


class PackedState:
  """Base of a state stored packed; subclasses set ``_logical`` to their ``NamedTuple`` of
  fields and register with :func:`register`. Built like the ``NamedTuple``
  (``State(count=..., ...)``); read like it."""

  _logical: ClassVar[Any]  # a NamedTuple class
  __slots__ = ("_vectors", "_rest", "_layout")

  def __init__(self, *args: Any, **kwargs: Any):
    self._set(*pack(self._logical(*args, **kwargs)))

  def _set(self, vectors, rest, layout) -> None:
    object.__setattr__(self, "_vectors", tuple(vectors))
    object.__setattr__(self, "_rest", tuple(rest))
    object.__setattr__(self, "_layout", layout)

  def __setattr__(self, name: str, value: Any) -> None:
    raise AttributeError(f"{type(self).__name__} is immutable: use _replace")

  @classmethod
  def _from_parts(cls, vectors, rest, layout):
    obj = object.__new__(cls)
    obj._set(vectors, rest, layout)
    return obj

  def _field(self, index: int) -> Any:
    """Field ``index`` of the logical tuple, each of its scalars read from its vector (only
    its own: a traced read adds a slice per scalar it holds)."""
    layout = self._layout
    structure, start, end = layout.fields[index]
    leaves = [self._rest[i] if name == _REST
              else self._vectors[layout.dtypes.index(name)][..., i]
              for name, i in layout.slots[start:end]]
    return jax.tree.unflatten(structure, leaves)

  def view(self) -> Any:
    """The logical ``NamedTuple``, each scalar read from its vector."""
    return self._logical(*(self._field(i) for i in range(len(self._layout.fields))))

  def __getattr__(self, name: str) -> Any:
    names = type(self)._logical._fields
    if name in names:
      return self._field(names.index(name))
    raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

  @property
  def _fields(self) -> tuple[str, ...]:
    return type(self)._logical._fields

  def _asdict(self) -> dict[str, Any]:
    return self.view()._asdict()

  def _replace(self, **changes: Any):
    if any(getattr(v, "ndim", 1) != 1 for v in self._vectors):
      raise ValueError(f"{type(self).__name__}._replace: the state is batched (its scalars have "
                       "a leading axis); replace fields inside jax.vmap, where each is a scalar")
    return type(self)(*self.view()._replace(**changes))

  def __iter__(self):
    return iter(self.view())

  def __repr__(self) -> str:
    try:
      fields = ", ".join(f"{k}={v!r}" for k, v in self._asdict().items())
    except Exception:  # leaves that are not arrays (a tree of specs, say)
      fields = f"vectors={self._vectors!r}, rest={self._rest!r}"
    return f"{type(self).__name__}({fields})"


_P = TypeVar("_P", bound=PackedState)
_PACKED_OF: dict[type, type] = {}  # logical NamedTuple class -> its PackedState class


def register(cls: type[_P]) -> type[_P]:
  """Registers a :class:`PackedState` subclass as a pytree (with keys, for orbax)."""
  _PACKED_OF[cls._logical] = cls

  def flatten_with_keys(state):
    layout = state._layout
    keys = ([jax.tree_util.GetAttrKey(f"scalars_{d}") for d in layout.dtypes]
            + [jax.tree_util.GetAttrKey(k) for k in layout.rest_keys])
    return list(zip(keys, state._vectors + state._rest)), layout

  def flatten(state):
    return state._vectors + state._rest, state._layout

  def unflatten(layout, children):
    children = tuple(children)
    n = len(layout.dtypes)
    return cls._from_parts(children[:n], children[n:], layout)

  jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
  return cls


def unpacked(tree: Any) -> Any:
  """``tree`` with every packed state replaced by its logical ``NamedTuple`` (``view()``), for
  tools that find a field by its path (``jax.tree_util.tree_map_with_path``,
  ``optax.tree_utils.tree_get``); :func:`repacked` undoes it."""
  is_packed = lambda x: isinstance(x, PackedState)  # noqa: E731
  return jax.tree.map(lambda x: unpacked(x.view()) if is_packed(x) else x, tree,
                      is_leaf=is_packed)


def repacked(tree: Any) -> Any:
  """The inverse of :func:`unpacked`: every logical state packed again."""
  is_logical = lambda x: type(x) in _PACKED_OF  # noqa: E731
  return jax.tree.map(lambda x: _PACKED_OF[type(x)](*repacked(tuple(x))) if is_logical(x)
                      else x, tree, is_leaf=is_logical)
