"""Plotting with matplotlib (the ``plot`` extra): one helper behind every figure lrjax draws.

``line_plot`` draws labelled lines on one axes and saves the figure; it serves
``plot_schedules``, ``FindLRResult.plot`` and the ``lrjax compare`` report.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

import jax.numpy as jnp


def _pyplot():
  try:
    import matplotlib
  except ImportError:
    raise ImportError("lrjax plotting needs matplotlib: "
                      "pip install 'lrjax[plot]'") from None
  import matplotlib.pyplot as plt
  return matplotlib, plt


def line_plot(lines: Mapping[str, tuple[Any, Any]], *, xlabel: str, ylabel: str, title: str,
              path: Optional[str] = None, ax: Any = None, log_x: bool = False,
              log_y: bool = False, styles: Optional[Mapping[str, dict]] = None,
              vlines: Sequence[tuple[str, float, dict]] = (), legend: str = "below",
              ncol: int = 1) -> Any:
  """Draws ``{label: (x, y)}`` as lines on ``ax`` (a new figure when None); saves it to ``path``.

  Args:
    lines: ``{label: (x, y)}``.
    xlabel, ylabel, title: the axes' texts.
    path: when given, save the figure there (PNG, PDF, SVG by extension); a new
      figure is then drawn off screen.
    ax: a matplotlib ``Axes`` to draw on.
    log_x, log_y: logarithmic axes.
    styles: ``{label: matplotlib keyword arguments}`` for some lines.
    vlines: ``(label, x, keyword arguments)`` vertical markers.
    legend: ``"below"`` the axes (long labels never hide a curve) or ``"inside"``.
    ncol: legend columns.

  Returns:
    The matplotlib ``Axes``.
  """
  matplotlib, plt = _pyplot()
  if ax is None:
    if path is not None:
      matplotlib.use("Agg", force=False)
    _, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
  styles = styles or {}
  for label, (x, y) in lines.items():
    ax.plot(np.asarray(x), np.asarray(y), label=str(label),
            **{"linewidth": 1.6, **styles.get(label, {})})
  for label, x, style in vlines:
    ax.axvline(x, label=label, **{"linestyle": "--", "linewidth": 1.2, **style})
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if log_x:
    ax.set_xscale("log")
  if log_y:
    ax.set_yscale("log")
  ax.grid(True, alpha=0.3)
  if legend == "below":
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize="small", ncol=ncol,
              frameon=False)
  else:
    ax.legend(loc="upper left", fontsize="small", ncol=ncol)
  ax.set_title(title)
  if path is not None:
    ax.figure.savefig(path, bbox_inches="tight")
  return ax


def close(ax: Any) -> None:
  """Closes the figure of ``ax`` (figures saved by a batch job are not kept open)."""
  _, plt = _pyplot()
  plt.close(ax.figure)


def plot_schedules(schedules: Mapping[str, Any], steps: int, path: Optional[str] = None,
                   ax: Any = None, log_scale: bool = False) -> Any:
  """Draws schedules against the step, one labelled line each.

  Args:
    schedules: ``{label: schedule}``; any callable ``step -> value`` (a pure
      schedule: a stateful one's rate depends on the training signal).
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
  from lrjax.stateful import StatefulSchedule
  if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps <= 0:
    raise ValueError(f"lrjax.plot_schedules: steps must be a positive int, got steps={steps!r}")
  if not schedules:
    raise ValueError("lrjax.plot_schedules: schedules must hold at least one schedule, got {}")
  for label, schedule in schedules.items():
    if isinstance(schedule, StatefulSchedule):
      raise ValueError(f"lrjax.plot_schedules: {label!r} is the stateful schedule "
                       f"lrjax.{schedule.name}: its learning rate depends on the training "
                       "signal, so it has no curve of the step alone")
  t = jnp.arange(int(steps))
  return line_plot({label: (t, s(t)) for label, s in schedules.items()}, xlabel="step",
                   ylabel="learning rate", title="learning-rate schedules", path=path, ax=ax,
                   log_y=log_scale)
