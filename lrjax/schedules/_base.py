"""The schedule base class, the name registry and the config round trip.

A schedule is an immutable dataclass registered as a JAX pytree: numeric
hyperparameters are leaves, structural choices (a mode, a shape) are static
fields. Public constructors (``lrjax.cosine_decay`` ...) validate their
arguments and build the object; unflattening a pytree (inside ``jit``,
``vmap``, ``grad``) never re-validates, so traced and batched leaves are fine.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from typing import Any, Callable, ClassVar, Optional, TypeVar

if sys.version_info >= (3, 11):
  from typing import dataclass_transform
else:  # Python 3.10: type checkers read it from typing_extensions; at run time a no-op
  def dataclass_transform(**_: Any) -> Callable[[Any], Any]:
    return lambda fn: fn

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _validation
from lrjax._numerics import as_float

# name -> the public constructor, for ``create`` / ``from_config`` / ``lrjax list``;
# name -> ``(steps, peak) -> kwargs``, the arguments ``lrjax compare`` builds it with.
_REGISTRY: dict[str, Callable[..., Any]] = {}
_PRESETS: dict[str, Callable[[int, float], dict[str, Any]]] = {}


def fraction(done: Any, total: Any) -> jax.Array:
  """``done / total`` clipped to [0, 1], exactly 1 once ``done >= total``.

  XLA may compute ``x / c`` as ``x * (1 / c)``, which lands a hair off 1 at
  the end of a phase (a final value 1.5% off after a lerp to a small end) or
  above it (``(1 - f) ** p`` is then NaN). Every phase fraction goes through here.
  """
  done, total = as_float(done), as_float(total)
  safe = jnp.where(total > 0, total, 1)
  return jnp.where(done >= total, 1.0, jnp.clip(done / safe, 0, 1))


def lerp(start: Any, end: Any, frac: Any) -> jax.Array:
  """``start`` at frac 0, ``end`` at frac 1, exactly at both ends.

  The weighted form avoids the cancellation of ``start + (end - start) * frac``,
  which in float32 misses a small ``end`` (e.g. 4e-6 after a peak of 1) by 0.2%.
  """
  return start * (1 - frac) + end * frac


_T = TypeVar("_T")


def static(**kwargs: Any) -> Any:
  """A dataclass field that is static pytree metadata (mode, shape)."""
  return dataclasses.field(metadata={"static": True}, **kwargs)


class Configurable:
  """Config round trip and a ``repr`` that reads as the call that built the object.

  Shared by pure and stateful schedules: every dataclass field is an argument
  of the public constructor called ``name``.
  """

  name: ClassVar[str] = "schedule"

  def config_args(self) -> dict[str, Any]:
    """The constructor's keyword arguments that rebuild this schedule."""
    return {f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)}  # type: ignore[arg-type]  # subclasses are dataclasses

  def to_config(self) -> dict[str, Any]:
    """A JSON-serialisable dict; ``lrjax.from_config`` rebuilds the schedule.

    >>> import lrjax
    >>> lrjax.step_decay(0.1, 30).to_config()
    {'name': 'step_decay', 'init_value': 0.1, 'step_size': 30, 'gamma': 0.1}
    """
    out: dict[str, Any] = {"name": self.name}
    for key, value in self.config_args().items():
      out[key] = _to_json(value, self.name)
    return out

  def __repr__(self) -> str:
    args = ", ".join(f"{k}={_repr_value(v)}" for k, v in self.config_args().items())
    return f"lrjax.{self.name}({args})"


class Schedule(Configurable):
  """Base class of every lrjax pure schedule: ``step -> learning rate``.

  Subclasses implement ``_value(t)`` for a float array ``t`` of steps (already
  clipped at 0). Calling a schedule accepts a Python number or an array of
  steps, int or float, and returns float32 (float64 under x64) of the same shape.
  """

  def __call__(self, step: jax.typing.ArrayLike) -> jax.Array:
    t = jnp.maximum(as_float(step), 0)
    return as_float(self._value(t))

  def _value(self, t: jax.Array) -> jax.Array:
    raise NotImplementedError


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, static))
def schedule_class(name: str, kw_only: bool = False) -> Callable[[type[_T]], type[_T]]:
  """Makes ``cls`` a frozen dataclass pytree whose public constructor is ``name``.

  Fields marked ``static()`` are pytree metadata, every other field a child;
  ``kw_only`` makes the class constructible by keyword only.
  """

  def wrap(cls: type[_T]) -> type[_T]:
    cls = dataclasses.dataclass(frozen=True, eq=False, repr=False, kw_only=kw_only)(cls)
    cls.name = name  # type: ignore[attr-defined]  # every schedule class has a name
    _register_pytree(cls)
    return cls

  return wrap


