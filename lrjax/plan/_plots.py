"""Pictures of a law: its fit and predictions against the logged losses, and a planned schedule."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from lrjax.plan._curves import as_curves
from lrjax.plan._laws import Law, lrs_array
from lrjax.plotting import _pyplot, line_plot


def _colours(n: int) -> list:
  _, plt = _pyplot()
  cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  return [cycle[i % len(cycle)] for i in range(n)]


def plot_fit(law: Law, curves: Any, path: Optional[str] = None,
             fitted: Sequence[str] = ()) -> Any:
  """Draws logged losses (solid) and the law's prediction (dashed) for each curve.

  Args:
    law: a fitted :class:`Law`.
    curves: ``(lrs, steps, losses)`` tuples or :class:`Curve` s.
    path: when given, save the figure there.
    fitted: names of the curves the law was fitted to (labelled "fitted"; the others
      "predicted").

  Returns:
    The matplotlib ``Axes``.

  Example:
    >>> import numpy as np, lrjax
    >>> law = lrjax.plan.Law("annealing", dict(L0=2.0, A=0.5, alpha=0.5, C=10.0))
    >>> lrs, steps = np.full(1000, 1e-2), np.arange(99, 1000, 100)
    >>> ax = lrjax.plan.plot_fit(law, [(lrs, steps, law.predict(lrs, steps))])
    >>> ax.get_ylabel()
    'loss'
  """
  checked = as_curves("plot_fit", curves)
  preds = law.predict_curves(checked)
  lines, styles = {}, {}
  for c, p, colour in zip(checked, preds, _colours(len(checked))):
    kind = "fitted" if c.name in fitted else "predicted"
    lines[f"{c.name}"] = (c.steps, c.losses)
    lines[f"{c.name}: law ({kind})"] = (c.steps, p)
    styles[f"{c.name}"] = {"color": colour, "linewidth": 1.0, "alpha": 0.6}
    styles[f"{c.name}: law ({kind})"] = {"color": colour, "linestyle": "--", "linewidth": 1.6}
  losses = np.concatenate([c.losses for c in checked])
  ax = line_plot(lines, xlabel="update", ylabel="loss", styles=styles, ncol=2,
                 title=f"{law.law.replace('_', '-')} law: logged loss (solid) and the law's "
                 "(dashed)")
  low, high = np.percentile(losses, 0.5), np.percentile(losses, 99.5)
  ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
  if path is not None:
    ax.figure.savefig(path, bbox_inches="tight")
  return ax


def plot_plan(law: Law, schedules: Mapping[str, Any], total_steps: int,
              path: Optional[str] = None, points: int = 200) -> Any:
  """Draws schedules (top) and the loss the law predicts for each (bottom).

  Args:
    law: a fitted :class:`Law`.
    schedules: ``{name: schedule or array of every update's rate}``.
    total_steps: updates in the run.
    path: when given, save the figure there.
    points: updates at which the loss is predicted.

  Returns:
    The two matplotlib ``Axes``.

  Example:
    >>> import lrjax
    >>> law = lrjax.plan.Law("annealing", dict(L0=2.0, A=0.5, alpha=0.5, C=10.0))
    >>> top, bottom = lrjax.plan.plot_plan(law, {"cosine": lrjax.cosine_decay(1e-2, 500)}, 500)
    >>> bottom.get_ylabel()
    'predicted loss'
  """
  matplotlib, plt = _pyplot()
  if path is not None:
    matplotlib.use("Agg", force=False)
  fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), dpi=110, sharex=True)
  rates, losses = {}, {}
  for name, schedule in schedules.items():
    lrs = lrs_array("plot_plan", (schedule, total_steps) if callable(schedule) else schedule)
    first = int(np.argmax(lrs))
    steps = np.unique(np.linspace(max(first, 1), total_steps - 1, points).astype(int))
    rates[name] = (np.arange(total_steps), lrs)
    pred = law.predict(lrs, steps)
    losses[f"{name}: {pred[-1]:.4f}"] = (steps, pred)
  line_plot(rates, xlabel="", ylabel="learning rate", ax=top, legend="inside",
            title="planned schedule against the usual ones")
  line_plot(losses, xlabel="update", ylabel="predicted loss", ax=bottom, legend="inside",
            title=f"the {law.law.replace('_', '-')} law's prediction (final loss in the legend)")
  tail = np.concatenate([y[len(y) // 3:] for _, y in losses.values()])
  bottom.set_ylim(tail.min() - 0.02 * np.ptp(tail), tail.max() + 0.05 * np.ptp(tail))
  fig.tight_layout()
  if path is not None:
    fig.savefig(path, bbox_inches="tight")
  return top, bottom
