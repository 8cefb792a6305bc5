"""Old import paths kept for one release, each with a ``DeprecationWarning``."""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable


def moved(module: str, names: dict[str, str]) -> Callable[[str], Any]:
  """A module ``__getattr__`` serving ``names`` (old name -> new module) with a warning."""

  def __getattr__(name: str) -> Any:
    if name not in names:
      raise AttributeError(f"module {module!r} has no attribute {name!r}")
    target = names[name]
    warnings.warn(f"{module}.{name} moved to {target}.{name}; the old path goes away in "
                  "lrjax 0.3", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(target), name)

  return __getattr__


def moved_module(old: str, new: str) -> None:
  """Warns that the module ``old`` moved to ``new`` (called at the old module's import)."""
  warnings.warn(f"{old} moved to {new}; the old module goes away in lrjax 0.3",
                DeprecationWarning, stacklevel=3)