def _register_pytree(cls: type) -> None:
  """Registers the frozen dataclass ``cls`` as a pytree node: its ``static()`` fields the
  node's metadata, the others its children (keyed by attribute, as
  ``jax.tree_util.register_dataclass`` keys them).

  Not through ``register_dataclass``: in jax 0.10.2 two dataclass nodes of different classes
  with the same number of children and equal metadata have equal tree structures (while their
  hashes differ), so ``jax.jit``'s cache could run a program traced for one schedule class on
  another's leaves (``step_decay``'s for ``inverse_sqrt``'s: both one float, one int, one
  float), once in a while, when their signatures met in the cache. A custom node's structure
  includes its class (``tests/test_common.py`` checks it across the suite's classes).
  """
  fields = dataclasses.fields(cls)
  data = tuple(f.name for f in fields if not f.metadata.get("static"))
  meta = tuple(f.name for f in fields if f.metadata.get("static"))
  keys = tuple(jax.tree_util.GetAttrKey(n) for n in data)

  def flatten(obj):
    return [getattr(obj, n) for n in data], tuple(getattr(obj, n) for n in meta)

  def flatten_with_keys(obj):
    children, aux = flatten(obj)
    return list(zip(keys, children)), aux

  def unflatten(aux, children):
    return cls(**dict(zip(data, children)), **dict(zip(meta, aux)))

  jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)


def public(fn: Optional[Callable[..., Any]] = None, *,
           preset: Optional[Callable[[int, float], dict[str, Any]]] = None) -> Any:
  """Registers a public constructor by name and refuses non-finite numbers.

  ``preset(steps, peak)`` gives the arguments that build it for a training run
  of ``steps`` updates peaking at ``peak`` (what ``lrjax compare`` trains with).
  Usable as ``@public`` or ``@public(preset=...)``.
  """
  if fn is None:
    return lambda f: public(f, preset=preset)
  wrapped = _validation.checks_finite(fn)
  _REGISTRY[fn.__name__] = wrapped
  if preset is not None:
    _PRESETS[fn.__name__] = preset
  return wrapped


