"""Plotting schedules with matplotlib (the ``plot`` extra)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

import jax.numpy as jnp


def _pyplot():
  try:
    import matplotlib
  except ImportError:
    raise ImportError("lrjax.plot_schedules needs matplotlib: "
                      "pip install 'lrjax[plot]'") from None
  import matplotlib.pyplot as plt
  return matplotlib, plt


def plot_schedules(schedules: Mapping[str, Any], steps: int, path: Optional[str] = None,
                   ax: Any = None, log_scale: bool = False) -> Any:
  """Draws schedules against the step, one labelled line each.

  Args:
    schedules: ``{label: schedule}``; any callable ``step -> value``.
    steps: draw steps ``0 .. steps - 1`` (> 0).
    path: when given, save the figure there (PNG, PDF, SVG by extension).
    ax: a matplotlib ``Axes`` to draw on; a new figure when ``None``.
    log_scale: logarithmic learning-rate axis.

  Returns:
    The matplotlib ``Axes``.

  Example:
    >>> import lrjax
    >>> ax = lrjax.plot_schedules({"cosine": lrjax.cosine_decay(1.0, 100)}, 100)
    >>> ax.get_xlabel()
    'step'
  """
  if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps <= 0:
    raise ValueError(f"lrjax.plot_schedules: steps must be a positive int, got steps={steps!r}")
  if not schedules:
    raise ValueError("lrjax.plot_schedules: schedules must hold at least one schedule, got {}")
  matplotlib, plt = _pyplot()
  if ax is None:
    if path is not None:
      matplotlib.use("Agg", force=False)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
  t = jnp.arange(int(steps))
  for label, schedule in schedules.items():
    ax.plot(np.asarray(t), np.asarray(schedule(t)), label=str(label), linewidth=1.6)
  ax.set_xlabel("step")
  ax.set_ylabel("learning rate")
  if log_scale:
    ax.set_yscale("log")
  ax.grid(True, alpha=0.3)
  # Below the axes, so long labels never hide a curve.
  ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize="small", frameon=False)
  ax.set_title("learning-rate schedules")
  if path is not None:
    ax.figure.savefig(path, bbox_inches="tight")
  return ax
