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
              vlines: Sequence[tuple[str, float, dict]] = (),
              hlines: Sequence[tuple[str, float, dict]] = (),
              bands: Optional[Mapping[str, tuple[Any, Any, Any]]] = None,
              note: Optional[str] = None, legend: str = "below", ncol: int = 1) -> Any:
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
    hlines: ``(label, y, keyword arguments)`` horizontal markers (a target).
    bands: ``{label: (x, low, high)}``: a shaded band in the colour of that
      label's line (e.g. the range across seeds).
    note: a second title line (e.g. what is not drawn, and why).
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
  lines = {label: (np.asarray(x), np.asarray(y, dtype=float)) for label, (x, y) in lines.items()}
  if log_y:  # a log axis draws the positive finite values only (a NaN leaves a gap)
    lines = {k: (x, np.where(np.isfinite(y) & (y > 0), y, np.nan)) for k, (x, y) in lines.items()}
    log_y = any(np.any(np.isfinite(y)) for _, y in lines.values())
  for label, (x, y) in lines.items():
    (line,) = ax.plot(x, y, label=str(label),
                      **{"linewidth": 1.6, **styles.get(label, {})})
    if bands and label in bands:
      bx, low, high = bands[label]
      ax.fill_between(np.asarray(bx), np.asarray(low), np.asarray(high),
                      color=line.get_color(), alpha=0.15, linewidth=0)
  for label, x, style in vlines:
    ax.axvline(x, label=label, **{"linestyle": "--", "linewidth": 1.2, **style})
  for label, y, style in hlines:
    ax.axhline(y, label=label, **{"linestyle": ":", "linewidth": 1.2, **style})
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
  ax.set_title(title if not note else f"{title}\n{note}", fontsize=None if not note else "medium")
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