def warmup_steps_for(steps: int) -> int:
  """The warmup length presets use: a tenth of the run, at least 1."""
  return max(steps // 10, 1)


def build_preset(name: str, steps: int, peak: float, **overrides: Any) -> Any:
  """``create(name, **preset(steps, peak), **overrides)``: the registered schedule for one run."""
  if name not in _PRESETS:
    raise ValueError(f"lrjax: schedule {name!r} has no preset for a training run")
  return create(name, **{**_PRESETS[name](steps, peak), **overrides})


def preset_names() -> list[str]:
  """The registered names that ``build_preset`` can build, sorted."""
  return sorted(_PRESETS)


@schedule_class("function")
class FunctionSchedule(Schedule):
  """Wraps an arbitrary ``step -> value`` callable (e.g. an Optax schedule).

  The callable is static metadata: it cannot be serialised by ``to_config``.
  """

  fn: Callable[[jax.Array], jax.Array] = static()

  def __call__(self, step):
    return as_float(self.fn(jnp.maximum(jnp.asarray(step), 0)))

  def to_config(self):
    raise ValueError(
        f"lrjax.to_config: {self.fn!r} is an arbitrary callable, not an lrjax "
        "schedule; only lrjax schedules can be serialised")

  def __repr__(self):
    return f"lrjax.FunctionSchedule({self.fn!r})"


def as_schedule(value: Any, fn: str, name: str) -> Schedule:
  """A float becomes ``constant``; a callable is wrapped; a schedule stays."""
  if isinstance(value, Schedule):
    return value
  if isinstance(value, dict):
    return from_config(value)
  if callable(value):
    return FunctionSchedule(value)
  arr = _validation.concrete(value)
  if arr is not None and arr.ndim == 0 or isinstance(value, jax.core.Tracer):
    return _REGISTRY["constant"](value)
  raise ValueError(
      f"lrjax.{fn}: {name} must be a schedule, a callable or a number, "
      f"got {name}={value!r}")


def _as_written(value: Any) -> Any:
  """An array as Python numbers, each low-precision float as its shortest decimal.

  ``float32(1e-3)`` is written ``0.001``, not ``0.0010000000474974513``; it
  reads back to the same float32.
  """
  arr = np.asarray(value)
  if arr.dtype.kind == "f" and arr.dtype.itemsize < 8:
    return np.array([float(str(x)) for x in arr.reshape(-1)]).reshape(arr.shape).tolist()
  return arr.tolist()


def _to_json(value: Any, where: str) -> Any:
  if isinstance(value, Schedule):
    return value.to_config()
  if isinstance(value, (list, tuple)):
    return [_to_json(v, where) for v in value]
  if value is None or isinstance(value, (str, bool)):
    return value
  if isinstance(value, jax.core.Tracer):
    raise ValueError(f"lrjax.to_config: {where} holds a traced value; "
                     "call to_config outside jit/vmap/grad")
  return _as_written(value)


def _repr_value(value: Any) -> str:
  if isinstance(value, Schedule):
    return repr(value)
  if isinstance(value, (list, tuple)):
    return "[" + ", ".join(_repr_value(v) for v in value) + "]"
  if isinstance(value, (jax.Array, np.ndarray, np.generic)) and not isinstance(
      value, jax.core.Tracer):
    return repr(_as_written(value))
  return repr(value)


def _from_json(value: Any) -> Any:
  if isinstance(value, dict) and "name" in value:
    return from_config(value)
  if isinstance(value, list) and value and all(
      isinstance(v, dict) and "name" in v for v in value):
    return [from_config(v) for v in value]
  return value


def from_config(config: dict[str, Any]) -> Any:
  """Rebuilds a schedule from ``Schedule.to_config()`` output (nested too).

  Args:
    config: a dict with ``"name"`` (a public constructor) and its arguments.

  Returns:
    The schedule that ``lrjax.<name>(**arguments)`` builds.

  Example:
    >>> import lrjax
    >>> s = lrjax.from_config({"name": "cosine_decay", "init_value": 1.0,
    ...                        "decay_steps": 100})
    >>> print(f"{float(s(50)):.2f}")
    0.50
  """
  if not isinstance(config, dict) or "name" not in config:
    raise ValueError(
        f"lrjax.from_config: config must be a dict with a 'name' key, got {config!r}")
  kwargs = dict(config)
  name = kwargs.pop("name")
  return create(name, **{k: _from_json(v) for k, v in kwargs.items()})


def create(name: str, **kwargs: Any) -> Any:
  """Builds a schedule (pure or stateful) by its constructor's name: ``create("wsd", ...)``.

  Args:
    name: the name of a public lrjax schedule constructor.
    **kwargs: its arguments.

  Returns:
    The schedule.

  Example:
    >>> import lrjax
    >>> s = lrjax.create("step_decay", init_value=1.0, step_size=10)
    >>> print(round(float(s(10)), 6))
    0.1
  """
  if name not in _REGISTRY:
    known = ", ".join(sorted(_REGISTRY))
    raise ValueError(f"lrjax.create: unknown schedule name {name!r}; known: {known}")
  factory = _REGISTRY[name]
  signature = inspect.signature(factory)
  var = [p for p in signature.parameters.values() if p.kind is p.VAR_POSITIONAL]
  if var and var[0].name in kwargs:
    args = kwargs.pop(var[0].name)
    return factory(*args, **kwargs)
  try:
    signature.bind(**kwargs)
  except TypeError as e:
    raise ValueError(f"lrjax.{name}: {e}") from None
  return factory(**kwargs)


def schedule_names() -> list[str]:
  """The names ``create`` and ``from_config`` accept, sorted."""
  return sorted(_REGISTRY)
