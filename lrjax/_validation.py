"""Eager argument checks shared by every lrjax constructor.

Each check looks only at concrete values: an argument that is a JAX tracer (a
schedule built inside ``jit`` or differentiated with ``grad``) is accepted as
is, since its value is unknown until run time. Every failure raises
``ValueError`` that names the public function, the argument and the value, e.g.
``lrjax.wsd: decay_steps must be > 0, got decay_steps=0``.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from typing import Any, Callable, Iterable, Optional

import jax
import numpy as np


def concrete(value: Any) -> np.ndarray | None:
  """``value`` as a NumPy array, or ``None`` when it is traced or not numeric."""
  if isinstance(value, (bool, np.bool_)):
    return None
  if isinstance(value, jax.core.Tracer):
    return None
  if isinstance(value, (numbers.Number, np.ndarray, np.generic, jax.Array)):
    try:
      return np.asarray(value)
    except (TypeError, jax.errors.ConcretizationTypeError):
      return None
  if isinstance(value, (list, tuple)) and value and all(
      isinstance(v, (numbers.Number, np.generic, np.ndarray, jax.Array))
      and not isinstance(v, (bool, jax.core.Tracer)) for v in value):
    return np.asarray([np.asarray(v) for v in value])
  return None


def _fmt(value: Any) -> str:
  arr = concrete(value)
  if arr is not None and arr.ndim == 0:
    return repr(arr.item())
  if arr is not None:
    return repr(arr.tolist())
  return repr(value)


def fail(fn: str, name: str, requirement: str, value: Any) -> None:
  raise ValueError(
      f"lrjax.{fn}: {name} must be {requirement}, got {name}={_fmt(value)}")


def check(fn: str, name: str, value: Any, predicate: Callable[[np.ndarray], Any],
          requirement: str) -> None:
  """Raises unless ``predicate`` holds for every element of a concrete ``value``."""
  arr = concrete(value)
  if arr is None:
    return
  if not np.all(predicate(arr)):
    fail(fn, name, requirement, value)


def positive(fn: str, name: str, value: Any) -> None:
  check(fn, name, value, lambda a: a > 0, "> 0")


def non_negative(fn: str, name: str, value: Any) -> None:
  check(fn, name, value, lambda a: a >= 0, ">= 0")


def integer(fn: str, name: str, value: Any, minimum: int) -> None:
  """A Python or NumPy integer (not a bool) >= ``minimum``."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
    fail(fn, name, f"an integer >= {minimum}", value)
  if value < minimum:
    fail(fn, name, f"an integer >= {minimum}", value)


def in_range(fn: str, name: str, value: Any, lo: float, hi: float,
             lo_open: bool = True, hi_open: bool = True) -> None:
  def ok(a):
    left = a > lo if lo_open else a >= lo
    right = a < hi if hi_open else a <= hi
    return left & right
  interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
  check(fn, name, value, ok, f"in {interval}")


def one_of(fn: str, name: str, value: Any, choices: Iterable[Any]) -> None:
  choices = tuple(choices)
  if value not in choices:
    options = " | ".join(repr(c) for c in choices)
    raise ValueError(
        f"lrjax.{fn}: {name} must be one of {options}, got {name}={value!r}")


def increasing(fn: str, name: str, value: Any, strict: bool = True) -> None:
  arr = concrete(value)
  if arr is None or arr.size < 2:
    return
  diffs = np.diff(arr.reshape(-1))
  if not np.all(diffs > 0 if strict else diffs >= 0):
    order = "strictly increasing" if strict else "sorted (non-decreasing)"
    fail(fn, name, order, value)


def is_callable(fn: str, name: str, value: Any) -> None:
  """Raises unless ``value`` is callable (an optimizer factory, a loss function)."""
  if not callable(value):
    fail(fn, name, "callable", value)


def upper_bound(fn: str, name: str, value: Any, lower_name: str, lower: Any) -> None:
  """An optional upper bound (``None`` = none) that is >= its lower bound."""
  if value is not None:
    check(fn, name, value, lambda a: a >= lower, f">= {lower_name}={lower!r}")


def _is_schedule_like(value: Any) -> bool:
  return callable(value) or isinstance(value, dict)


def _numeric(annotation: Any) -> bool:
  """An argument annotated as a number (``ArrayLike``, ``float``, ``int``), not a string."""
  text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__",
                                                                 str(annotation))
  return "str" not in text and any(word in text for word in ("ArrayLike", "float", "int"))


# Arguments that hold a learning rate (or a bound on one) wherever they appear,
# and the other arguments that can never be negative: refused by ``checks_finite``.
NON_NEGATIVE_ARGS = {
    **{name: "a learning rate >= 0" for name in (
        "init_value", "peak_value", "end_value", "base", "base_value", "value", "values",
        "swa_value", "min_value", "max_value", "learning_rate", "min_lr", "max_lr")},
    "weight_decay": "a weight decay >= 0",
}


def checks_finite(fn: Optional[Callable] = None, *, data: tuple[str, ...] = ()) -> Any:
  """Decorates a public constructor: every concrete numeric argument is a finite number.

  The one place where non-finite numbers are refused, where a string given for
  a number (``init_value="nan"``, which NumPy would silently parse) is refused,
  and where a negative learning rate (an argument in ``NON_NEGATIVE_ARGS``) is
  refused, so each constructor only states its own rules. ``data`` names
  arguments that hold data (parameters, batches), never read here. Usable as
  ``@checks_finite`` or ``@checks_finite(data=(...))``.
  """
  if fn is None:
    return functools.partial(checks_finite, data=data)
  signature = inspect.signature(fn)

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    try:
      bound = signature.bind(*args, **kwargs)
    except TypeError as e:
      raise TypeError(f"lrjax.{fn.__name__}: {e}") from None
    for name, value in bound.arguments.items():
      if name in data:
        continue
      param = signature.parameters[name]
      values = value if param.kind is param.VAR_POSITIONAL else (value,)
      for v in values:
        if isinstance(v, str) and _numeric(param.annotation):
          fail(fn.__name__, name, "a number, not a string", v)
        if _is_schedule_like(v):
          continue
        arr = concrete(v)
        if arr is None or arr.dtype.kind not in "fciu":
          continue
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
          fail(fn.__name__, name, "finite", v)
        if name in NON_NEGATIVE_ARGS and arr.dtype.kind != "c" and np.any(arr < 0):
          fail(fn.__name__, name, NON_NEGATIVE_ARGS[name], v)
    return fn(*args, **kwargs)

  wrapper.__signature__ = signature  # type: ignore[attr-defined]
  return wrapper
